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
//! connect timeout equal to the timeout; `AzureOptions::transport` replaces
//! it. The SDK runs on a current-thread tokio runtime owned by the store, so the
//! [`Store`] calls stay synchronous; calling them from inside another async
//! runtime's task is refused with [`Error::Unavailable`] (use
//! `spawn_blocking`) instead of blocking that runtime. Authentication is Azure's own
//! ([`AzureCredential`]): a service principal's client secret, a managed
//! identity, or the developer tools (Azure CLI, Azure Developer CLI). The
//! first request goes out without a token and learns the tenant and
//! audience from Key Vault's 401 challenge, whose resource must match the
//! vault's domain. Every request, retries included, must finish within the
//! timeout (default 10 s), or the operation is [`Error::Unavailable`]; the
//! SDK retries 408, 429, 500, 502, 503, 504 and connection failures up to
//! `retries` times (default 3) with exponential backoff plus up to 255 ms of
//! jitter, honouring `Retry-After`. The SDK retries writes too: a SetSecret
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

/// How the store gets its Microsoft Entra ID tokens.
#[derive(Clone)]
pub enum AzureCredential {
    /// A service principal's client secret (`ClientSecretCredential`).
    ClientSecret {
        /// The tenant (directory) id.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        client_secret: SecretString,
    },
    /// The managed identity of the Azure host (`ManagedIdentityCredential`):
    /// the system-assigned one, or the user-assigned one with this client id.
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
    },
    /// The signed-in developer tools, Azure CLI then Azure Developer CLI
    /// (`DeveloperToolsCredential`).
    DeveloperTools,
    /// Any other `TokenCredential` (workload identity, a test double).
    Custom(Arc<dyn TokenCredential>),
}

