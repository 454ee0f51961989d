//! OpenBao / HashiCorp Vault KV v2 as a store, over a small synchronous HTTP
//! client (ureq).
//!
//! # Layout
//!
//! One KV v2 entry per secret, at the secret's name under the mount
//! (`openai/api_key` is `<mount>/data/openai/api_key`; tresor names are
//! path-safe, so they map 1:1). The entry's data is `{"value": "<text>"}`
//! for UTF-8 values and `{"value_base64": "<base64>"}` for anything else.
//! An entry of any other shape (written by another tool) reads as its JSON
//! text, e.g. `{"password":"x","user":"y"}`.
//!
//! # Versions and labels
//!
//! KV v2 numbers versions itself: the first write is 1. `current` is the
//! newest version written, provided it is neither deleted nor destroyed
//! (otherwise the secret reads as not found, as in `bao kv get`).
//! `previous` is derived: the newest version older than `current` that is
//! neither deleted nor destroyed. `pending` is [`Error::Unsupported`], and so
//! are `set_label` and staged writes: KV v2 has no labels to move.
//!
//! # Writes, deletes, metadata
//!
//! `expect_version` is KV v2's check-and-set (`options.cas`); a mismatch is
//! [`Error::Conflict`] with the version the metadata shows. Metadata entries
//! merge into the entry's `custom_metadata` (read, merge, write: two writers
//! of metadata race). The write's `reason` is not kept: KV v2 has nowhere to
//! put it per version (the manager's audit log keeps it); `history` shows no
//! actor, no reason and a length of 0 (unknown without reading the value).
//! Soft delete deletes the newest version (`DELETE data/`), undelete restores
//! it (`POST undelete/`), purge destroys every version and the metadata
//! (`DELETE metadata/`).
//!
//! # Listing
//!
//! `list(prefix)` walks `LIST metadata/` from the folder of the prefix down,
//! and reads each matching entry's metadata to leave out deleted secrets: one
//! request per folder and one per secret listed.
//!
//! # Network
//!
//! Token auth, or an AppRole login at construction (and again when a request
//! is refused with 403, so an expired AppRole token is renewed). The token
//! comes only from where the options say: `BAO_TOKEN` / `VAULT_TOKEN` are
//! read only with `token_from_env = true`, so a config cannot quietly send
//! the environment's token to an address of its choosing. A plain `http://`
//! address must be this machine (`localhost`, `127.0.0.0/8`, `::1`) unless
//! `insecure_http = true` (the manager then warns on every use). Optional namespace
//! (`X-Vault-Namespace`). TLS uses the bundled Mozilla roots (ureq's
//! default), or only the certificates of a PEM CA file. `timeout` bounds
//! each request, every attempt and pause included (default 10 s), and
//! `connect_timeout` each connection (default 5 s), as for every remote store
//! (see `remote`). Up to 3 attempts with jittered exponential backoff: reads
//! retry on 408, 429, 5xx and broken connections; writes retry only where the
//! server surely did nothing (connection refused, 429, 503).
//! A server that cannot be reached is [`Error::Unavailable`]. Errors name the
//! store, the secret, the HTTP status and Vault's error messages; request
//! bodies (which hold values) never go into an error, a log or a `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tresor_core::{
    Capabilities, DEFAULT_MAX_VALUE_LEN, DeleteMode, Error, Health, Label, Metadata, PutOptions,
    Result, Secret, SecretInfo, SecretName, SecretValue, Selector, Store, VersionInfo,
    validate_metadata,
};
use zeroize::{Zeroize, Zeroizing};

use crate::remote::retry::{Deadline, Idempotence, next_pause, retry_io, retry_status};
use crate::remote::{self, Limits, colon};

/// The store's name in messages unless [`OpenBaoOptions::name`] gives another.
const DEFAULT_NAME: &str = "openbao";
/// Largest response body read (a value of 1 MiB as base64 in JSON fits).
const MAX_RESPONSE: u64 = 8 * 1024 * 1024;

mod config;
mod http;
mod kv;
mod store;
#[cfg(test)]
mod tests;

pub use config::{Auth, OpenBaoOptions, TOKEN_ENVS, TOKEN_FROM_ENV};
use http::*;
use kv::*;

/// OpenBao / Vault KV v2 as a [`Store`] (see the [module docs](self)).
///
/// ```no_run
/// use secrecy::SecretString;
/// use tresor_core::{PutOptions, SecretName, SecretValue, Selector, Store};
/// use tresor_stores::openbao::{Auth, OpenBao, OpenBaoOptions};
///
/// let token = SecretString::from(std::env::var("BAO_TOKEN").unwrap_or_default());
/// let mut options = OpenBaoOptions::new("http://127.0.0.1:8200", Auth::Token(token));
/// options.mount = "secret".to_string();
/// let mut bao = OpenBao::connect(options)?;
/// let name = SecretName::new("openai/api_key")?;
/// let version = bao.put(&name, &SecretValue::copy_from(b"sk-..."), &PutOptions::default())?;
/// assert_eq!(bao.get(&name, Selector::Version(version))?.value.expose_secret(), b"sk-...");
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub struct OpenBao {
    name: String,
    address: String,
    mount: String,
    namespace: Option<String>,
    auth: Auth,
    /// The token sent; an AppRole login replaces it when it expires.
    token: Mutex<SecretString>,
    agent: ureq::Agent,
    /// The bound on one request, attempts and pauses included.
    timeout: Duration,
}

