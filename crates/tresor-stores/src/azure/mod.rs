//! Azure Key Vault secrets as a store, through Azure's official Rust SDK
//! (`azure_security_keyvault_secrets`, `azure_identity`, `azure_core`).
//!
//! **Not yet verified against Azure**: the SDK's real client is tested over
//! an in-process fake of the Key Vault REST protocol (`tests/azure/`), not
//! against a real vault.
//!
//! # Names
//!
//! Key Vault names allow only `0-9 a-z A-Z -`, at most 127 characters, and
//! compare without regard to case. tresor names map to Key Vault names one
//! to one ([`key_vault_name`], reversed by [`secret_name`]):
//!
//! | tresor | Key Vault |
//! | --- | --- |
//! | `a`-`z`, `1`-`9` | themselves |
//! | `/` | `-` |
//! | `0` | `00` |
//! | `-` | `01` |
//! | `.` | `02` |
//! | `_` | `03` |
//! | `A`-`Z` | `0` and the lower-case letter |
//!
//! So `db/password` is `db-password`, `openai/api_key` is `openai-api03key`
//! and `AWS/key` is `0a0w0s-key`. The output is lower case, so the mapping
//! stays one to one under Key Vault's case-insensitive names; a secret
//! written by another tool lists under the name its Key Vault name decodes
//! to, and names that decode to no tresor name (upper case, `--`, a leading
//! or trailing `-`) are left out of listings. A tresor name whose Key Vault
//! name would be longer than 127 characters is refused.
//!
//! # Values
//!
//! UTF-8 values are stored as they are, with content type
//! `text/plain; charset=utf-8`; any other bytes are stored as base64 with
//! content type `application/octet-stream; base64` ([`BINARY_CONTENT_TYPE`])
//! and decoded on read. A secret of any other content type reads as its text.
//! Key Vault holds at most 25 KiB per value (after base64 for binary ones).
//!
//! # Versions
//!
//! Key Vault names versions with random ids. tresor numbers them by creation
//! order: the versions of a secret sorted by their `created` time (whole
//! seconds), then by the `tresor-version` tag tresor writes on every version
//! it makes (the number it gave that version), then by id; version `n` is the
//! `n`-th of that list. Key Vault never removes single versions, so the
//! numbers of a secret are stable; only another tool writing the same secret
//! in the same second as tresor could reorder those two versions.
//! `current` is the newest enabled version, `previous` the newest enabled
//! one before it; disabled versions read as not found. `pending`, staged
//! writes and `set_label` are [`Error::Unsupported`]. A read costs two
//! requests (the version list, then the value).
//!
//! # Metadata
//!
//! Metadata is the current version's tags (Key Vault keeps tags per
//! version); a write copies the current version's tags to the new version and
//! merges the write's metadata in. Key Vault allows 15 tags, one of which
//! (`tresor-version`) tresor keeps for itself: at most 14 entries, values of at
//! most 256 characters. The write's `reason` is not kept (the manager's audit
//! log keeps it).
//!
//! # Listing
//!
//! `list(prefix)` pages through the vault's secrets (Key Vault has no
//! server-side prefix filter), keeps those whose decoded name starts with
//! the prefix, and lists each one's versions for its numbers and metadata:
//! one request per page and one per secret listed.
//!
//! # Check-and-set
//!
//! Key Vault has no conditional write for secrets (no version or ETag
//! precondition on SetSecret), so `expect_version` is [`Error::Unsupported`]
//! rather than an emulation that two writers could race through.
//!
//! # Delete, undelete, purge
//!
//! Soft delete is DeleteSecret (the secret moves to the vault's deleted
//! secrets), undelete is RecoverDeletedSecret, purge is DeleteSecret (when
//! the secret is live) followed by PurgeDeletedSecret. Key Vault completes
//! deletes and recoveries in the background; the store waits for them (409
//! answers are tried again) up to the timeout. A name whose secret is deleted
//! but not purged cannot be written until it is undeleted or purged.
//!
//! # Network
//!
//! Requests go out through reqwest over rustls (the ring provider, as for the
//! OpenBao store) trusting the bundled Mozilla roots, with no redirects and a
//! connect timeout of `connect_timeout` (default 5 s); `AzureOptions::transport` replaces
//! it. The SDK runs on a current-thread tokio runtime owned by the store, so the
//! [`Store`] calls stay synchronous; calling them from inside another async
//! runtime's task is refused with [`Error::Unavailable`] (use
//! `spawn_blocking`) instead of blocking that runtime. Authentication is Azure's own
//! ([`AzureCredential`]): a service principal's client secret, a managed
//! identity, or the developer tools (Azure CLI, Azure Developer CLI). The
//! first request goes out without a token and learns the tenant and
//! audience from Key Vault's 401 challenge, whose resource must match the
//! vault's domain. Every request, retries included, must finish within
//! `timeout` (default 10 s; the same meaning for every remote store), or the
//! operation is [`Error::Unavailable`]; the
//! SDK retries 408, 429, 500, 502, 503, 504 and connection failures up to
//! `retries` times (default 3) with exponential backoff from 100 ms (at most
//! 2 s, the remote stores' figures) plus the SDK's jitter, honouring
//! `Retry-After`. The SDK retries writes too: a SetSecret
//! that reached the vault but whose answer was lost can leave one extra
//! version holding the same value. Errors name the store, the secret, the
//! HTTP status and Key Vault's error code; they never hold a value, a
//! request or response body, or a Key Vault error message. The store logs
//! nothing itself; the SDK's log events (tracing) show method, URL, status
//! and headers with the token and error codes redacted, never bodies.
//! Values pass through the SDK's own buffers (request and
//! response bodies, its models' strings), which tresor cannot wipe; tresor's
//! own copies are wiped.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::remote::runtime::{InsideRuntime, Runtime};
use crate::remote::{self, Limits, retry};
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{
    ClientOptions, ExponentialRetryOptions, HttpClient, RequestContent, RetryOptions, Transport,
};
use azure_security_keyvault_secrets::models::{
    SecretClientGetSecretOptions, SecretClientListSecretPropertiesOptions,
    SecretClientListSecretPropertiesVersionsOptions, SecretProperties, SetSecretParameters,
};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient, SecretClientOptions};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt as _;
use secrecy::{ExposeSecret, SecretString};
use tresor_core::{
    Capabilities, DEFAULT_MAX_VALUE_LEN, DeleteMode, Error, Health, Label, Metadata, PutOptions,
    Result, Secret, SecretInfo, SecretName, SecretValue, Selector, Store, VersionInfo,
    validate_metadata,
};
use zeroize::{Zeroize, Zeroizing};

