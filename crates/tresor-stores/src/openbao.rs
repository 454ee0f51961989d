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
//! default), or only the certificates of a PEM CA file. Connect and read
//! timeouts default to 5 s. Up to 3 attempts with jittered exponential
//! backoff: reads retry on 429, 5xx and connection failures; writes retry
//! only where the server surely did nothing (connection refused, 429, 503).
//! A server that cannot be reached is [`Error::Unavailable`]. Errors name the
//! store, the secret, the HTTP status and Vault's error messages; request
//! bodies (which hold values) never go into an error, a log or a `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::ErrorKind;
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

/// The store's name in messages unless [`OpenBaoOptions::name`] gives another.
const DEFAULT_NAME: &str = "openbao";
/// Attempts per request (the first one included).
const ATTEMPTS: u32 = 3;
/// First backoff; doubled per retry, with up to 50 % jitter.
const BACKOFF: Duration = Duration::from_millis(100);
/// Largest response body read (a value of 1 MiB as base64 in JSON fits).
const MAX_RESPONSE: u64 = 8 * 1024 * 1024;

/// How the store authenticates.
#[derive(Clone)]
pub enum Auth {
    /// A token (root, periodic, or one a config reference resolved).
    Token(SecretString),
    /// An AppRole login at construction: role id and secret id for a token.
    AppRole {
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: SecretString,
        /// Where the AppRole method is mounted (default `approle`).
        mount: String,
    },
}

impl fmt::Debug for Auth {
    /// Names the method, never a token or secret id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token([redacted])"),
            Auth::AppRole { mount, .. } => write!(f, "AppRole {{ mount: {mount:?}, .. }}"),
        }
    }
}

/// Where and how to reach the server.
#[derive(Clone, Debug)]
pub struct OpenBaoOptions {
    /// The store's name in messages (a config's store name).
    pub name: String,
    /// Server address, e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// KV v2 mount path (default `secret`).
    pub mount: String,
    /// Credentials.
    pub auth: Auth,
    /// Namespace (`X-Vault-Namespace`), for Vault Enterprise / OpenBao namespaces.
    pub namespace: Option<String>,
    /// A PEM file whose certificates are the only trusted roots.
    pub ca_file: Option<PathBuf>,
    /// Connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout for sending a request and reading its answer (default 5 s).
    pub timeout: Duration,
    /// Allow plain `http://` to a host that is not this machine (default
    /// false: `http://` only to `localhost`, `127.0.0.0/8` or `::1`). See
    /// [`plain_http`](crate::options::plain_http).
    pub insecure_http: bool,
}

/// Variables read for a token when a `tresor.toml` entry says
/// `token_from_env = true`, in this order. Without that option they are
/// never read: a config must say where its store's token comes from.
pub const TOKEN_ENVS: [&str; 2] = ["BAO_TOKEN", "VAULT_TOKEN"];
/// The option that takes the token from [`TOKEN_ENVS`].
pub const TOKEN_FROM_ENV: &str = "token_from_env";