impl fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenBao")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// HTTP methods used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Delete,
}

/// One request to the server, as [`OpenBao::send`] takes it.
#[derive(Clone, Copy)]
struct Request<'a> {
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
    retry: Idempotence,
    /// Whether the token goes with it (not for a login or the health probe).
    with_token: bool,
}

impl<'a> Request<'a> {
    /// `method` on `path` with the token, no query, no body; GET retried as
    /// a read, anything else as a write.
    fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            query: &[],
            body: None,
            retry: if method == Method::Get {
                Idempotence::Idempotent
            } else {
                Idempotence::Unsafe
            },
            with_token: true,
        }
    }
}

/// An HTTP answer of any status; the body is wiped on drop.
struct Reply {
    status: u16,
    body: Zeroizing<Vec<u8>>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Vault's `errors` list, joined, each shortened.
    fn errors(&self) -> String {
        error_messages(&self.json())
    }
}

impl OpenBao {
    /// Connects: builds the client, and logs in when the auth is AppRole.
    /// Nothing else is sent; [`Store::health`] probes the server. A plain
    /// `http://` address must be this machine unless
    /// [`OpenBaoOptions::insecure_http`] is set; the caller then warns the
    /// user (see [`plain_http`](crate::options::plain_http)).
    pub fn connect(options: OpenBaoOptions) -> Result<Self> {
        let name = options.name.clone();
        let address = options.address.trim_end_matches('/').to_string();
        crate::options::plain_http(&name, "address", &address, options.insecure_http)?;
        let mount = valid_path(&name, "mount", &options.mount)?;
        let limits = Limits {
            timeout: options.timeout,
            connect_timeout: options.connect_timeout,
        };
        limits.check(&name)?;
        // Each attempt's whole-request limit is what is left of `timeout`
        // (set per request); the connection has its own.
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(limits.connect()));
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca).map_err(|source| Error::Io {
                store: name.clone(),
                path: ca.clone(),
                source,
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(crate::options::invalid_option(
                    &name,
                    "ca_file",
                    &format!("no certificate in {}", ca.display()),
                ));
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        let store = Self {
            name,
            address,
            mount,
            namespace: options.namespace.clone(),
            auth: options.auth.clone(),
            token: Mutex::new(SecretString::from(String::new())),
            agent,
            timeout: limits.timeout,
        };
        let token = match &options.auth {
            Auth::Token(token) => token.clone(),
            Auth::AppRole {
                role_id,
                secret_id,
                mount,
            } => store.approle_login(role_id, secret_id, mount)?,
        };
        *store.token() = token;
        Ok(store)
    }

    /// The store a `tresor.toml` entry describes (see
    /// [`OpenBaoOptions::from_options`]), connected as [`OpenBao::connect`]
    /// does: an AppRole login is the only request sent.
    pub fn from_options(options: &crate::StoreOptions) -> Result<Self> {
        Self::connect(OpenBaoOptions::from_options(options)?)
    }

    /// The KV v2 mount.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn approle_login(
        &self,
        role_id: &str,
        secret_id: &SecretString,
        mount: &str,
    ) -> Result<SecretString> {
        let mount = valid_path(&self.name, "approle_mount", mount)?;
        let mut body = Zeroizing::new(Vec::with_capacity(128 + secret_id.expose_secret().len()));
        body.extend_from_slice(b"{\"role_id\":");
        write_json_str(&mut body, role_id);
        body.extend_from_slice(b",\"secret_id\":");
        write_json_str(&mut body, secret_id.expose_secret());
        body.push(b'}');
        let path = format!("/v1/auth/{mount}/login");
        let reply = self.send(Request {
            body: Some(&body),
            with_token: false,
            ..Request::new(Method::Post, &path)
        })?;
        if reply.status != 200 {
            return Err(Error::Auth {
                store: self.name.clone(),
                reason: format!(
                    "AppRole login at auth/{mount} failed: HTTP {}{}",
                    reply.status,
                    colon(&reply.errors())
                ),
            });
        }
        let mut json = reply.json();
        match json.pointer_mut("/auth/client_token").map(Value::take) {
            Some(Value::String(token)) => Ok(SecretString::from(token)),
            _ => Err(Error::Auth {
                store: self.name.clone(),
                reason: format!("AppRole login at auth/{mount} returned no token"),
            }),
        }
    }

    fn token(&self) -> MutexGuard<'_, SecretString> {
        self.token.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