use crate::StoreOptions;

/// The store's name in messages unless [`AzureOptions::name`] gives another.
const DEFAULT_NAME: &str = "azure";
/// The tag holding the number tresor gave a version.
pub const VERSION_TAG: &str = "tresor-version";
/// The content type of values stored as base64.
pub const BINARY_CONTENT_TYPE: &str = "application/octet-stream; base64";
/// The content type of UTF-8 values.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// Longest Key Vault secret name.
pub const MAX_KEY_VAULT_NAME: usize = 127;
/// Largest value Key Vault holds, in characters (25 KiB).
pub const MAX_KEY_VAULT_VALUE: usize = 25 * 1024;
/// Most tags per version in Key Vault.
const MAX_TAGS: usize = 15;
/// Longest tag value in Key Vault.
const MAX_TAG_VALUE: usize = 256;
/// Longest tag name in Key Vault.
const MAX_TAG_NAME: usize = 512;
/// Pause between polls while Key Vault finishes a delete or recovery.
const SETTLE_POLL: Duration = Duration::from_millis(500);

mod calls;
mod config;
mod names;
mod store;
#[cfg(test)]
mod tests;

use calls::*;
pub use config::{AzureCredential, AzureOptions};
pub use names::{key_vault_name, secret_name};

/// Azure Key Vault secrets as a [`Store`] (see the [module docs](self)).
///
/// ```no_run
/// use tresor_core::{PutOptions, SecretName, SecretValue, Selector, Store};
/// use tresor_stores::azure::{AzureCredential, AzureKeyVault, AzureOptions};
///
/// let options = AzureOptions::new(
///     "https://my-vault.vault.azure.net",
///     AzureCredential::DeveloperTools, // `az login` on this machine
/// );
/// let mut vault = AzureKeyVault::connect(options)?;
/// let name = SecretName::new("openai/api_key")?; // Key Vault name: openai-api03key
/// let version = vault.put(&name, &SecretValue::copy_from(b"sk-..."), &PutOptions::default())?;
/// assert_eq!(vault.get(&name, Selector::Version(version))?.value.expose_secret(), b"sk-...");
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub struct AzureKeyVault {
    name: String,
    vault_url: String,
    timeout: Duration,
    client: SecretClient,
    runtime: Runtime,
}

