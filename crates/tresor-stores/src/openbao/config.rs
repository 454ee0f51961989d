//! The store's options: where the server is and how to authenticate.

use super::*;
use crate::options::invalid_option;

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
    /// The longest one attempt may take to connect (default 5 s).
    pub connect_timeout: Duration,
    /// The longest one request may take, every attempt and the pauses
    /// between them included (default 10 s).
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
    /// `namespace`, `ca_file`, `timeout` (each request, retries included,
    /// default 10 s) and `connect_timeout` (each connection, default 5 s), `insecure_http` (default false). The
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
            return Err(invalid_option(
                store,
                TOKEN_FROM_ENV,
                "token_from_env = true takes the token from the environment: give no 'token', \
                 'role_id' or 'secret_id' with it",
            ));
        }
        let auth = match (token, role_id, secret_id) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid_option(
                    store,
                    "token",
                    "give the option 'token' or the options 'role_id' and 'secret_id', not both",
                ));
            }
            (Some(t), None, None) => Auth::Token(SecretString::from(t.to_string())),
            (None, Some(role), Some(secret)) => Auth::AppRole {
                role_id: role.to_string(),
                secret_id: SecretString::from(secret.to_string()),
                mount: approle_mount.unwrap_or("approle").to_string(),
            },
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(invalid_option(
                    store,
                    "role_id",
                    "AppRole needs both options 'role_id' and 'secret_id'",
                ));
            }
            (None, None, None) if from_env => {
                let token = TOKEN_ENVS
                    .iter()
                    .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
                    .ok_or_else(|| {
                        invalid_option(
                            store,
                            TOKEN_FROM_ENV,
                            "token_from_env = true, but neither BAO_TOKEN nor VAULT_TOKEN is set",
                        )
                    })?;
                Auth::Token(SecretString::from(token))
            }
            (None, None, None) => {
                return Err(invalid_option(
                    store,
                    "token",
                    "say where the token comes from: the option 'token' (e.g. token = \
                     \"ENV/BAO_TOKEN\" or \"SEC/bao/token\"), 'role_id' and 'secret_id', or \
                     token_from_env = true (BAO_TOKEN, else VAULT_TOKEN)",
                ));
            }
        };
        if approle_mount.is_some() && !matches!(auth, Auth::AppRole { .. }) {
            return Err(invalid_option(
                store,
                "approle_mount",
                "needs 'role_id' and 'secret_id'",
            ));
        }
        let mut out = Self::new(address, auth);
        out.name = store.to_string();
        out.insecure_http = insecure_http;
        if let Some(m) = options.get("mount") {
            out.mount = m.to_string();
        }
        out.namespace = options.get("namespace").map(str::to_string);
        out.ca_file = options.get("ca_file").map(PathBuf::from);
        let limits = Limits::from_options(options)?;
        out.timeout = limits.timeout;
        out.connect_timeout = limits.connect_timeout;
        options.finish()?;
        Ok(out)
    }

    /// Options with defaults: mount `secret`, the remote stores' time limits
    /// (10 s per request, 5 s per connection), no namespace.
    pub fn new(address: impl Into<String>, auth: Auth) -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            address: address.into(),
            mount: "secret".to_string(),
            auth,
            namespace: None,
            ca_file: None,
            connect_timeout: Limits::default().connect_timeout,
            timeout: Limits::default().timeout,
            insecure_http: false,
        }
    }
}