impl fmt::Debug for AzureCredential {
    /// Names the method and ids, never a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => write!(
                f,
                "ClientSecret {{ tenant_id: {tenant_id:?}, client_id: {client_id:?}, .. }}"
            ),
            Self::ManagedIdentity { client_id } => {
                write!(f, "ManagedIdentity {{ client_id: {client_id:?} }}")
            }
            Self::DeveloperTools => f.write_str("DeveloperTools"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Where and how to reach the vault.
#[derive(Clone, Debug)]
pub struct AzureOptions {
    /// The store's name in messages (a config's store name).
    pub name: String,
    /// The vault's URL, e.g. `https://my-vault.vault.azure.net`.
    pub vault_url: String,
    /// How to authenticate.
    pub credential: AzureCredential,
    /// Time allowed for one request to Key Vault, retries included
    /// (default 10 s).
    pub timeout: Duration,
    /// Retries after a failed attempt (429, 5xx, connection failures;
    /// default 3).
    pub retries: u32,
    /// The HTTP client the SDK sends through (default: reqwest over rustls
    /// with Mozilla's roots, built by [`AzureKeyVault::connect`], connect
    /// timeout = `timeout`, no redirects). Tests give an in-process fake.
    pub transport: Option<Arc<dyn HttpClient>>,
}

impl AzureOptions {
    /// Options with defaults: 10 s timeout, 3 retries, the SDK's HTTP client.
    pub fn new(vault_url: impl Into<String>, credential: AzureCredential) -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            vault_url: vault_url.into(),
            credential,
            timeout: Duration::from_secs(10),
            retries: 3,
            transport: None,
        }
    }
}

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
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for AzureKeyVault {
    /// Shuts the runtime down without blocking, so the store may be dropped
    /// anywhere, a task of another runtime included.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
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
    /// Builds the client and its credential; nothing is sent
    /// ([`Store::health`] probes the vault).
    ///
    /// ```
    /// use std::time::Duration;
    /// use secrecy::SecretString;
    /// use tresor_core::Store;
    /// use tresor_stores::azure::{AzureCredential, AzureKeyVault, AzureOptions};
    ///
    /// let mut options = AzureOptions::new(
    ///     "https://team.vault.azure.net",
    ///     AzureCredential::ClientSecret {
    ///         tenant_id: "00000000-0000-0000-0000-000000000001".into(),
    ///         client_id: "00000000-0000-0000-0000-000000000002".into(),
    ///         client_secret: SecretString::from(std::env::var("AZURE_CLIENT_SECRET").unwrap_or("x".into())),
    ///     },
    /// );
    /// options.name = "team".to_string();
    /// options.timeout = Duration::from_secs(5);
    /// let vault = AzureKeyVault::connect(options)?;
    /// assert_eq!((vault.name(), vault.vault_url()), ("team", "https://team.vault.azure.net"));
    /// assert!(!vault.capabilities().check_and_set); // Key Vault has no conditional writes
    ///
    /// let plain = AzureOptions::new("http://team.vault.azure.net", AzureCredential::DeveloperTools);
    /// assert_eq!(AzureKeyVault::connect(plain).unwrap_err().kind(), "validation");
    /// # Ok::<(), tresor_core::Error>(())
    /// ```
    pub fn connect(options: AzureOptions) -> Result<Self> {
        let name = options.name.clone();
        let vault_url = options.vault_url.trim_end_matches('/').to_string();
        if !vault_url.starts_with("https://") {
            return Err(Error::Validation(format!(
                "{name}: vault_url {vault_url:?} must start with https://"
            )));
        }
        if options.timeout.is_zero() {
            return Err(Error::Validation(format!(
                "{name}: the timeout must be longer than 0"
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Unavailable {
                store: name.clone(),
                reason: format!("cannot start the async runtime: {e}"),
            })?;
        let timeout = time_duration(options.timeout);
        let transport = match options.transport.clone() {
            Some(t) => t,
            None => http_client(&name, options.timeout)?,
        };
        let client_options = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: options.retries,
                max_total_elapsed: timeout,
                max_delay: timeout.min(azure_core::time::Duration::seconds(30)),
            }),
            transport: Some(Transport::new(transport.clone())),
            ..ClientOptions::default()
        };
        let credential = {
            // Credentials that spawn tasks need the runtime entered.
            let _guard = runtime.enter();
            make_credential(&name, &options.credential, transport)?
        };
        let client = {
            let _guard = runtime.enter();
            SecretClient::new(
                &format!("{vault_url}/"),
                credential,
                Some(SecretClientOptions {
                    client_options,
                    ..SecretClientOptions::default()
                }),
            )
            .map_err(|_| {
                Error::Validation(format!(
                    "{name}: vault_url {vault_url:?} is not a valid URL"
                ))
            })?
        };
        Ok(Self {
            name,
            vault_url,
            timeout: options.timeout,
            client,
            runtime: Some(runtime),
        })
    }

    /// Builds the store from its `tresor.toml` options:
    ///
    /// | key | meaning |
    /// | --- | --- |
    /// | `vault_url` | required, `https://NAME.vault.azure.net` |
    /// | `credential` | `client-secret`, `managed-identity` or `developer-tools`; default `client-secret` when `client_secret` is given, else `developer-tools` |
    /// | `tenant_id`, `client_id`, `client_secret` | the service principal (`client_secret` usually an `ENV/` or `SEC/` reference); `client_id` alone picks a user-assigned managed identity |
    /// | `timeout` | per request, retries included, e.g. `10s` (default) |
    /// | `retries` | retries after a failed attempt (default 3, at most 10) |
    ///
    /// ```
    /// use tresor_stores::StoreOptions;
    /// use tresor_stores::azure::AzureKeyVault;
    ///
    /// let options = StoreOptions::new("team-azure")
    ///     .with("vault_url", "https://team.vault.azure.net")
    ///     .with("tenant_id", "00000000-0000-0000-0000-000000000001")
    ///     .with("client_id", "00000000-0000-0000-0000-000000000002")
    ///     .with("client_secret", "resolved-from-ENV-or-SEC")
    ///     .with("timeout", "5s");
    /// let store = AzureKeyVault::from_options(&options)?;
    /// assert_eq!(tresor_core::Store::name(&store), "team-azure");
    ///
    /// let missing = StoreOptions::new("team-azure").with("tenant_id", "t");
    /// assert!(AzureKeyVault::from_options(&missing).unwrap_err().to_string().contains("vault_url"));
    /// # Ok::<(), tresor_core::Error>(())
    /// ```
    pub fn from_options(opts: &StoreOptions) -> Result<Self> {
        let store = opts.store();
        let vault_url = opts.require("vault_url")?.to_string();
        let tenant_id = opts.get("tenant_id").map(str::to_string);
        let client_id = opts.get("client_id").map(str::to_string);
        let client_secret = opts
            .get("client_secret")
            .map(|s| SecretString::from(s.to_string()));
        let kind = opts.get("credential").map(str::to_string);
        let timeout = opts.duration("timeout")?;
        let retries = opts.parse::<u32>("retries", "a whole number of retries")?;
        opts.finish()?;
        let needs = |what: &str| {
            Error::Validation(format!(
                "store '{store}': the option '{what}' is required for credential = \"client-secret\""
            ))
        };
        let kind = kind.as_deref().unwrap_or(if client_secret.is_some() {
            "client-secret"
        } else {
            "developer-tools"
        });
        let unused = |what: &str| {
            Error::Validation(format!(
                "store '{store}': the option '{what}' has no use with credential = \"{kind}\""
            ))
        };
        if kind != "client-secret" {
            if client_secret.is_some() {
                return Err(unused("client_secret"));
            }
            if tenant_id.is_some() {
                return Err(unused("tenant_id"));
            }
        }
        if kind == "developer-tools" && client_id.is_some() {
            return Err(unused("client_id"));
        }
        let credential = match kind {
            "client-secret" => AzureCredential::ClientSecret {
                tenant_id: tenant_id.ok_or_else(|| needs("tenant_id"))?,
                client_id: client_id.ok_or_else(|| needs("client_id"))?,
                client_secret: client_secret.ok_or_else(|| needs("client_secret"))?,
            },
            "managed-identity" => AzureCredential::ManagedIdentity { client_id },
            "developer-tools" => AzureCredential::DeveloperTools,
            _ => {
                return Err(Error::Validation(format!(
                    "store '{store}': the option 'credential' must be client-secret, \
                     managed-identity or developer-tools"
                )));
            }
        };
        let mut options = AzureOptions::new(vault_url, credential);
        options.name = store.to_string();
        if let Some(timeout) = timeout {
            options.timeout = timeout;
        }
        if let Some(retries) = retries {
            if retries > 10 {
                return Err(Error::Validation(format!(
                    "store '{store}': the option 'retries' must be at most 10"
                )));
            }
            options.retries = retries;
        }
        Self::connect(options)
    }

    /// The vault's URL.
    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }

    // --- running the SDK ---------------------------------------------------

    /// Runs one SDK call on the store's runtime, bounded by the timeout.
    fn run<T>(
        &self,
        future: impl Future<Output = azure_core::Result<T>>,
    ) -> std::result::Result<T, Failure> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Failure::InsideRuntime);
        }
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        match runtime.block_on(async { tokio::time::timeout(self.timeout, future).await }) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failure::Sdk(e)),
            Err(_) => Err(Failure::TimedOut),
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
            Failure::InsideRuntime => {
                return Error::Unavailable {
                    store,
                    reason: format!(
                        "{what}: called from inside an async runtime; call the store \
                         from a blocking thread (e.g. tokio's spawn_blocking)"
                    ),
                };
            }
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
                        .map(|c| format!(" {}", short(c, 64)))
                        .unwrap_or_default()
                );
                match status {
                    401 | 403 => Error::Auth {
                        store,
                        reason: format!("{what}: access denied ({detail})"),
                    },
                    404 => Error::NotFound {
                        store,
                        what: what.to_string(),
                    },
                    408 | 429 | 500..=599 => Error::Unavailable {
                        store,
                        reason: format!("{what}: {detail}"),
                    },
                    _ => Error::Validation(format!("{store}: {what}: refused ({detail})")),
                }
            }
            ErrorKind::Io | ErrorKind::Connection => Error::Unavailable {
                store,
                reason: format!(
                    "{what}: cannot reach {}: {}",
                    self.vault_url,
                    short(&causes(&e), 300)
                ),
            },
            ErrorKind::Credential => Error::Auth {
                store,
                reason: format!("{what}: no token: {}", short(&e.to_string(), 300)),
            },
            // Decoding errors may quote the body they failed on: never shown.
            ErrorKind::DataConversion => Error::Integrity {
                store,
                detail: format!("{what}: Key Vault's answer could not be read"),
            },
            // The SDK's own checks, such as a 401 challenge for another domain.
            _ => Error::Auth {
                store,
                reason: format!("{what}: {}", short(&e.to_string(), 300)),
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
            Error::Validation(format!(
                "{}: '{name}' maps to a Key Vault name of {length} characters; \
                 Key Vault allows at most {MAX_KEY_VAULT_NAME}",
                self.name
            ))
        })
    }

    // --- Key Vault calls ---------------------------------------------------

    /// Every version of `kv` in tresor's order; `None` when the secret does
    /// not exist (or is deleted).
    fn versions(&self, name: &SecretName, kv: &str) -> Result<Option<Versions>> {
        let what = format!("'{name}'");
        let mut pager = self
            .client
            .list_secret_properties_versions(
                kv,
                Some(SecretClientListSecretPropertiesVersionsOptions::default()),
            )
            .map_err(|e| self.fail(&what, Failure::Sdk(e)))?;
        let mut items = Vec::new();
        loop {
            match self.run(async { pager.next().await.transpose() }) {
                Ok(Some(props)) => items.push(version_of(&props)),
                Ok(None) => break,
                Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => return Ok(None),
                Err(f) => return Err(self.fail(&what, f)),
            }
        }
        if items.is_empty() {
            return Ok(None);
        }
        Ok(Some(Versions::from_properties(items)))
    }

    fn read(
        &self,
        name: &SecretName,
        kv: &str,
        version: &KvVersion,
        number: u64,
    ) -> Result<Secret> {
        let what = format!("'{name}' version {number}");
        let options = SecretClientGetSecretOptions {
            secret_version: Some(version.id.clone()),
            ..SecretClientGetSecretOptions::default()
        };
        let response = self
            .run(self.client.get_secret(kv, Some(options)))
            .map_err(|f| self.fail(&what, f))?;
        let mut secret = response
            .into_model()
            .map_err(|e| self.fail(&what, Failure::Sdk(e)))?;
        let Some(text) = secret.value.take() else {
            return Err(Error::Integrity {
                store: self.name.clone(),
                detail: format!("{what}: the answer holds no value"),
            });
        };
        let text = Zeroizing::new(text);
        let binary = secret
            .content_type
            .as_deref()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(BINARY_CONTENT_TYPE));
        let value = if binary {
            SecretValue::from(
                BASE64
                    .decode(text.as_bytes())
                    .map_err(|_| Error::Integrity {
                        store: self.name.clone(),
                        detail: format!("{what}: marked binary but not valid base64"),
                    })?,
            )
        } else {
            SecretValue::copy_from(text.as_bytes())
        };
        Ok(Secret {
            name: name.clone(),
            version: number,
            value,
        })
    }

    /// Calls `attempt` until it stops answering 409 (Key Vault still
    /// finishing a delete or recovery) or, when `retry_404`, 404; bounded
    /// by the timeout.
    fn settle<T>(
        &self,
        retry_404: bool,
        mut attempt: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> std::result::Result<T, Failure> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let outcome = attempt();
            let again = match &outcome {
                Err(Failure::Sdk(e)) => {
                    status_of(e) == Some(409) || (retry_404 && status_of(e) == Some(404))
                }
                _ => false,
            };
            if !again || std::time::Instant::now() + SETTLE_POLL > deadline {
                return outcome;
            }
            std::thread::sleep(SETTLE_POLL);
        }
    }

    fn purge(&self, name: &SecretName, kv: &str) -> Result<()> {
        let what = format!("purge of '{name}'");
        let deleted_now = match self.run(self.client.delete_secret(kv, None)) {
            Ok(_) => true,
            Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => false,
            Err(f) => return Err(self.fail(&what, f)),
        };
        // Right after DeleteSecret the deleted secret may not be there yet.
        match self.settle(deleted_now, || {
            self.run(self.client.purge_deleted_secret(kv, None))
        }) {
            Ok(_) => Ok(()),
            Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => {
                Err(self.not_found(format!("'{name}'")))
            }
            Err(f) => Err(self.fail(&what, f)),
        }
    }
}