impl OpenBaoOptions {
    /// The options a `tresor.toml` entry describes, without contacting the
    /// server. Keys: `address` (required), `mount` (default `secret`),
    /// `token`, or `role_id` + `secret_id` (+ `approle_mount`, default
    /// `approle`) for AppRole, or `token_from_env = true` for the token in
    /// `BAO_TOKEN`, else `VAULT_TOKEN` (exactly one of the three),
    /// `namespace`, `ca_file`, `timeout` and `connect_timeout` (durations
    /// such as `2s`, default 5 s), `insecure_http` (default false). The
    /// environment's token is never taken unless asked for: a `tresor.toml`
    /// from elsewhere must not send it to a server of its choosing. An
    /// `http://` address must be this machine unless `insecure_http = true`.
    /// Any other key is an error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tresor_stores::{StoreOptions, openbao::OpenBaoOptions};
    ///
    /// let o = OpenBaoOptions::from_options(
    ///     &StoreOptions::new("team")
    ///         .with("address", "http://127.0.0.1:8200")
    ///         .with("token", "s.example")
    ///         .with("timeout", "2s"),
    /// )?;
    /// assert_eq!((o.name.as_str(), o.mount.as_str()), ("team", "secret"));
    /// assert_eq!(o.timeout, Duration::from_secs(2));
    /// # Ok::<(), tresor_core::Error>(())
    /// ```
    pub fn from_options(options: &crate::StoreOptions) -> Result<Self> {
        let store = options.store();
        let address = options.require("address")?.to_string();
        let token = options.get("token");
        let role_id = options.get("role_id");
        let secret_id = options.get("secret_id");
        let approle_mount = options.get("approle_mount");
        let from_env = options.bool(TOKEN_FROM_ENV)?.unwrap_or(false);
        let insecure_http = options
            .bool(crate::options::INSECURE_HTTP)?
            .unwrap_or(false);
        crate::options::plain_http(store, "address", &address, insecure_http)?;
        if from_env && (token.is_some() || role_id.is_some() || secret_id.is_some()) {
            return Err(Error::Validation(format!(
                "store '{store}': token_from_env = true takes the token from the environment: \
                 give no 'token', 'role_id' or 'secret_id' with it"
            )));
        }
        let auth = match (token, role_id, secret_id) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Error::Validation(format!(
                    "store '{store}': give the option 'token' or the options 'role_id' and 'secret_id', not both"
                )));
            }
            (Some(t), None, None) => Auth::Token(SecretString::from(t.to_string())),
            (None, Some(role), Some(secret)) => Auth::AppRole {
                role_id: role.to_string(),
                secret_id: SecretString::from(secret.to_string()),
                mount: approle_mount.unwrap_or("approle").to_string(),
            },
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(Error::Validation(format!(
                    "store '{store}': AppRole needs both options 'role_id' and 'secret_id'"
                )));
            }
            (None, None, None) if from_env => {
                let token = TOKEN_ENVS
                    .iter()
                    .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
                    .ok_or_else(|| {
                        Error::Validation(format!(
                            "store '{store}': token_from_env = true, but neither BAO_TOKEN nor \
                             VAULT_TOKEN is set"
                        ))
                    })?;
                Auth::Token(SecretString::from(token))
            }
            (None, None, None) => {
                return Err(Error::Validation(format!(
                    "store '{store}': say where the token comes from: the option 'token' \
                     (e.g. token = \"ENV/BAO_TOKEN\" or \"SEC/bao/token\"), 'role_id' and \
                     'secret_id', or token_from_env = true (BAO_TOKEN, else VAULT_TOKEN)"
                )));
            }
        };
        if approle_mount.is_some() && !matches!(auth, Auth::AppRole { .. }) {
            return Err(Error::Validation(format!(
                "store '{store}': the option 'approle_mount' needs 'role_id' and 'secret_id'"
            )));
        }
        let mut out = Self::new(address, auth);
        out.name = store.to_string();
        out.insecure_http = insecure_http;
        if let Some(m) = options.get("mount") {
            out.mount = m.to_string();
        }
        out.namespace = options.get("namespace").map(str::to_string);
        out.ca_file = options.get("ca_file").map(PathBuf::from);
        if let Some(t) = options.duration("timeout")? {
            out.timeout = t;
        }
        if let Some(t) = options.duration("connect_timeout")? {
            out.connect_timeout = t;
        }
        options.finish()?;
        Ok(out)
    }

    /// Options with defaults: mount `secret`, 5 s timeouts, no namespace.
    pub fn new(address: impl Into<String>, auth: Auth) -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            address: address.into(),
            mount: "secret".to_string(),
            auth,
            namespace: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            insecure_http: false,
        }
    }
}

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

