//! AWS Secrets Manager as a store, through the official SDK
//! (`aws-sdk-secretsmanager`) driven from a private current-thread tokio
//! runtime, so the store is synchronous like every other.
//!
//! # Layout
//!
//! One Secrets Manager secret per tresor secret, named `<prefix><name>`
//! (tresor names are valid Secrets Manager names; the optional `prefix`,
//! e.g. `team/`, keeps tresor's secrets apart in a shared account). UTF-8
//! values are written as `SecretString`, anything else as `SecretBinary`;
//! a read returns whichever the version holds, byte for byte. A value may be
//! at most 65,536 bytes (Secrets Manager's limit).
//!
//! # Versions and labels
//!
//! Secrets Manager names versions by id. tresor writes every version with a
//! `ClientRequestToken` of its own, `tresor-version-<number, 20 digits>`,
//! which Secrets Manager keeps as the version id: the number is read back
//! from the id, and the first write is version 1. Versions written by other
//! tools (random ids) are numbered in creation order, each one past the
//! version before it; since Secrets Manager drops unlabelled versions once a
//! secret has more than about 100, such numbers can shift, and tresor's own
//! never do. The staging labels map one to one: `AWSCURRENT` is `current`,
//! `AWSPREVIOUS` is `previous`, `AWSPENDING` is `pending`. A write makes its
//! version current (Secrets Manager moves `AWSPREVIOUS` itself); a staged
//! write (`PutOptions::stage`) labels it pending; `set_label` moves a label
//! (`UpdateSecretVersionStage`). A staged write needs the secret to exist.
//!
//! # Check-and-set, and what is atomic
//!
//! A write reads the secret's labels (`DescribeSecret`), then writes version
//! `latest + 1` with that version's token. Secrets Manager refuses a token
//! already used for another value (`ResourceExistsException`), so of two
//! writers that read the same state exactly one gets the number: the other
//! gets [`Error::Conflict`] under `expect_version`, and otherwise starts over
//! (up to 3 times). `expect_version` itself is compared with the current
//! version read just before; what is atomic is "no other version was
//! written in between", not "no label moved in between". Two writers of the
//! *same* bytes with the same token both succeed (Secrets Manager treats the
//! second as a retry of the first); the outcome is the same value either way.
//! The same tokens make the SDK's retries of writes safe.
//!
//! # Metadata, delete
//!
//! Metadata is the secret's tags (keys at most 128 bytes, values at most 256,
//! no `aws:` prefix), merged by `TagResource` after the value is written (at
//! creation, in the same call); tags are per secret, not per version. The
//! write's `reason` is not kept (the manager's audit log keeps it). `history`
//! shows no actor and a length of 0. Soft delete schedules deletion with a
//! recovery window (`recovery_window_days`, 7 to 30, default 30); undelete is
//! `RestoreSecret`; purge is `DeleteSecret` with `ForceDeleteWithoutRecovery`.
//! A secret scheduled for deletion reads as not found and refuses writes
//! until it is restored or purged. (On AWS a purged name can take a few
//! seconds before it can be created again.)
//!
//! # Listing
//!
//! `ListSecrets` with a name filter, 100 per page, every page; names are
//! matched again exactly (the service's filter ignores case), deleted secrets
//! are left out, and names tresor would reject are skipped.
//!
//! # Network, credentials, errors
//!
//! Credentials, and the region unless given, come from the default AWS chain
//! (environment, shared config and credentials files, web identity, container
//! and instance metadata). `endpoint` overrides the service URL (e.g. a local
//! moto server). The time limits are those of every remote store: `timeout`
//! bounds each call, every attempt and the pauses between them included
//! (default 10 s), `connect_timeout` each connection (default 5 s); a dead
//! endpoint is [`Error::Unavailable`], never a hang. Up to `max_attempts`
//! attempts (default 3) with the SDK's jittered exponential backoff (from
//! 100 ms, at most 2 s) retry throttling (429), 5xx answers, timeouts and
//! broken connections.
//!
//! Errors name the store, the secret, Secrets Manager's error code and, for
//! calls that carry no value, its message. The SDK redacts `SecretString`
//! and `SecretBinary` in its own `Debug` output and logs. tresor copies read
//! values straight into [`SecretValue`]; the SDK's transient HTTP and JSON
//! buffers are not wiped (no HTTP client stack offers that).
//!
//! The store blocks the calling thread on its own tokio runtime; called from
//! inside another async runtime's task it refuses with
//! [`Error::Unavailable`] (use `spawn_blocking`) instead of blocking that
//! runtime.
//!
//! # Options (`tresor.toml`)
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `region` | AWS region | the default chain (`AWS_REGION`, profile) |
//! | `endpoint` | service URL override: `https://`, or `http://` to this machine (`localhost`, `127.0.0.0/8`, `::1`) | AWS's endpoint |
//! | `insecure_http` | allow an `http://` endpoint on another machine (the manager warns on every use) | `false` |
//! | `profile` | shared-config profile for credentials and region | `AWS_PROFILE` / `default` |
//! | `prefix` | prepended to every secret name | none |
//! | `connect_timeout` | each connection | `5s` |
//! | `timeout` | each call, every attempt and pause included | `10s` |
//! | `max_attempts` | attempts per call, first included (1 to 10) | `3` |
//! | `recovery_window_days` | soft delete's recovery window (7 to 30) | `30` |