/// Why an SDK call failed.
enum Failure {
    Sdk(azure_core::Error),
    TimedOut,
    /// The caller is a task of another runtime: blocking it could deadlock.
    InsideRuntime,
}

fn status_of(e: &azure_core::Error) -> Option<u16> {
    e.http_status().map(u16::from)
}

/// reqwest over rustls with the ring provider and Mozilla's roots.
fn http_client(store: &str, timeout: Duration) -> Result<Arc<dyn HttpClient>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Unavailable {
        store: store.to_string(),
        reason: format!("TLS setup failed: {e}"),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Unavailable {
            store: store.to_string(),
            reason: format!("HTTP client setup failed: {e}"),
        })?;
    Ok(Arc::new(client))
}

fn make_credential(
    store: &str,
    credential: &AzureCredential,
    transport: Arc<dyn HttpClient>,
) -> Result<Arc<dyn TokenCredential>> {
    let client_options = || ClientOptions {
        transport: Some(Transport::new(transport.clone())),
        ..ClientOptions::default()
    };
    let invalid = |what: &str, e: azure_core::Error| {
        Error::Validation(format!(
            "store '{store}': {what}: {}",
            short(&e.to_string(), 200)
        ))
    };
    Ok(match credential {
        AzureCredential::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => azure_identity::ClientSecretCredential::new(
            tenant_id,
            client_id.clone(),
            azure_core::credentials::Secret::new(client_secret.expose_secret().to_string()),
            Some(azure_identity::ClientSecretCredentialOptions {
                client_options: client_options(),
            }),
        )
        .map_err(|e| invalid("client secret credential", e))?,
        AzureCredential::ManagedIdentity { client_id } => {
            azure_identity::ManagedIdentityCredential::new(Some(
                azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    client_options: client_options(),
                },
            ))
            .map_err(|e| invalid("managed identity credential", e))?
        }
        AzureCredential::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)
            .map_err(|e| invalid("developer tools credential", e))?,
        AzureCredential::Custom(credential) => credential.clone(),
    })
}