/// Whether a failed request may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// Reads and other idempotent calls: 429, 5xx, connection failures.
    Idempotent,
    /// Writes: only where the server surely did nothing.
    Unsafe,
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
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_send_request(Some(options.timeout))
            .timeout_send_body(Some(options.timeout))
            .timeout_recv_response(Some(options.timeout))
            .timeout_recv_body(Some(options.timeout));
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
                return Err(Error::Validation(format!(
                    "{name}: no certificate in the CA file {}",
                    ca.display()
                )));
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
        let mount = valid_path(&self.name, "AppRole mount", mount)?;
        let mut body = Zeroizing::new(Vec::with_capacity(128 + secret_id.expose_secret().len()));
        body.extend_from_slice(b"{\"role_id\":");
        write_json_str(&mut body, role_id);
        body.extend_from_slice(b",\"secret_id\":");
        write_json_str(&mut body, secret_id.expose_secret());
        body.push(b'}');
        let path = format!("/v1/auth/{mount}/login");
        let reply = self.send(Method::Post, &path, &[], Some(&body), Retry::Unsafe, false)?;
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

    // --- HTTP -------------------------------------------------------------

    /// Sends one request, with retries; any HTTP status is a `Reply`. With
    /// AppRole auth, a 403 (an expired token, most often) logs in again and
    /// sends the request once more.
    fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        retry: Retry,
        with_token: bool,
    ) -> Result<Reply> {
        let reply = self.send_retrying(method, path, query, body, retry, with_token)?;
        if let (
            403,
            true,
            Auth::AppRole {
                role_id,
                secret_id,
                mount,
            },
        ) = (reply.status, with_token, &self.auth)
            && let Ok(token) = self.approle_login(role_id, secret_id, mount)
        {
            *self.token() = token;
            return self.send_retrying(method, path, query, body, retry, with_token);
        }
        Ok(reply)
    }

    fn send_retrying(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        retry: Retry,
        with_token: bool,
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.address);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.send_once(method, &url, query, body, with_token);
            let again = match &outcome {
                Ok(reply) => match retry {
                    Retry::Idempotent => reply.status == 429 || reply.status >= 500,
                    Retry::Unsafe => reply.status == 429 || reply.status == 503,
                },
                Err(e) => transient(e, retry),
            };
            if !again || attempt >= ATTEMPTS {
                return outcome.map_err(|e| Error::Unavailable {
                    store: self.name.clone(),
                    reason: format!(
                        "{} {path}: {} (after {attempt} attempt{})",
                        method_name(method),
                        describe(&e),
                        if attempt == 1 { "" } else { "s" }
                    ),
                });
            }
            std::thread::sleep(backoff(attempt));
        }
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        with_token: bool,
    ) -> std::result::Result<Reply, ureq::Error> {
        macro_rules! prepare {
            ($request:expr) => {{
                let mut request = $request;
                for (k, v) in query {
                    request = request.query(*k, *v);
                }
                if with_token {
                    request = request.header("X-Vault-Token", self.token().expose_secret());
                }
                if let Some(ns) = &self.namespace {
                    request = request.header("X-Vault-Namespace", ns.as_str());
                }
                request
            }};
        }
        let mut response = match method {
            Method::Get => prepare!(self.agent.get(url)).call()?,
            Method::Delete => prepare!(self.agent.delete(url)).call()?,
            Method::Post => prepare!(self.agent.post(url))
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(b"{}"))?,
        };
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()?;
        Ok(Reply {
            status,
            body: Zeroizing::new(body),
        })
    }

    fn call(&self, method: Method, path: &str, body: Option<&[u8]>) -> Result<Reply> {
        let retry = if method == Method::Get {
            Retry::Idempotent
        } else {
            Retry::Unsafe
        };
        self.send(method, path, &[], body, retry, true)
    }

    fn data_path(&self, name: &str) -> String {
        format!("/v1/{}/data/{name}", self.mount)
    }

    fn metadata_path(&self, name: &str) -> String {
        format!("/v1/{}/metadata/{name}", self.mount)
    }

    /// The error for an unexpected answer about `what` (e.g. `'a/b'`).
    fn http_error(&self, reply: &Reply, what: &str) -> Error {
        let errors = reply.errors();
        let detail = format!("HTTP {}{}", reply.status, colon(&errors));
        match reply.status {
            401 | 403 => Error::Auth {
                store: self.name.clone(),
                reason: format!("{what}: permission denied ({detail})"),
            },
            404 => self.not_found(what.to_string()),
            429 | 500..=599 => Error::Unavailable {
                store: self.name.clone(),
                reason: format!("{what}: {detail}"),
            },
            _ => Error::Validation(format!("{}: {what}: {detail}", self.name)),
        }
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            store: self.name.clone(),
            what,
        }
    }

    // --- KV v2 --------------------------------------------------------------

    /// The entry's metadata, `None` if it has none (never written or purged).
    fn read_metadata(&self, name: &SecretName) -> Result<Option<KvMetadata>> {
        let reply = self.call(Method::Get, &self.metadata_path(name.as_str()), None)?;
        match reply.status {
            200 => {
                let json = reply.json();
                KvMetadata::parse(&json["data"])
                    .map(Some)
                    .ok_or_else(|| Error::Integrity {
                        store: self.name.clone(),
                        detail: format!("'{name}': metadata in an unexpected shape"),
                    })
            }
            404 => Ok(None),
            _ => Err(self.http_error(&reply, &format!("'{name}' metadata"))),
        }
    }

    fn read_version(&self, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let path = self.data_path(name.as_str());
        let what = match version {
            Some(v) => format!("'{name}' version {v}"),
            None => format!("'{name}'"),
        };
        let v = version.map(|v| v.to_string());
        let query: Vec<(&str, &str)> = v.iter().map(|v| ("version", v.as_str())).collect();
        let reply = self.send(Method::Get, &path, &query, None, Retry::Idempotent, true)?;
        match reply.status {
            200 => {}
            404 => {
                let json = reply.json();
                let meta = &json["data"]["metadata"];
                let state = if meta["destroyed"] == Value::Bool(true) {
                    " (destroyed)"
                } else if meta["deletion_time"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
                {
                    " (deleted)"
                } else {
                    ""
                };
                return Err(self.not_found(format!("{what}{state}")));
            }
            _ => return Err(self.http_error(&reply, &what)),
        }
        let mut json = reply.json();
        let number = json["data"]["metadata"]["version"].as_u64();
        let data = json.pointer_mut("/data/data").map(Value::take);
        match (number, data) {
            (Some(number), Some(Value::Object(data))) => Ok(Secret {
                name: name.clone(),
                version: number,
                value: decode_value(data).map_err(|detail| Error::Integrity {
                    store: self.name.clone(),
                    detail: format!("{what}: {detail}"),
                })?,
            }),
            // A deleted version answers 200 with null data on some servers.
            (_, Some(Value::Null)) => Err(self.not_found(format!("{what} (deleted)"))),
            _ => Err(Error::Integrity {
                store: self.name.clone(),
                detail: format!("{what}: the answer has no data or version"),
            }),
        }
    }

    fn write_custom_metadata(&self, name: &SecretName, add: &Metadata) -> Result<()> {
        let mut merged = self
            .read_metadata(name)?
            .map(|m| m.custom)
            .unwrap_or_default();
        merged.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
        validate_metadata(&merged)?;
        let body = serde_json::to_vec(&serde_json::json!({ "custom_metadata": merged }))
            .expect("a string map serializes");
        let reply = self.call(
            Method::Post,
            &self.metadata_path(name.as_str()),
            Some(&body),
        )?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.http_error(&reply, &format!("'{name}' metadata"))),
        }
    }

    fn walk(&self, folder: &str, prefix: &str, out: &mut Vec<SecretInfo>) -> Result<()> {
        let path = self.metadata_path(folder);
        let reply = self.send(
            Method::Get,
            &path,
            &[("list", "true")],
            None,
            Retry::Idempotent,
            true,
        )?;
        match reply.status {
            200 => {}
            404 => return Ok(()),
            _ => {
                return Err(self.http_error(&reply, &format!("listing of '{folder}'")));
            }
        }
        let json = reply.json();
        let keys: Vec<String> = json["data"]["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for key in keys {
            let full = format!("{folder}{key}");
            if full.ends_with('/') {
                if full.starts_with(prefix) || prefix.starts_with(&full) {
                    self.walk(&full, prefix, out)?;
                }
                continue;
            }
            if !full.starts_with(prefix) {
                continue;
            }
            // Entries another tool wrote under names tresor rejects are skipped.
            let Ok(name) = SecretName::new(full) else {
                continue;
            };
            let Some(meta) = self.read_metadata(&name)? else {
                continue;
            };
            if let Some(current) = meta.current() {
                out.push(SecretInfo {
                    name,
                    current,
                    latest: meta.latest,
                    pending: None,
                    updated_at: meta.updated_at,
                    deleted_at: None,
                    metadata: meta.custom,
                });
            }
        }
        Ok(())
    }
}