impl fmt::Debug for AzureKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVault")
            .field("name", &self.name)
            .field("vault_url", &self.vault_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One version of a secret, as the version list shows it.
#[derive(Clone, Debug)]
struct KvVersion {
    /// Key Vault's version id.
    id: String,
    /// `created`, ms since the epoch.
    created: i64,
    /// `updated`, ms since the epoch.
    updated: i64,
    enabled: bool,
    /// The `tresor-version` tag.
    number_tag: Option<u64>,
    /// Every tag.
    tags: HashMap<String, String>,
}

/// A secret's versions in tresor's order (version `n` at index `n - 1`).
struct Versions(Vec<KvVersion>);

impl Versions {
    fn from_properties(mut items: Vec<KvVersion>) -> Self {
        items.sort_by(|a, b| {
            (a.created, a.number_tag.unwrap_or(u64::MAX), &a.id).cmp(&(
                b.created,
                b.number_tag.unwrap_or(u64::MAX),
                &b.id,
            ))
        });
        Self(items)
    }

    fn latest(&self) -> u64 {
        self.0.len() as u64
    }

    fn get(&self, number: u64) -> Option<&KvVersion> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        self.0.get(index)
    }

    /// The newest enabled version.
    fn current(&self) -> Option<u64> {
        (1..=self.latest())
            .rev()
            .find(|&n| self.get(n).is_some_and(|v| v.enabled))
    }

    /// The newest enabled version before `current`.
    fn previous(&self) -> Option<u64> {
        let current = self.current()?;
        (1..current)
            .rev()
            .find(|&n| self.get(n).is_some_and(|v| v.enabled))
    }

    /// The current version's tags other than tresor's own.
    fn metadata(&self) -> Metadata {
        self.current()
            .and_then(|n| self.get(n))
            .map(|v| user_tags(&v.tags))
            .unwrap_or_default()
    }
}

impl AzureKeyVault {
    // --- running the SDK ---------------------------------------------------

    /// Runs one SDK call on the store's runtime, bounded by the timeout
    /// (refused from inside another runtime).
    fn run<T>(
        &self,
        future: impl Future<Output = azure_core::Result<T>>,
    ) -> std::result::Result<T, Failure> {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, future).await })
        {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(Failure::Sdk(e)),
            Ok(Err(_)) => Err(Failure::TimedOut),
            Err(inside) => Err(Failure::InsideRuntime(inside)),
        }
    }

    /// The error for a failed call about `what` (e.g. `'a/b'`).
    fn fail(&self, what: &str, failure: Failure) -> Error {
        let store = self.name.clone();
        let e = match failure {
            Failure::TimedOut => {
                return Error::Unavailable {
                    store,
                    reason: format!(
                        "{what}: no answer from {} within {:?}",
                        self.vault_url, self.timeout
                    ),
                };
            }
            Failure::InsideRuntime(inside) => return inside.error(&store, what),
            Failure::Sdk(e) => e,
        };
        match e.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => {
                let status = u16::from(*status);
                let detail = format!(
                    "HTTP {status}{}",
                    error_code
                        .as_deref()
                        .map(|c| format!(" {}", remote::shorten_to(c, 64)))
                        .unwrap_or_default()
                );
                remote::status_error(&store, what, status, &detail)
            }
            ErrorKind::Io | ErrorKind::Connection => Error::Unavailable {
                store,
                reason: format!(
                    "{what}: cannot reach {}: {}",
                    self.vault_url,
                    remote::shorten_to(&causes(&e), 300)
                ),
            },
            ErrorKind::Credential => Error::Auth {
                store,
                reason: format!(
                    "{what}: no token: {}",
                    remote::shorten_to(&e.to_string(), 300)
                ),
            },
            // Decoding errors may quote the body they failed on: never shown.
            ErrorKind::DataConversion => Error::Integrity {
                store,
                detail: format!("{what}: Key Vault's answer could not be read"),
            },
            // The SDK's own checks, such as a 401 challenge for another domain.
            _ => Error::Auth {
                store,
                reason: format!("{what}: {}", remote::shorten_to(&e.to_string(), 300)),
            },
        }
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            store: self.name.clone(),
            what,
        }
    }

    fn kv_name(&self, name: &SecretName) -> Result<String> {
        key_vault_name(name).map_err(|length| {
            let _ = length;
            Error::TooLarge {
                what: format!("{}: the Key Vault name of '{name}'", self.name),
                limit: MAX_KEY_VAULT_NAME as u64,
            }
        })
    }
}

/// Why an SDK call failed.
enum Failure {
    Sdk(azure_core::Error),
    TimedOut,
    /// The caller is a task of another runtime: blocking it could deadlock.
    InsideRuntime(InsideRuntime),
}

fn status_of(e: &azure_core::Error) -> Option<u16> {
    e.http_status().map(u16::from)
}

/// What a transport error comes down to: its innermost cause (refused,
/// reset, a certificate), which the SDK's wrappers hide. Transport errors
/// hold no bodies.
fn causes(e: &azure_core::Error) -> String {
    let mut last = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