fn time_duration(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(t: Option<azure_core::time::OffsetDateTime>) -> i64 {
    t.map_or(0, |t| {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    })
}

fn version_of(props: &SecretProperties) -> KvVersion {
    let attributes = props.attributes.clone().unwrap_or_default();
    let tags = props.tags.clone().unwrap_or_default();
    KvVersion {
        id: props
            .resource_id()
            .ok()
            .and_then(|r| r.version)
            .unwrap_or_default(),
        created: millis(attributes.created),
        updated: millis(attributes.updated),
        enabled: attributes.enabled.unwrap_or(true),
        number_tag: tags.get(VERSION_TAG).and_then(|t| t.parse().ok()),
        tags,
    }
}

fn user_tags(tags: &HashMap<String, String>) -> Metadata {
    tags.iter()
        .filter(|(k, _)| k.as_str() != VERSION_TAG)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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

/// At most `max` characters of `s`, with an ellipsis when cut.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The Key Vault name of a tresor name (see the [module docs](self)), or
/// the length it would have when that is over 127 characters.
///
/// ```
/// use tresor_core::SecretName;
/// use tresor_stores::azure::{key_vault_name, secret_name};
///
/// let name = SecretName::new("openai/api_key")?;
/// assert_eq!(key_vault_name(&name).unwrap(), "openai-api03key");
/// assert_eq!(secret_name("openai-api03key"), Some(name));
/// assert_eq!(key_vault_name(&SecretName::new("Db.prod/0")?).unwrap(), "0db02prod-00");
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub fn key_vault_name(name: &SecretName) -> std::result::Result<String, usize> {
    let mut out = String::with_capacity(name.as_str().len() * 2);
    for c in name.as_str().chars() {
        match c {
            'a'..='z' | '1'..='9' => out.push(c),
            '/' => out.push('-'),
            '0' => out.push_str("00"),
            '-' => out.push_str("01"),
            '.' => out.push_str("02"),
            '_' => out.push_str("03"),
            'A'..='Z' => {
                out.push('0');
                out.push(c.to_ascii_lowercase());
            }
            // SecretName allows nothing else.
            _ => unreachable!("a character outside the naming rule in a SecretName"),
        }
    }
    if out.len() > MAX_KEY_VAULT_NAME {
        Err(out.len())
    } else {
        Ok(out)
    }
}

/// The tresor name a Key Vault name stands for, if it is the image of one
/// under [`key_vault_name`].
pub fn secret_name(kv: &str) -> Option<SecretName> {
    let mut out = String::with_capacity(kv.len());
    let mut chars = kv.chars();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | '1'..='9' => out.push(c),
            '-' => out.push('/'),
            '0' => match chars.next()? {
                '0' => out.push('0'),
                '1' => out.push('-'),
                '2' => out.push('.'),
                '3' => out.push('_'),
                l @ 'a'..='z' => out.push(l.to_ascii_uppercase()),
                _ => return None,
            },
            _ => return None,
        }
    }
    let name = SecretName::new(out).ok()?;
    // Only canonical spellings: keeps the mapping one to one.
    (key_vault_name(&name).ok()? == kv).then_some(name)
}