/// What KV v2 keeps about an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KvMetadata {
    /// The newest version written (`current_version`).
    latest: u64,
    /// Every version still listed, by number.
    versions: BTreeMap<u64, KvVersion>,
    /// `custom_metadata`.
    custom: Metadata,
    /// `updated_time`, ms since the epoch.
    updated_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KvVersion {
    created_at: i64,
    deleted_at: Option<i64>,
    destroyed: bool,
}

impl KvVersion {
    fn live(&self) -> bool {
        self.deleted_at.is_none() && !self.destroyed
    }
}

impl KvMetadata {
    /// Parses the `data` object of a metadata read.
    fn parse(data: &Value) -> Option<Self> {
        let latest = data["current_version"].as_u64()?;
        let mut versions = BTreeMap::new();
        for (number, v) in data["versions"].as_object()? {
            let number: u64 = number.parse().ok()?;
            let deleted_at = v["deletion_time"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(|t| parse_time(t).unwrap_or(0));
            versions.insert(
                number,
                KvVersion {
                    created_at: v["created_time"].as_str().and_then(parse_time).unwrap_or(0),
                    deleted_at,
                    destroyed: v["destroyed"].as_bool().unwrap_or(false),
                },
            );
        }
        let custom = data["custom_metadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            latest,
            versions,
            custom,
            updated_at: data["updated_time"]
                .as_str()
                .and_then(parse_time)
                .unwrap_or(0),
        })
    }

    /// `current`: the newest version, if it is live.
    fn current(&self) -> Option<u64> {
        self.versions
            .get(&self.latest)
            .filter(|v| v.live())
            .map(|_| self.latest)
    }

    /// `previous`: the newest live version older than `current`.
    fn previous(&self) -> Option<u64> {
        let current = self.current()?;
        self.versions
            .range(..current)
            .rev()
            .find(|(_, v)| v.live())
            .map(|(n, _)| *n)
    }

    fn history(&self) -> Vec<VersionInfo> {
        let (current, previous) = (self.current(), self.previous());
        self.versions
            .iter()
            .map(|(&number, v)| {
                let mut labels = Vec::new();
                if Some(number) == current {
                    labels.push(Label::Current);
                }
                if Some(number) == previous {
                    labels.push(Label::Previous);
                }
                VersionInfo {
                    version: number,
                    created_at: v.created_at,
                    actor: String::new(),
                    reason: None,
                    labels,
                    destroyed_at: v.destroyed.then_some(v.deleted_at.unwrap_or(0)),
                    len: 0,
                }
            })
            .collect()
    }
}

/// The value of an entry's data: `{"value": text}`, `{"value_base64": b64}`,
/// or any other shape as its JSON text.
fn decode_value(mut data: Map<String, Value>) -> std::result::Result<SecretValue, String> {
    if data.len() == 1 {
        if let Some(Value::String(text)) = data.get_mut("value") {
            return Ok(SecretValue::from(std::mem::take(text)));
        }
        if let Some(Value::String(encoded)) = data.get_mut("value_base64") {
            let mut encoded = Zeroizing::new(std::mem::take(encoded));
            return match BASE64.decode(encoded.as_bytes()) {
                Ok(bytes) => Ok(SecretValue::from(bytes)),
                Err(_) => {
                    encoded.zeroize();
                    Err("value_base64 is not valid base64".to_string())
                }
            };
        }
    }
    let text = serde_json::to_vec(&Value::Object(data.clone())).unwrap_or_default();
    wipe(data);
    Ok(SecretValue::from(text))
}

/// Wipes the strings of a JSON tree (best effort).
fn wipe(map: Map<String, Value>) {
    fn wipe_value(v: Value) {
        match v {
            Value::String(mut s) => s.zeroize(),
            Value::Array(a) => a.into_iter().for_each(wipe_value),
            Value::Object(m) => wipe(m),
            _ => {}
        }
    }
    map.into_iter().for_each(|(_, v)| wipe_value(v));
}

