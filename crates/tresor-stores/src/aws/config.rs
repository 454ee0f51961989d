//! The store's options.

use super::*;

/// Where and how to reach Secrets Manager.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// The store's name in messages (a config's store name).
    pub name: String,
    /// Region; `None` takes the default chain's (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// Service URL override, e.g. `http://127.0.0.1:5000` for moto.
    pub endpoint: Option<String>,
    /// Shared-config profile; `None` takes `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Prepended to every secret name (e.g. `team/`).
    pub prefix: String,
    /// The longest one connection may take to open (default 5 s).
    pub connect_timeout: Duration,
    /// The longest one call may take, every attempt and the pauses between
    /// them included (default 10 s).
    pub timeout: Duration,
    /// Attempts per call, the first included (default 3).
    pub max_attempts: u32,
    /// Recovery window of a soft delete, 7 to 30 days (default 30).
    pub recovery_window_days: u32,
    /// Allow a plain `http://` endpoint that is not this machine (default
    /// false); see [`plain_http`](crate::options::plain_http).
    pub insecure_http: bool,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            region: None,
            endpoint: None,
            profile: None,
            prefix: String::new(),
            connect_timeout: Limits::default().connect_timeout,
            timeout: Limits::default().timeout,
            max_attempts: 3,
            recovery_window_days: 30,
            insecure_http: false,
        }
    }
}