impl Store for AzureKeyVault {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: false,
            versions: true,
            // current and previous follow the versions; no pending.
            read_labels: true,
            staging: false,
            move_labels: false,
            metadata: true,
            list: true,
            // Key Vault has no conditional writes.
            check_and_set: false,
            soft_delete: true,
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        if selector == Selector::Label(Label::Pending) {
            return Err(self.unsupported("the pending label"));
        }
        let kv = self.kv_name(name)?;
        let versions = self
            .versions(name, &kv)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let (number, what) = match selector {
            Selector::Version(n) => (Some(n), format!("'{name}' version {n}")),
            Selector::Label(Label::Current) => (versions.current(), format!("'{name}' (disabled)")),
            Selector::Label(Label::Previous) => {
                (versions.previous(), format!("'{name}' label previous"))
            }
            Selector::Label(Label::Pending) => unreachable!("refused above"),
        };
        let number = number.ok_or_else(|| self.not_found(what.clone()))?;
        let version = versions
            .get(number)
            .ok_or_else(|| self.not_found(what.clone()))?;
        if !version.enabled {
            return Err(self.not_found(format!("'{name}' version {number} (disabled)")));
        }
        self.read(name, &kv, version, number)
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        if options.stage {
            return Err(self.unsupported("staging a pending version"));
        }
        if options.expect_version.is_some() {
            return Err(self.unsupported("check-and-set (Key Vault has no conditional writes)"));
        }
        let kv = self.kv_name(name)?;
        let bytes = value.expose_secret();
        if bytes.len() > DEFAULT_MAX_VALUE_LEN {
            return Err(Error::Validation(format!(
                "{}: the value for '{name}' is {} bytes; at most {DEFAULT_MAX_VALUE_LEN} are allowed",
                self.name,
                bytes.len()
            )));
        }
        validate_metadata(&options.metadata)?;
        let (text, content_type) = match std::str::from_utf8(bytes) {
            Ok(text) => (Zeroizing::new(text.to_string()), TEXT_CONTENT_TYPE),
            Err(_) => (Zeroizing::new(BASE64.encode(bytes)), BINARY_CONTENT_TYPE),
        };
        if text.len() > MAX_KEY_VAULT_VALUE {
            return Err(Error::Validation(format!(
                "{}: the value for '{name}' takes {} characters{}; Key Vault holds at most {MAX_KEY_VAULT_VALUE}",
                self.name,
                text.len(),
                if content_type == BINARY_CONTENT_TYPE {
                    " as base64"
                } else {
                    ""
                }
            )));
        }
        let versions = self.versions(name, &kv)?;
        let number = versions.as_ref().map_or(0, Versions::latest) + 1;
        let mut tags = versions
            .as_ref()
            .map(Versions::metadata)
            .unwrap_or_default();
        tags.extend(options.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        check_tags(&self.name, &tags)?;
        let mut tags: HashMap<String, String> = tags.into_iter().collect();
        tags.insert(VERSION_TAG.to_string(), number.to_string());

        // The request body, built in a buffer tresor wipes.
        let mut body = Zeroizing::new(Vec::with_capacity(text.len() + 256));
        serde_json::to_writer(
            &mut *body,
            &SetSecretParameters {
                content_type: Some(content_type.to_string()),
                tags: Some(tags),
                value: None,
                ..SetSecretParameters::default()
            },
        )
        .map_err(|_| Error::Integrity {
            store: self.name.clone(),
            detail: "the write request could not be encoded".to_string(),
        })?;
        // `{...}` becomes `{...,"value":"<text>"}`.
        body.pop();
        if body.len() > 1 {
            body.push(b',');
        }
        body.extend_from_slice(b"\"value\":");
        serde_json::to_writer(&mut *body, text.as_str()).expect("a string serializes");
        body.push(b'}');
        drop(text);
        let content: RequestContent<SetSecretParameters> = RequestContent::from(body.to_vec());
        drop(body);

        let what = format!("write of '{name}'");
        match self.run(self.client.set_secret(&kv, content, None)) {
            Ok(response) => {
                // The answer echoes the value: decode it only to wipe it.
                if let Ok(mut model) = response.into_model()
                    && let Some(mut v) = model.value.take()
                {
                    v.zeroize();
                }
                Ok(number)
            }
            Err(Failure::Sdk(e)) if status_of(&e) == Some(409) => Err(Error::Validation(format!(
                "{}: '{name}' is deleted but not purged in Key Vault: undelete or purge it first",
                self.name
            ))),
            Err(f) => Err(self.fail(&what, f)),
        }
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let kv = self.kv_name(name)?;
        match mode {
            DeleteMode::Soft => match self.run(self.client.delete_secret(&kv, None)) {
                Ok(_) => Ok(()),
                Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => {
                    Err(self.not_found(format!("'{name}'")))
                }
                Err(f) => Err(self.fail(&format!("delete of '{name}'"), f)),
            },
            DeleteMode::Purge => self.purge(name, &kv),
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let what = "listing";
        let mut pager = self
            .client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions::default()))
            .map_err(|e| self.fail(what, Failure::Sdk(e)))?;
        let mut names = Vec::new();
        loop {
            match self.run(async { pager.next().await.transpose() }) {
                Ok(Some(props)) => {
                    let Some(kv) = props.resource_id().ok().map(|r| r.name) else {
                        continue;
                    };
                    // Secrets of other tools under names tresor has no
                    // spelling for are left out.
                    if let Some(name) = secret_name(&kv)
                        && name.starts_with(prefix)
                    {
                        names.push((name, kv));
                    }
                }
                Ok(None) => break,
                Err(f) => return Err(self.fail(what, f)),
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for (name, kv) in names {
            // Deleted (or purged) since the listing: leave it out.
            let Some(versions) = self.versions(&name, &kv)? else {
                continue;
            };
            let Some(current) = versions.current() else {
                continue;
            };
            let updated_at = versions.get(current).map_or(0, |v| v.updated);
            out.push(SecretInfo {
                metadata: versions.metadata(),
                name,
                current,
                latest: versions.latest(),
                pending: None,
                updated_at,
                deleted_at: None,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let kv = self.kv_name(name)?;
        let versions = self
            .versions(name, &kv)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let (current, previous) = (versions.current(), versions.previous());
        Ok(versions
            .0
            .iter()
            .zip(1u64..)
            .map(|(v, number)| {
                let mut labels = Vec::new();
                if Some(number) == current {
                    labels.push(Label::Current);
                }
                if Some(number) == previous {
                    labels.push(Label::Previous);
                }
                VersionInfo {
                    version: number,
                    created_at: v.created,
                    actor: String::new(),
                    reason: None,
                    labels,
                    destroyed_at: None,
                    len: 0,
                }
            })
            .collect())
    }

    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        let kv = self.kv_name(name)?;
        if self.versions(name, &kv)?.is_some() {
            return Ok(()); // live: nothing to restore
        }
        let what = format!("undelete of '{name}'");
        match self.settle(false, || {
            self.run(self.client.recover_deleted_secret(&kv, None))
        }) {
            Ok(_) => {}
            Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => {
                return Err(self.not_found(format!("'{name}' (not deleted, or purged)")));
            }
            Err(f) => return Err(self.fail(&what, f)),
        }
        // Key Vault recovers in the background: wait until the secret reads.
        let deadline = std::time::Instant::now() + self.timeout;
        while self.versions(name, &kv)?.is_none() {
            if std::time::Instant::now() + SETTLE_POLL > deadline {
                return Err(Error::Unavailable {
                    store: self.name.clone(),
                    reason: format!("{what}: still recovering after {:?}", self.timeout),
                });
            }
            std::thread::sleep(SETTLE_POLL);
        }
        Ok(())
    }

    fn set_label(&mut self, _: &SecretName, _: Label, _: u64) -> Result<()> {
        Err(self.unsupported("moving labels (current and previous follow the versions)"))
    }

    fn health(&mut self) -> Health {
        let mut pager = match self
            .client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions {
                maxresults: Some(1),
                ..SecretClientListSecretPropertiesOptions::default()
            }))
            .map(|p| p.into_pages())
        {
            Ok(p) => p,
            Err(e) => {
                return Health {
                    reachable: false,
                    authenticated: false,
                    detail: self.fail("health probe", Failure::Sdk(e)).to_string(),
                };
            }
        };
        match self.run(async { pager.next().await.transpose() }) {
            Ok(_) => Health {
                reachable: true,
                authenticated: true,
                detail: format!("Key Vault at {}; token accepted", self.vault_url),
            },
            Err(f) => {
                let e = self.fail("health probe", f);
                let reachable = matches!(e, Error::Auth { .. } | Error::Validation(_));
                Health {
                    reachable,
                    authenticated: false,
                    detail: e.to_string(),
                }
            }
        }
    }
}

/// Checks metadata against Key Vault's tag limits.
fn check_tags(store: &str, tags: &Metadata) -> Result<()> {
    if tags.contains_key(VERSION_TAG) {
        return Err(Error::Validation(format!(
            "{store}: the metadata key '{VERSION_TAG}' is tresor's own in Key Vault"
        )));
    }
    if tags.len() > MAX_TAGS - 1 {
        return Err(Error::Validation(format!(
            "{store}: Key Vault keeps at most {} metadata entries per secret; this write would make {}",
            MAX_TAGS - 1,
            tags.len()
        )));
    }
    if let Some((k, _)) = tags
        .iter()
        .find(|(k, v)| k.chars().count() > MAX_TAG_NAME || v.chars().count() > MAX_TAG_VALUE)
    {
        return Err(Error::Validation(format!(
            "{store}: the metadata entry '{}' is too long for Key Vault \
             (keys up to {MAX_TAG_NAME}, values up to {MAX_TAG_VALUE} characters)",
            short(k, 64)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    #[test]
    fn names_map_one_to_one() {
        for (tresor, kv) in [
            ("db/password", "db-password"),
            ("openai/api_key", "openai-api03key"),
            ("AWS/key", "0a0w0s-key"),
            ("a0/b-c.d_e", "a00-b01c02d03e"),
            ("x9", "x9"),
        ] {
            assert_eq!(key_vault_name(&name(tresor)).unwrap(), kv, "{tresor}");
            assert_eq!(secret_name(kv), Some(name(tresor)), "{kv}");
        }
        // Upper and lower case stay apart although Key Vault ignores case.
        assert_ne!(
            key_vault_name(&name("Foo")).unwrap().to_ascii_lowercase(),
            key_vault_name(&name("foo")).unwrap().to_ascii_lowercase()
        );
        for foreign in [
            "Db-password",
            "db--password",
            "-db",
            "db-",
            "a0",
            "a04",
            "a0-",
            "",
            "a_b",
            "02",
        ] {
            assert_eq!(secret_name(foreign), None, "{foreign:?}");
        }
        let long = name(&"A".repeat(64));
        assert_eq!(key_vault_name(&long), Err(128));
        assert!(key_vault_name(&name(&"a".repeat(127))).is_ok());
    }

    #[test]
    fn every_name_round_trips() {
        // All two-character names over the alphabet, and some longer mixes.
        let alphabet: Vec<char> = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(['.', '_', '-', '/'])
            .collect();
        let mut seen = std::collections::HashSet::new();
        for &a in &alphabet {
            for &b in &alphabet {
                for text in [format!("{a}{b}"), format!("x{a}/{b}y"), format!("{a}")] {
                    let Ok(n) = SecretName::new(text) else {
                        continue;
                    };
                    let kv = key_vault_name(&n).unwrap();
                    assert!(
                        kv.bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                        "{kv}"
                    );
                    assert_eq!(secret_name(&kv).as_ref(), Some(&n), "{kv}");
                    if let Some(other) = seen.replace(kv.clone()) {
                        assert_eq!(secret_name(&other), Some(n), "two names map to {kv}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Any valid name: Key Vault's alphabet, lower case, and back again;
        /// distinct names never share a Key Vault name, even ignoring case.
        #[test]
        fn the_mapping_is_a_bijection(
            a in "[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12}){0,3}",
            b in "[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12}){0,3}",
        ) {
            let (Ok(a), Ok(b)) = (SecretName::new(a), SecretName::new(b)) else {
                return Ok(()); // "." and ".." segments
            };
            // Too long for Key Vault: refused with the length it would have.
            let (ka, kb) = match (key_vault_name(&a), key_vault_name(&b)) {
                (Ok(ka), Ok(kb)) => (ka, kb),
                (Err(n), _) | (_, Err(n)) => {
                    proptest::prop_assert!(n > MAX_KEY_VAULT_NAME);
                    return Ok(());
                }
            };
            proptest::prop_assert!(ka.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
            proptest::prop_assert_eq!(secret_name(&ka), Some(a.clone()));
            proptest::prop_assert_eq!(a == b, ka.eq_ignore_ascii_case(&kb));
        }

        /// Any Key Vault name decodes to at most one tresor name, which maps back to it.
        #[test]
        fn decoding_is_canonical(kv in "[0-9a-zA-Z-]{1,40}") {
            if let Some(name) = secret_name(&kv) {
                proptest::prop_assert_eq!(key_vault_name(&name).unwrap(), kv);
            }
        }
    }

    fn version(id: &str, created: i64, tag: Option<u64>, enabled: bool) -> KvVersion {
        KvVersion {
            id: id.to_string(),
            created,
            updated: created,
            enabled,
            number_tag: tag,
            tags: HashMap::new(),
        }
    }

    #[test]
    fn versions_number_by_creation_then_tag_then_id() {
        let v = Versions::from_properties(vec![
            version("ff", 2000, Some(2), true),
            version("00", 2000, Some(3), true),
            version("aa", 1000, Some(1), true),
            version("bb", 3000, None, false),
        ]);
        let ids: Vec<&str> = v.0.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["aa", "ff", "00", "bb"]);
        assert_eq!(
            (v.latest(), v.current(), v.previous()),
            (4, Some(3), Some(2))
        );
        let v = Versions::from_properties(vec![
            version("cc", 5, None, true),
            version("bb", 5, None, true),
        ]);
        assert_eq!(v.0[0].id, "bb");
        let v = Versions::from_properties(vec![version("a", 1, Some(1), false)]);
        assert_eq!((v.current(), v.previous()), (None, None));
    }

    #[test]
    fn tags_are_checked_against_key_vault_limits() {
        let many: Metadata = (0..15).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(
            check_tags("s", &many)
                .unwrap_err()
                .to_string()
                .contains("14")
        );
        let long = Metadata::from([("k".to_string(), "v".repeat(257))]);
        let e = check_tags("s", &long).unwrap_err().to_string();
        assert!(e.contains("'k'") && !e.contains("vvvv"), "{e}");
        let reserved = Metadata::from([(VERSION_TAG.to_string(), "1".into())]);
        assert!(check_tags("s", &reserved).is_err());
        assert!(check_tags("s", &Metadata::from([("owner".into(), "ops".into())])).is_ok());
    }

    #[test]
    fn options_are_checked() {
        let cred = || AzureCredential::DeveloperTools;
        let e = AzureKeyVault::connect(AzureOptions::new("http://v.vault.azure.net", cred()))
            .unwrap_err();
        assert_eq!(e.kind(), "validation", "{e}");
        let store = AzureKeyVault::connect(AzureOptions::new("https://v.vault.azure.net/", cred()))
            .unwrap();
        assert_eq!(store.vault_url(), "https://v.vault.azure.net");

        let opts = StoreOptions::new("az")
            .with("vault_url", "https://v.vault.azure.net")
            .with("credential", "client-secret")
            .with("client_secret", "hunter2-secret");
        let e = AzureKeyVault::from_options(&opts).unwrap_err().to_string();
        assert!(e.contains("tenant_id") && !e.contains("hunter2"), "{e}");
        let opts = StoreOptions::new("az")
            .with("vault_url", "https://v.vault.azure.net")
            .with("credential", "magic");
        assert!(
            AzureKeyVault::from_options(&opts)
                .unwrap_err()
                .to_string()
                .contains("credential")
        );
        let opts = StoreOptions::new("az")
            .with("vault_url", "https://v.vault.azure.net")
            .with("credential", "managed-identity")
            .with("client_secret", "hunter2-secret");
        let e = AzureKeyVault::from_options(&opts).unwrap_err().to_string();
        assert!(e.contains("client_secret") && !e.contains("hunter2"), "{e}");
        let opts = StoreOptions::new("az")
            .with("vault_url", "https://v.vault.azure.net")
            .with("retries", "11");
        assert!(AzureKeyVault::from_options(&opts).is_err());
        let opts = StoreOptions::new("az")
            .with("vault_url", "https://v.vault.azure.net")
            .with("client_id", "00000000-0000-0000-0000-000000000002")
            .with("credential", "managed-identity")
            .with("timeout", "2s")
            .with("retries", "0");
        let store = AzureKeyVault::from_options(&opts).unwrap();
        assert_eq!(store.timeout, Duration::from_secs(2));
        let typo = StoreOptions::new("az")
            .with("vault_url", "https://v.vault.azure.net")
            .with("vault_uri", "x");
        assert!(
            AzureKeyVault::from_options(&typo)
                .unwrap_err()
                .to_string()
                .contains("vault_uri")
        );
        let shown = format!(
            "{:?}",
            AzureCredential::ClientSecret {
                tenant_id: "t".into(),
                client_id: "c".into(),
                client_secret: SecretString::from("hunter2".to_string()),
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