/// The request body of a write: the value's JSON object and the cas option.
fn encode_put(value: &SecretValue, cas: Option<u64>) -> Zeroizing<Vec<u8>> {
    let bytes = value.expose_secret();
    let mut body = Zeroizing::new(Vec::with_capacity(bytes.len() * 6 / 5 * 6 + 128));
    body.extend_from_slice(b"{\"data\":{");
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            body.extend_from_slice(b"\"value\":");
            write_json_str(&mut body, text);
        }
        Err(_) => {
            let encoded = Zeroizing::new(BASE64.encode(bytes));
            body.extend_from_slice(b"\"value_base64\":\"");
            body.extend_from_slice(encoded.as_bytes());
            body.push(b'"');
        }
    }
    body.push(b'}');
    if let Some(cas) = cas {
        body.extend_from_slice(format!(",\"options\":{{\"cas\":{cas}}}").as_bytes());
    }
    body.push(b'}');
    body
}

/// Appends `s` as a JSON string (with quotes) to `out`.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Vault's `errors` array, each message shortened, joined with "; ".
fn error_messages(json: &Value) -> String {
    json["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|m| {
                    let m = m.trim();
                    if m.chars().count() > 200 {
                        format!("{}…", m.chars().take(200).collect::<String>())
                    } else {
                        m.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

fn colon(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// Whether the cas error of a 400 answer.
fn is_cas_error(errors: &str) -> bool {
    errors.contains("check-and-set")
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Delete => "DELETE",
    }
}

/// Whether a transport error is worth another attempt.
fn transient(e: &ureq::Error, retry: Retry) -> bool {
    match e {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => true,
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => retry == Retry::Idempotent,
            _ => false,
        },
        _ => false,
    }
}

/// A transport error in words (ureq's messages hold no bodies).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("{io}"),
        other => other.to_string(),
    }
}

/// The pause before attempt `attempt + 1`: 100 ms, 200 ms, … plus up to 50 %.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let base = BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(6));
    let jitter = RandomState::new().hash_one(attempt) % 1000;
    base + base * u32::try_from(jitter).unwrap_or(0) / 2000
}