use std::fmt;
use std::time::Duration;

use crate::remote::runtime::Runtime;
use crate::remote::{self, Limits, retry};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::{Blob, DateTime};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use tresor_core::{
    Capabilities, DeleteMode, Error, Health, Label, Metadata, PutOptions, Result, Secret,
    SecretInfo, SecretName, SecretValue, Selector, Store, VersionInfo, validate_metadata,
};

use crate::StoreOptions;

/// The store's name in messages unless [`AwsOptions::name`] gives another.
const DEFAULT_NAME: &str = "aws";
/// Largest value Secrets Manager takes (`SecretString` / `SecretBinary`).
pub const MAX_VALUE_LEN: usize = 65_536;
/// The prefix of the version ids tresor writes.
const TOKEN_PREFIX: &str = "tresor-version-";
/// Write attempts when another writer took the version number first.
const WRITE_ROUNDS: u32 = 3;
/// Page size of listings (the service's maximum).
const PAGE: i32 = 100;
/// Longest tag key and value Secrets Manager accepts.
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";
const PENDING: &str = "AWSPENDING";

mod calls;
mod config;
mod errors;
mod store;
#[cfg(test)]
mod tests;
mod versions;

pub use config::AwsOptions;
use errors::*;
use versions::*;

/// AWS Secrets Manager as a [`Store`] (see the [module docs](self)).
///
/// ```no_run
/// use tresor_core::{PutOptions, SecretName, SecretValue, Selector, Store};
/// use tresor_stores::aws::{Aws, AwsOptions};
///
/// let mut aws = Aws::connect(AwsOptions {
///     region: Some("eu-west-1".to_string()),
///     prefix: "team/".to_string(),
///     ..AwsOptions::default()
/// })?;
/// let name = SecretName::new("openai/api_key")?;
/// let version = aws.put(&name, &SecretValue::copy_from(b"sk-..."), &PutOptions::default())?;
/// assert_eq!(aws.get(&name, Selector::Version(version))?.value.expose_secret(), b"sk-...");
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub struct Aws {
    name: String,
    prefix: String,
    region: String,
    endpoint: Option<String>,
    recovery_window_days: u32,
    /// How many attempts of what length, for messages.
    attempts: String,
    client: Client,
    runtime: Runtime,
}

