//! The store's options, its credential and its HTTP client.

use super::*;

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
    /// Time allowed for one request to Key Vault, every attempt and the
    /// pauses between them included (default 10 s).
    pub timeout: Duration,
    /// Time allowed to open one connection (default 5 s; never more than
    /// `timeout`).
    pub connect_timeout: Duration,
    /// Retries after a failed attempt (429, 5xx, connection failures;
    /// default 3).
    pub retries: u32,
    /// The HTTP client the SDK sends through (default: reqwest over rustls
    /// with Mozilla's roots, built by [`AzureKeyVault::connect`], connect
    /// timeout = `connect_timeout`, no redirects). Tests give an in-process
    /// fake.
    pub transport: Option<Arc<dyn HttpClient>>,
}

impl AzureOptions {
    /// Options with defaults: the remote stores' time limits (10 s per
    /// request, 5 s per connection), 3 retries, the SDK's HTTP client.
    pub fn new(vault_url: impl Into<String>, credential: AzureCredential) -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            vault_url: vault_url.into(),
            credential,
            timeout: Limits::default().timeout,
            connect_timeout: Limits::default().connect_timeout,
            retries: 3,
            transport: None,
        }
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
    /// assert_eq!(AzureKeyVault::connect(plain).unwrap_err().kind(), "invalid_option");
    /// # Ok::<(), tresor_core::Error>(())
    /// ```
    pub fn connect(options: AzureOptions) -> Result<Self> {
        let name = options.name.clone();
        let vault_url = options.vault_url.trim_end_matches('/').to_string();
        if !vault_url.starts_with("https://") {
            return Err(Error::InvalidOption {
                store: name.clone(),
                option: "vault_url".to_string(),
                problem: format!("{vault_url:?} must start with https://"),
            });
        }
        let limits = Limits {
            timeout: options.timeout,
            connect_timeout: options.connect_timeout,
        };
        limits.check(&name)?;
        let runtime = Runtime::new(&name)?;
        let timeout = time_duration(limits.timeout);
        let transport = match options.transport.clone() {
            Some(t) => t,
            None => http_client(&name, limits.connect())?,
        };
        // The SDK retries; `run` bounds the whole request by `timeout`.
        let client_options = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: time_duration(retry::FIRST_BACKOFF),
                max_retries: options.retries,
                max_total_elapsed: timeout,
                max_delay: timeout.min(time_duration(retry::MAX_BACKOFF)),
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
            .map_err(|_| Error::InvalidOption {
                store: name.clone(),
                option: "vault_url".to_string(),
                problem: format!("{vault_url:?} is not a valid URL"),
            })?
        };
        Ok(Self {
            name,
            vault_url,
            timeout: options.timeout,
            client,
            runtime,
        })
    }

    /// Builds the store from its `tresor.toml` options:
    ///
    /// | key | meaning |
    /// | --- | --- |
    /// | `vault_url` | required, `https://NAME.vault.azure.net` |
    /// | `credential` | `client-secret`, `managed-identity` or `developer-tools`; default `client-secret` when `client_secret` is given, else `developer-tools` |
    /// | `tenant_id`, `client_id`, `client_secret` | the service principal (`client_secret` usually an `ENV/` or `SEC/` reference); `client_id` alone picks a user-assigned managed identity |
    /// | `timeout` | each request, every attempt and pause included (default `10s`) |
    /// | `connect_timeout` | each connection (default `5s`) |
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
        let limits = Limits::from_options(opts)?;
        let retries = opts.parse::<u32>("retries", "a whole number of retries")?;
        opts.finish()?;
        let needs = |what: &str| Error::InvalidOption {
            store: store.to_string(),
            option: what.to_string(),
            problem: "is required for credential = \"client-secret\"".to_string(),
        };
        let kind = kind.as_deref().unwrap_or(if client_secret.is_some() {
            "client-secret"
        } else {
            "developer-tools"
        });
        let unused = |what: &str| Error::InvalidOption {
            store: store.to_string(),
            option: what.to_string(),
            problem: format!("has no use with credential = \"{kind}\""),
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
                return Err(Error::InvalidOption {
                    store: store.to_string(),
                    option: "credential".to_string(),
                    problem: "must be client-secret, managed-identity or developer-tools"
                        .to_string(),
                });
            }
        };
        let mut options = AzureOptions::new(vault_url, credential);
        options.name = store.to_string();
        options.timeout = limits.timeout;
        options.connect_timeout = limits.connect_timeout;
        if let Some(retries) = retries {
            if retries > 10 {
                return Err(Error::InvalidOption {
                    store: store.to_string(),
                    option: "retries".to_string(),
                    problem: "must be at most 10".to_string(),
                });
            }
            options.retries = retries;
        }
        Self::connect(options)
    }

    /// The vault's URL.
    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }
}

/// reqwest over rustls with the ring provider and Mozilla's roots.
pub(super) fn http_client(store: &str, timeout: Duration) -> Result<Arc<dyn HttpClient>> {
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

pub(super) fn make_credential(
    store: &str,
    credential: &AzureCredential,
    transport: Arc<dyn HttpClient>,
) -> Result<Arc<dyn TokenCredential>> {
    let client_options = || ClientOptions {
        transport: Some(Transport::new(transport.clone())),
        ..ClientOptions::default()
    };
    let invalid = |what: &str, e: azure_core::Error| Error::InvalidOption {
        store: store.to_string(),
        option: "credential".to_string(),
        problem: format!("{what}: {}", remote::shorten(&e.to_string())),
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

pub(super) fn time_duration(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