/// Checks a mount path: `/`-separated segments of `A-Z a-z 0-9 . _ -`.
fn valid_path(store: &str, what: &str, path: &str) -> Result<String> {
    let path = path.trim_matches('/');
    let ok = !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok {
        Ok(path.to_string())
    } else {
        Err(Error::Validation(format!(
            "{store}: the {what} {path:?} must be /-separated segments of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Parses an RFC 3339 UTC time (`2026-11-25T12:00:00.123456Z`) to ms since
/// the epoch.
fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let mut f: String = frac[..digits].chars().take(3).collect();
        while f.len() < 3 {
            f.push('0');
        }
        ms = f.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 60 + om)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}

impl Store for OpenBao {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: false,
            versions: true,
            // current and previous, derived from the versions; no pending.
            read_labels: true,
            // KV v2 has no labels to stage or move.
            staging: false,
            move_labels: false,
            metadata: true,
            list: true,
            check_and_set: true,
            soft_delete: true,
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        match selector {
            // KV v2 reads version 0 as the newest: never ask for it.
            Selector::Version(0) => Err(self.not_found(format!("'{name}' version 0"))),
            Selector::Version(v) => self.read_version(name, Some(v)),
            Selector::Label(Label::Current) => self.read_version(name, None),
            Selector::Label(Label::Previous) => {
                let meta = self
                    .read_metadata(name)?
                    .ok_or_else(|| self.not_found(format!("'{name}'")))?;
                if meta.current().is_none() {
                    return Err(self.not_found(format!("'{name}' (deleted)")));
                }
                let previous = meta
                    .previous()
                    .ok_or_else(|| self.not_found(format!("'{name}' label previous")))?;
                self.read_version(name, Some(previous))
            }
            Selector::Label(Label::Pending) => Err(self.unsupported("the pending label")),
        }
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        if options.stage {
            return Err(self.unsupported("staging a pending version"));
        }
        if value.len() > DEFAULT_MAX_VALUE_LEN {
            return Err(Error::Validation(format!(
                "{}: the value for '{name}' is {} bytes; at most {DEFAULT_MAX_VALUE_LEN} are allowed",
                self.name,
                value.len()
            )));
        }
        validate_metadata(&options.metadata)?;
        let body = encode_put(value, options.expect_version);
        let reply = self.call(Method::Post, &self.data_path(name.as_str()), Some(&body))?;
        drop(body);
        let version = match reply.status {
            200 => reply.json()["data"]["version"]
                .as_u64()
                .ok_or_else(|| Error::Integrity {
                    store: self.name.clone(),
                    detail: format!("'{name}': the write answered without a version"),
                })?,
            400 if options.expect_version.is_some() && is_cas_error(&reply.errors()) => {
                let found = self.read_metadata(name)?.map_or(0, |m| m.latest);
                return Err(Error::Conflict {
                    store: self.name.clone(),
                    name: name.to_string(),
                    expected: options.expect_version.unwrap_or(0),
                    found,
                });
            }
            _ => return Err(self.http_error(&reply, &format!("write of '{name}'"))),
        };
        if !options.metadata.is_empty() {
            self.write_custom_metadata(name, &options.metadata)?;
        }
        Ok(version)
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let meta = self
            .read_metadata(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let (path, what) = match mode {
            DeleteMode::Soft => {
                if meta.current().is_none() {
                    return Err(self.not_found(format!("'{name}' (already deleted)")));
                }
                (self.data_path(name.as_str()), "delete")
            }
            DeleteMode::Purge => (self.metadata_path(name.as_str()), "purge"),
        };
        let reply = self.call(Method::Delete, &path, None)?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.http_error(&reply, &format!("{what} of '{name}'"))),
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        let mut out = Vec::new();
        self.walk(folder, prefix, &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let meta = self
            .read_metadata(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        Ok(meta.history())
    }

    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        let meta = self
            .read_metadata(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let latest = meta.versions.get(&meta.latest);
        match latest {
            Some(v) if v.live() => return Ok(()),
            Some(v) if v.deleted_at.is_some() && !v.destroyed => {}
            _ => return Err(self.not_found(format!("'{name}' (destroyed)"))),
        }
        let body = format!("{{\"versions\":[{}]}}", meta.latest);
        let path = format!("/v1/{}/undelete/{name}", self.mount);
        let reply = self.call(Method::Post, &path, Some(body.as_bytes()))?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.http_error(&reply, &format!("undelete of '{name}'"))),
        }
    }

    fn set_label(&mut self, _: &SecretName, _: Label, _: u64) -> Result<()> {
        Err(self.unsupported("moving labels (KV v2 derives current and previous)"))
    }

    fn health(&mut self) -> Health {
        let reply = match self.send(
            Method::Get,
            "/v1/sys/health",
            &[],
            None,
            Retry::Idempotent,
            false,
        ) {
            Ok(r) => r,
            Err(e) => {
                return Health {
                    reachable: false,
                    authenticated: false,
                    detail: e.to_string(),
                };
            }
        };
        let json = reply.json();
        let version = json["version"]
            .as_str()
            .unwrap_or("unknown version")
            .to_string();
        if json["sealed"].as_bool() == Some(true) || reply.status == 503 {
            return Health {
                reachable: true,
                authenticated: false,
                detail: format!("{} at {} is sealed ({version})", self.name, self.address),
            };
        }
        let auth = self.call(Method::Get, "/v1/auth/token/lookup-self", None);
        let (authenticated, token) = match auth {
            Ok(r) if r.status == 200 => (true, "token accepted".to_string()),
            Ok(r) => (
                false,
                format!("token refused: HTTP {}{}", r.status, colon(&r.errors())),
            ),
            Err(e) => (false, format!("token lookup failed: {e}")),
        };
        Health {
            reachable: true,
            authenticated,
            detail: format!(
                "{version} at {}, KV v2 mount {}; {token}",
                self.address, self.mount
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    #[test]
    fn from_options_reads_every_key_and_rejects_the_rest() {
        use crate::StoreOptions;
        let base = || StoreOptions::new("team").with("address", "https://bao.example:8200/");
        let o = OpenBaoOptions::from_options(
            &base()
                .with("role_id", "r")
                .with("secret_id", "s3cr3t-id")
                .with("approle_mount", "ci")
                .with("mount", "kv")
                .with("namespace", "ns1")
                .with("ca_file", "/etc/ca.pem")
                .with("timeout", "1500ms")
                .with("connect_timeout", "2"),
        )
        .unwrap();
        assert!(
            matches!(&o.auth, Auth::AppRole { mount, role_id, .. } if mount == "ci" && role_id == "r")
        );
        assert_eq!(
            (o.mount.as_str(), o.namespace.as_deref()),
            ("kv", Some("ns1"))
        );
        assert_eq!(o.timeout, Duration::from_millis(1500));
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        let err = |opts: StoreOptions| OpenBaoOptions::from_options(&opts).unwrap_err().to_string();
        assert!(err(base().with("token", "t").with("adress", "x")).contains("'adress'"));
        assert!(err(base().with("token", "t").with("role_id", "r")).contains("not both"));
        assert!(err(base().with("role_id", "r")).contains("'secret_id'"));
        assert!(
            err(base().with("token", "t").with("approle_mount", "m")).contains("approle_mount")
        );
        assert!(err(StoreOptions::new("team").with("token", "t")).contains("'address'"));
        // The environment's token only when the config asks for it.
        assert!(err(base()).contains("token_from_env = true"));
        assert!(
            err(base().with("token_from_env", "true").with("token", "t")).contains("no 'token'")
        );
        // Plain http:// only to this machine, unless insecure_http = true.
        let at = |address: &str| {
            StoreOptions::new("team")
                .with("address", address)
                .with("token", "t")
        };
        assert!(err(at("http://bao.example:8200")).contains("insecure_http = true"));
        let o = OpenBaoOptions::from_options(
            &at("http://bao.example:8200").with("insecure_http", "true"),
        )
        .unwrap();
        assert!(o.insecure_http);
        assert!(
            !OpenBaoOptions::from_options(&at("http://localhost:8200"))
                .unwrap()
                .insecure_http
        );
        let plain = OpenBaoOptions::new(
            "http://10.1.2.3:8200",
            Auth::Token(SecretString::from("t".to_string())),
        );
        assert_eq!(OpenBao::connect(plain).unwrap_err().kind(), "validation");
        let e = err(base()
            .with("token", "tok-value")
            .with("timeout", "soon-secret"));
        assert!(
            e.contains("timeout") && !e.contains("soon-secret") && !e.contains("tok-value"),
            "{e}"
        );
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn values_encode_as_text_or_base64() {
        let text = encode_put(&SecretValue::copy_from("héllo \"q\"\n".as_bytes()), None);
        let parsed: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed, json!({"data": {"value": "héllo \"q\"\n"}}));
        let bin = encode_put(&SecretValue::copy_from(&[0, 0xff, 0x80]), Some(3));
        let parsed: Value = serde_json::from_slice(&bin).unwrap();
        assert_eq!(
            parsed,
            json!({"data": {"value_base64": "AP+A"}, "options": {"cas": 3}})
        );
    }

    #[test]
    fn entries_decode_by_shape() {
        let v = decode_value(object(json!({"value": "sk-1"}))).unwrap();
        assert_eq!(v.expose_secret(), b"sk-1");
        let v = decode_value(object(json!({"value_base64": "AP+A"}))).unwrap();
        assert_eq!(v.expose_secret(), [0, 0xff, 0x80]);
        let v = decode_value(object(json!({"user": "u", "password": "p"}))).unwrap();
        assert_eq!(v.expose_secret(), br#"{"password":"p","user":"u"}"#);
        // A non-string "value" is another shape too.
        let v = decode_value(object(json!({"value": 5}))).unwrap();
        assert_eq!(v.expose_secret(), br#"{"value":5}"#);
        let e = decode_value(object(json!({"value_base64": "not base64!"}))).unwrap_err();
        assert!(!e.contains("not base64!"), "{e}");
    }

    #[test]
    fn round_trips_through_the_codec() {
        for bytes in [b"plain".to_vec(), (0..=255u8).collect(), Vec::new()] {
            let body = encode_put(&SecretValue::copy_from(&bytes), None);
            let mut parsed: Value = serde_json::from_slice(&body).unwrap();
            let data = object(parsed["data"].take());
            assert_eq!(decode_value(data).unwrap().expose_secret(), bytes);
        }
    }

    fn meta(versions: Value) -> KvMetadata {
        let latest = versions
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse::<u64>().unwrap())
            .max()
            .unwrap();
        KvMetadata::parse(&json!({
            "current_version": latest,
            "versions": versions,
            "custom_metadata": {"owner": "ops"},
            "updated_time": "2026-11-25T12:00:00.5Z",
        }))
        .unwrap()
    }

    fn live(t: &str) -> Value {
        json!({"created_time": t, "deletion_time": "", "destroyed": false})
    }

    #[test]
    fn labels_derive_from_versions() {
        let t = "2026-11-25T12:00:00Z";
        let deleted = json!({"created_time": t, "deletion_time": t, "destroyed": false});
        let destroyed = json!({"created_time": t, "deletion_time": "", "destroyed": true});
        let m = meta(json!({"1": live(t), "2": live(t), "3": live(t)}));
        assert_eq!((m.current(), m.previous()), (Some(3), Some(2)));
        assert_eq!(m.custom["owner"], "ops");
        assert_eq!(m.updated_at, 1_795_608_000_500);
        let m = meta(json!({"1": live(t), "2": deleted.clone(), "3": live(t)}));
        assert_eq!((m.current(), m.previous()), (Some(3), Some(1)));
        let m = meta(json!({"1": live(t), "2": destroyed.clone()}));
        assert_eq!((m.current(), m.previous()), (None, None));
        let m = meta(json!({"1": live(t), "2": deleted}));
        assert_eq!(m.current(), None);
        let h = meta(json!({"1": destroyed, "2": live(t), "3": live(t)})).history();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].destroyed_at, Some(0));
        assert_eq!(h[1].labels, [Label::Previous]);
        assert_eq!(h[2].labels, [Label::Current]);
    }

    #[test]
    fn times_parse_as_utc_milliseconds() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time("2026-11-25T12:00:00.123456789Z"),
            Some(1_795_608_000_123)
        );
        assert_eq!(
            parse_time("2026-11-25T13:00:00+01:00"),
            Some(1_795_608_000_000)
        );
        assert_eq!(parse_time("2000-02-29T00:00:01Z"), Some(951_782_401_000));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn errors_join_vault_messages() {
        let reply = Reply {
            status: 400,
            body: Zeroizing::new(
                br#"{"errors":["check-and-set parameter did not match the current version"]}"#
                    .to_vec(),
            ),
        };
        assert!(is_cas_error(&reply.errors()));
        let long = "x".repeat(500);
        let m = error_messages(&json!({"errors": ["a", long]}));
        assert!(m.starts_with("a; xxx") && m.chars().count() < 210, "{m}");
        assert_eq!(error_messages(&json!({})), "");
    }

    #[test]
    fn options_are_checked() {
        let auth = || Auth::Token(SecretString::from("t".to_string()));
        let bad_addr = OpenBao::connect(OpenBaoOptions::new("127.0.0.1:8200", auth()));
        assert_eq!(bad_addr.unwrap_err().kind(), "validation");
        for mount in ["", "a//b", "../x", "a b"] {
            let mut o = OpenBaoOptions::new("http://127.0.0.1:1", auth());
            o.mount = mount.to_string();
            assert_eq!(
                OpenBao::connect(o).unwrap_err().kind(),
                "validation",
                "{mount:?}"
            );
        }
        let mut o = OpenBaoOptions::new("http://127.0.0.1:1/", auth());
        o.mount = "/team/kv/".to_string();
        let store = OpenBao::connect(o).unwrap();
        assert_eq!(
            (store.address(), store.mount()),
            ("http://127.0.0.1:1", "team/kv")
        );
        let shown = format!("{store:?} {:?}", auth());
        assert!(!shown.contains("\"t\""), "{shown}");
    }

    /// A one-thread HTTP server answering each connection with the next
    /// scripted (status, body); counts the requests it read.
    fn fake_server(script: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for (status, body) in script {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut request_body = vec![0; length];
                let _ = reader.read_exact(&mut request_body);
                counter.fetch_add(1, Ordering::SeqCst);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (addr, seen)
    }

    fn client(addr: &str) -> OpenBao {
        let mut o = OpenBaoOptions::new(addr, Auth::Token(SecretString::from("t".to_string())));
        o.timeout = Duration::from_millis(500);
        OpenBao::connect(o).unwrap()
    }

    const DATA: &str = r#"{"data":{"data":{"value":"v"},"metadata":{"version":4}}}"#;

    #[test]
    fn reads_retry_on_429_and_5xx() {
        let (addr, seen) = fake_server(vec![(503, "{}"), (429, "{}"), (200, DATA)]);
        let got = client(&addr)
            .get(&name("a/b"), Selector::default())
            .unwrap();
        assert_eq!((got.version, got.value.expose_secret()), (4, &b"v"[..]));
        assert_eq!(seen.load(Ordering::SeqCst), 3);

        let (addr, seen) = fake_server(vec![(500, r#"{"errors":["boom"]}"#); 4]);
        let err = client(&addr)
            .get(&name("a/b"), Selector::default())
            .unwrap_err();
        assert_eq!(err.kind(), "unavailable", "{err}");
        assert!(err.to_string().contains("HTTP 500: boom"), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), ATTEMPTS as usize);
    }

    #[test]
    fn writes_retry_only_where_nothing_happened() {
        let (addr, seen) = fake_server(vec![(500, "{}"), (200, r#"{"data":{"version":2}}"#)]);
        let err = client(&addr)
            .put(
                &name("a/b"),
                &SecretValue::copy_from(b"tresor-w-canary"),
                &PutOptions::default(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "unavailable", "{err}");
        assert!(!format!("{err:?}").contains("tresor-w-canary"));
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "a 500 on a write is not retried"
        );

        let (addr, seen) = fake_server(vec![(503, "{}"), (200, r#"{"data":{"version":2}}"#)]);
        let v = client(&addr)
            .put(
                &name("a/b"),
                &SecretValue::copy_from(b"x"),
                &PutOptions::default(),
            )
            .unwrap();
        assert_eq!((v, seen.load(Ordering::SeqCst)), (2, 2));
    }

    #[test]
    fn statuses_map_to_errors() {
        let denied = r#"{"errors":["permission denied"]}"#;
        let (addr, _) = fake_server(vec![
            (403, denied),
            (404, "{}"),
            (400, r#"{"errors":["bad"]}"#),
        ]);
        let mut store = client(&addr);
        let err = store.get(&name("a/b"), Selector::default()).unwrap_err();
        assert_eq!(err.kind(), "auth", "{err}");
        assert_eq!(
            err.to_string(),
            "openbao: 'a/b': permission denied (HTTP 403: permission denied)"
        );
        let err = store.get(&name("a/b"), Selector::Version(2)).unwrap_err();
        assert_eq!(err.to_string(), "openbao: 'a/b' version 2 not found");
        let err = store
            .put(
                &name("a/b"),
                &SecretValue::copy_from(b"x"),
                &PutOptions::default(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "validation", "{err}");
        assert!(err.to_string().contains("HTTP 400: bad"), "{err}");
    }

    #[test]
    fn a_silent_server_times_out_without_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let t0 = std::time::Instant::now();
        let err = client(&addr)
            .get(&name("a/b"), Selector::default())
            .unwrap_err();
        assert_eq!(err.kind(), "unavailable", "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        drop(listener);
    }

    #[test]
    fn backoff_grows_with_bounded_jitter() {
        for attempt in 1..=3 {
            let base = BACKOFF * 2u32.pow(attempt - 1);
            let b = backoff(attempt);
            assert!(b >= base && b <= base * 3 / 2, "{attempt}: {b:?}");
        }
    }
}