impl fmt::Debug for Aws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aws")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Aws {
    /// Builds the client: resolves the region and the credential chain
    /// (lazily: credentials are fetched at the first call). Nothing is sent;
    /// [`Store::health`] probes the service.
    pub fn connect(options: AwsOptions) -> Result<Self> {
        Self::connect_with(options, None)
    }

    /// [`Aws::connect`], with fixed credentials instead of the default
    /// chain when `credentials` is given (tests).
    fn connect_with(
        options: AwsOptions,
        credentials: Option<aws_sdk_secretsmanager::config::Credentials>,
    ) -> Result<Self> {
        let name = options.name.clone();
        let invalid =
            |option: &str, problem: String| crate::options::invalid_option(&name, option, &problem);
        if let Some(endpoint) = &options.endpoint {
            crate::options::plain_http(&name, "endpoint", endpoint, options.insecure_http)?;
        }
        if !(1..=10).contains(&options.max_attempts) {
            return Err(invalid("max_attempts", "must be 1 to 10".to_string()));
        }
        if !(7..=30).contains(&options.recovery_window_days) {
            return Err(invalid(
                "recovery_window_days",
                "must be 7 to 30 (Secrets Manager's range)".to_string(),
            ));
        }
        if !options.prefix.is_empty() && !valid_aws_name(&options.prefix) {
            return Err(invalid(
                "prefix",
                format!(
                    "{:?} may hold only A-Z a-z 0-9 / _ + = . @ -",
                    options.prefix
                ),
            ));
        }
        let limits = Limits {
            timeout: options.timeout,
            connect_timeout: options.connect_timeout,
        };
        limits.check(&name)?;
        let runtime = Runtime::new(&name)?;
        // `timeout` bounds the whole call, retries included.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(limits.connect())
            .read_timeout(limits.timeout)
            .operation_attempt_timeout(limits.timeout)
            .operation_timeout(limits.timeout)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(options.max_attempts)
            .with_initial_backoff(retry::FIRST_BACKOFF)
            .with_max_backoff(retry::MAX_BACKOFF);
        // The SDK's hyper/rustls client on ring (see the workspace's Cargo.toml).
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(retries);
        if let Some(region) = &options.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &options.endpoint {
            loader = loader.endpoint_url(endpoint.trim_end_matches('/'));
        }
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let config = runtime
            .block_on(loader.load())
            .map_err(|inside| inside.error(&name, "setting up"))?;
        let region = config.region().map(ToString::to_string).ok_or_else(|| {
            invalid(
                "region",
                "no region: set it, AWS_REGION, or a profile's region".to_string(),
            )
        })?;
        Ok(Self {
            name,
            prefix: options.prefix,
            region,
            endpoint: options.endpoint,
            recovery_window_days: options.recovery_window_days,
            attempts: format!(
                "up to {} attempt{} within {} ms, {} ms to connect",
                options.max_attempts,
                if options.max_attempts == 1 { "" } else { "s" },
                limits.timeout.as_millis(),
                limits.connect().as_millis()
            ),
            client: Client::new(&config),
            runtime,
        })
    }

    /// Builds the store from its `tresor.toml` options (keys in the
    /// [module docs](self#options-tresortoml)); unknown keys are an error.
    ///
    /// ```
    /// use tresor_stores::StoreOptions;
    /// use tresor_stores::aws::Aws;
    ///
    /// let options = StoreOptions::new("team-aws")
    ///     .with("region", "eu-west-1")
    ///     .with("prefix", "team/")
    ///     .with("timeout", "2s");
    /// let store = Aws::from_options(&options)?;
    /// assert_eq!((store.region(), store.prefix()), ("eu-west-1", "team/"));
    ///
    /// let typo = StoreOptions::new("team-aws").with("regoin", "eu-west-1");
    /// assert!(Aws::from_options(&typo).is_err());
    /// # Ok::<(), tresor_core::Error>(())
    /// ```
    pub fn from_options(options: &StoreOptions) -> Result<Self> {
        let defaults = AwsOptions::default();
        let limits = Limits::from_options(options)?;
        let typed = AwsOptions {
            name: options.store().to_string(),
            region: options.get("region").map(str::to_string),
            endpoint: options.get("endpoint").map(str::to_string),
            profile: options.get("profile").map(str::to_string),
            prefix: options.get("prefix").unwrap_or_default().to_string(),
            connect_timeout: limits.connect_timeout,
            timeout: limits.timeout,
            max_attempts: options
                .parse("max_attempts", "a whole number from 1 to 10")?
                .unwrap_or(defaults.max_attempts),
            recovery_window_days: options
                .parse(
                    "recovery_window_days",
                    "a whole number of days from 7 to 30",
                )?
                .unwrap_or(defaults.recovery_window_days),
            insecure_http: options
                .bool(crate::options::INSECURE_HTTP)?
                .unwrap_or(false),
        };
        options.finish()?;
        Self::connect(typed)
    }

    /// The region requests go to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The prefix of every secret name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The SDK client the store uses (for callers that need an operation
    /// tresor does not offer; values it reads are not wrapped).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `future` on the store's runtime (with [`Aws::client`]).
    ///
    /// # Panics
    ///
    /// Called from inside another tokio runtime, as tokio's `block_on` does.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.runtime().block_on(future)
    }
}
