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
//! moto server). Each attempt has a connect timeout and a read timeout
//! (default 5 s each); up to `max_attempts` attempts (default 3) with
//! jittered exponential backoff retry throttling (429), 5xx answers, timeouts
//! and broken connections; the whole call is bounded by
//! `max_attempts × (connect + read timeout) + 2 s`, so a dead endpoint is
//! [`Error::Unavailable`], never a hang.
//!
//! Errors name the store, the secret, Secrets Manager's error code and, for
//! calls that carry no value, its message. The SDK redacts `SecretString`
//! and `SecretBinary` in its own `Debug` output and logs. tresor copies read
//! values straight into [`SecretValue`]; the SDK's transient HTTP and JSON
//! buffers are not wiped (no HTTP client stack offers that).
//!
//! The store blocks the calling thread; from async code, call it through
//! `spawn_blocking` (a tokio runtime cannot be entered from inside another).
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
//! | `connect_timeout` | per attempt | `5s` |
//! | `timeout` | read timeout per attempt | `5s` |
//! | `max_attempts` | attempts per call, first included (1 to 10) | `3` |
//! | `recovery_window_days` | soft delete's recovery window (7 to 30) | `30` |

use std::fmt;
use std::time::Duration;

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
    /// Connect timeout per attempt (default 5 s).
    pub connect_timeout: Duration,
    /// Read timeout per attempt (default 5 s).
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
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            recovery_window_days: 30,
            insecure_http: false,
        }
    }
}

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
    runtime: tokio::runtime::Runtime,
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
        let invalid = |what: String| Error::Validation(format!("{name}: {what}"));
        if let Some(endpoint) = &options.endpoint {
            crate::options::plain_http(&name, "endpoint", endpoint, options.insecure_http)?;
        }
        if !(1..=10).contains(&options.max_attempts) {
            return Err(invalid("max_attempts must be 1 to 10".to_string()));
        }
        if !(7..=30).contains(&options.recovery_window_days) {
            return Err(invalid(
                "recovery_window_days must be 7 to 30 (Secrets Manager's range)".to_string(),
            ));
        }
        if !options.prefix.is_empty() && !valid_aws_name(&options.prefix) {
            return Err(invalid(format!(
                "prefix {:?} may hold only A-Z a-z 0-9 / _ + = . @ -",
                options.prefix
            )));
        }
        if options.connect_timeout.is_zero() || options.timeout.is_zero() {
            return Err(invalid("timeouts must be more than zero".to_string()));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Unavailable {
                store: name.clone(),
                reason: format!("cannot start the I/O runtime: {e}"),
            })?;
        let attempt = options.connect_timeout + options.timeout;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.timeout)
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt * options.max_attempts + Duration::from_secs(2))
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(options.max_attempts)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(2));
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
        let config = runtime.block_on(loader.load());
        let region = config.region().map(ToString::to_string).ok_or_else(|| {
            invalid(
                "no region: set the store's `region` option, AWS_REGION, or a profile's region"
                    .to_string(),
            )
        })?;
        Ok(Self {
            name,
            prefix: options.prefix,
            region,
            endpoint: options.endpoint,
            recovery_window_days: options.recovery_window_days,
            attempts: format!(
                "up to {} attempt{} of {} ms connect + {} ms read",
                options.max_attempts,
                if options.max_attempts == 1 { "" } else { "s" },
                options.connect_timeout.as_millis(),
                options.timeout.as_millis()
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
        let typed = AwsOptions {
            name: options.store().to_string(),
            region: options.get("region").map(str::to_string),
            endpoint: options.get("endpoint").map(str::to_string),
            profile: options.get("profile").map(str::to_string),
            prefix: options.get("prefix").unwrap_or_default().to_string(),
            connect_timeout: options
                .duration("connect_timeout")?
                .unwrap_or(defaults.connect_timeout),
            timeout: options.duration("timeout")?.unwrap_or(defaults.timeout),
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
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    // --- calls --------------------------------------------------------------

    fn id(&self, name: &SecretName) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The secret's labels, tags and deletion state; `None` if it does not
    /// exist. Versions are numbered from the labelled ones when all are
    /// tresor's, else from a full listing.
    fn state(&self, name: &SecretName) -> Result<Option<State>> {
        self.state_with(name, false)
    }

    /// [`Aws::state`]; `every_version` numbers from a full listing even when
    /// the labelled versions are all tresor's (unlabelled ones included).
    fn state_with(&self, name: &SecretName, every_version: bool) -> Result<Option<State>> {
        let id = self.id(name);
        let described = self
            .runtime
            .block_on(self.client.describe_secret().secret_id(&id).send());
        let out = match described {
            Ok(out) => out,
            Err(e) => {
                let f = self.failure(e, false);
                return match f.code() {
                    Some(NOT_FOUND) => Ok(None),
                    _ => Err(self.error(f, &format!("'{name}'"))),
                };
            }
        };
        let labelled: Vec<(String, i64, Vec<String>)> = out
            .version_ids_to_stages()
            .map(|m| {
                m.iter()
                    .map(|(id, stages)| (id.clone(), 0, stages.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let versions =
            if !every_version && labelled.iter().all(|(id, ..)| token_number(id).is_some()) {
                number_versions(labelled)
            } else {
                self.list_versions(name)?
            };
        Ok(Some(State {
            deleted_at: out.deleted_date().map(millis),
            versions,
            tags: tags_to_metadata(out.tags()),
        }))
    }

    /// Every version (deprecated ones included), numbered, in listing order.
    fn list_versions(&self, name: &SecretName) -> Result<Vec<Version>> {
        let id = self.id(name);
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.runtime.block_on(
                self.client
                    .list_secret_version_ids()
                    .secret_id(&id)
                    .include_deprecated(true)
                    .max_results(PAGE)
                    .set_next_token(token.take())
                    .send(),
            );
            let page =
                page.map_err(|e| self.error(self.failure(e, false), &format!("'{name}'")))?;
            for v in page.versions() {
                if let Some(vid) = v.version_id() {
                    listed.push((
                        vid.to_string(),
                        v.created_date().map_or(0, millis),
                        v.version_stages().to_vec(),
                    ));
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(number_versions(listed))
    }

    /// Reads one version, by id or by stage.
    fn read(
        &self,
        name: &SecretName,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<(String, SecretValue), Failure> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .get_secret_value()
                    .secret_id(self.id(name))
                    .set_version_id(version_id.map(str::to_string))
                    .set_version_stage(stage.map(str::to_string))
                    .send(),
            )
            .map_err(|e| self.failure(e, false))?;
        let mut out = out;
        let id = out.version_id().unwrap_or_default().to_string();
        let value = if let Some(text) = out.secret_string.take() {
            SecretValue::from(text)
        } else if let Some(blob) = out.secret_binary.take() {
            SecretValue::from(blob.into_inner())
        } else {
            SecretValue::from(Vec::new())
        };
        Ok((id, value))
    }

    /// The number of the version with id `version_id`.
    fn number_of(&self, name: &SecretName, version_id: &str) -> Result<u64> {
        if let Some(n) = token_number(version_id) {
            return Ok(n);
        }
        self.list_versions(name)?
            .into_iter()
            .find(|v| v.id == version_id)
            .map(|v| v.number)
            .ok_or_else(|| Error::Integrity {
                store: self.name.clone(),
                detail: format!("'{name}': the version read is not in its version list"),
            })
    }

    fn create(
        &self,
        name: &SecretName,
        value: &SecretValue,
        tags: Vec<Tag>,
    ) -> Result<(), Failure> {
        let call = self
            .client
            .create_secret()
            .name(self.id(name))
            .client_request_token(version_token(1))
            .set_tags((!tags.is_empty()).then_some(tags));
        let call = match std::str::from_utf8(value.expose_secret()) {
            Ok(text) => call.secret_string(text),
            Err(_) => call.secret_binary(Blob::new(value.expose_secret())),
        };
        self.runtime
            .block_on(call.send())
            .map(drop)
            .map_err(|e| self.failure(e, true))
    }

    /// Writes version `number`; the stages the answer shows it holds.
    fn put_version(
        &self,
        name: &SecretName,
        value: &SecretValue,
        number: u64,
        stage: bool,
    ) -> Result<Vec<String>, Failure> {
        let call = self
            .client
            .put_secret_value()
            .secret_id(self.id(name))
            .client_request_token(version_token(number))
            .set_version_stages(stage.then(|| vec![PENDING.to_string()]));
        let call = match std::str::from_utf8(value.expose_secret()) {
            Ok(text) => call.secret_string(text),
            Err(_) => call.secret_binary(Blob::new(value.expose_secret())),
        };
        self.runtime
            .block_on(call.send())
            .map(|out| out.version_stages().to_vec())
            .map_err(|e| self.failure(e, true))
    }

    fn tag(&self, name: &SecretName, tags: Vec<Tag>) -> Result<()> {
        self.runtime
            .block_on(
                self.client
                    .tag_resource()
                    .secret_id(self.id(name))
                    .set_tags(Some(tags))
                    .send(),
            )
            .map(drop)
            .map_err(|e| self.error(self.failure(e, false), &format!("tags of '{name}'")))
    }

    // --- errors ---------------------------------------------------------------

    /// What went wrong with a call, without any value: a service error's code
    /// (and its message unless the call carried a value), or a transport error.
    fn failure<E>(&self, e: SdkError<E, HttpResponse>, carries_value: bool) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match e {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let err = service.err();
                Failure::Service {
                    status,
                    code: err.code().unwrap_or("UnknownError").to_string(),
                    message: if carries_value {
                        String::new()
                    } else {
                        shorten(err.message().unwrap_or_default())
                    },
                }
            }
            SdkError::TimeoutError(_) => Failure::Transport("timed out".to_string()),
            SdkError::DispatchFailure(dispatch) => {
                let detail = if dispatch.is_timeout() {
                    "timed out".to_string()
                } else {
                    match dispatch.as_connector_error() {
                        Some(c) => error_chain(c),
                        None => "the request could not be sent".to_string(),
                    }
                };
                Failure::Transport(detail)
            }
            SdkError::ResponseError(_) => {
                Failure::Transport("the answer could not be read".to_string())
            }
            SdkError::ConstructionFailure(_) => Failure::Request,
            _ => Failure::Transport("unknown SDK error".to_string()),
        }
    }

    /// The tresor error for `failure` while working on `what` (e.g. `'a/b'`).
    fn error(&self, failure: Failure, what: &str) -> Error {
        let store = self.name.clone();
        match failure {
            Failure::Transport(detail) => Error::Unavailable {
                store,
                reason: format!(
                    "{what}: Secrets Manager in {} not reached: {detail} ({})",
                    self.region, self.attempts
                ),
            },
            Failure::Request => Error::Validation(format!("{store}: {what}: invalid request")),
            Failure::Service {
                status,
                code,
                message,
            } => {
                let detail = format!("{code}{}", colon(&message));
                match code.as_str() {
                    NOT_FOUND => Error::NotFound {
                        store,
                        what: what.to_string(),
                    },
                    "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "IncompleteSignature"
                    | "MissingAuthenticationToken"
                    | "ExpiredTokenException"
                    | "InvalidClientTokenId"
                    | "DecryptionFailure" => Error::Auth {
                        store,
                        reason: format!("{what}: permission denied ({detail})"),
                    },
                    "ThrottlingException"
                    | "TooManyRequestsException"
                    | "InternalServiceError"
                    | "InternalFailure"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException" => Error::Unavailable {
                        store,
                        reason: format!("{what}: {detail}"),
                    },
                    _ if status == 429 || status >= 500 => Error::Unavailable {
                        store,
                        reason: format!("{what}: HTTP {status}: {detail}"),
                    },
                    _ => Error::Validation(format!("{store}: {what}: {detail}")),
                }
            }
        }
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            store: self.name.clone(),
            what,
        }
    }

    /// A read's failure: a secret scheduled for deletion is not found.
    fn read_error(&self, failure: Failure, what: &str) -> Error {
        match failure.code() {
            Some(INVALID_REQUEST) if failure.mentions_deletion() => {
                self.not_found(format!("{what} (deleted)"))
            }
            _ => self.error(failure, what),
        }
    }

    fn check_value(&self, name: &SecretName, value: &SecretValue) -> Result<()> {
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::Validation(format!(
                "{}: the value for '{name}' is {} bytes; Secrets Manager takes at most {MAX_VALUE_LEN}",
                self.name,
                value.len()
            )));
        }
        Ok(())
    }

    fn tags_for(&self, metadata: &Metadata) -> Result<Vec<Tag>> {
        validate_metadata(metadata)?;
        metadata
            .iter()
            .map(|(key, value)| {
                if key.len() > MAX_TAG_KEY
                    || value.len() > MAX_TAG_VALUE
                    || key.to_ascii_lowercase().starts_with("aws:")
                {
                    return Err(Error::Validation(format!(
                        "{}: metadata key {key:?}: Secrets Manager tags take keys of at most \
                         {MAX_TAG_KEY} bytes not starting with aws:, values of at most {MAX_TAG_VALUE}",
                        self.name
                    )));
                }
                Ok(Tag::builder().key(key).value(value).build())
            })
            .collect()
    }
}

/// A failed call, reduced to what may be shown.
#[derive(Debug)]
enum Failure {
    /// The service answered with an error.
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// The service was not reached or its answer not read.
    Transport(String),
    /// The SDK refused to build the request.
    Request,
}

const NOT_FOUND: &str = "ResourceNotFoundException";
const EXISTS: &str = "ResourceExistsException";
const INVALID_REQUEST: &str = "InvalidRequestException";

impl Failure {
    fn code(&self) -> Option<&str> {
        match self {
            Failure::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    fn mentions_deletion(&self) -> bool {
        matches!(self, Failure::Service { message, .. } if message.contains("deleted") || message.contains("deletion"))
    }
}

/// What `DescribeSecret` (or a listing) tells about a secret.
#[derive(Debug)]
struct State {
    deleted_at: Option<i64>,
    versions: Vec<Version>,
    tags: Metadata,
}

impl State {
    fn holder(&self, stage: &str) -> Option<&Version> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == stage))
    }

    fn current(&self) -> u64 {
        self.holder(CURRENT).map_or(0, |v| v.number)
    }

    fn latest(&self) -> u64 {
        self.versions.iter().map(|v| v.number).max().unwrap_or(0)
    }
}

/// One version, numbered.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    id: String,
    number: u64,
    stages: Vec<String>,
    created_at: i64,
}

impl Version {
    fn labels(&self) -> Vec<Label> {
        let mut labels: Vec<Label> = self.stages.iter().filter_map(|s| label_of(s)).collect();
        labels.sort_by_key(|l| l.as_str());
        labels
    }
}

/// The version id tresor writes for version `number`.
fn version_token(number: u64) -> String {
    format!("{TOKEN_PREFIX}{number:020}")
}

/// The number in a tresor version id.
fn token_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix(TOKEN_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// Numbers versions: tresor's by their ids, others in creation order (ties
/// in listing order), each one past the highest number before it.
fn number_versions(mut listed: Vec<(String, i64, Vec<String>)>) -> Vec<Version> {
    listed.sort_by_key(|(_, created, _)| *created);
    let mut highest = 0;
    listed
        .into_iter()
        .map(|(id, created_at, stages)| {
            let number = token_number(&id).unwrap_or(highest + 1);
            highest = highest.max(number);
            Version {
                id,
                number,
                stages,
                created_at,
            }
        })
        .collect()
}

fn stage_of(label: Label) -> &'static str {
    match label {
        Label::Current => CURRENT,
        Label::Pending => PENDING,
        Label::Previous => PREVIOUS,
    }
}

fn label_of(stage: &str) -> Option<Label> {
    match stage {
        CURRENT => Some(Label::Current),
        PENDING => Some(Label::Pending),
        PREVIOUS => Some(Label::Previous),
        _ => None,
    }
}

fn millis(t: &DateTime) -> i64 {
    t.to_millis().unwrap_or(0)
}

fn tags_to_metadata(tags: &[Tag]) -> Metadata {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Whether `name` uses only the characters Secrets Manager allows in names.
fn valid_aws_name(name: &str) -> bool {
    name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

/// An error and its sources in words, each said once (transport errors
/// hold no request or response bodies).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    shorten(&parts.join(": "))
}

fn shorten(message: &str) -> String {
    let message = message.trim();
    if message.chars().count() > 200 {
        format!("{}…", message.chars().take(200).collect::<String>())
    } else {
        message.to_string()
    }
}

fn colon(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl Store for Aws {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: false,
            versions: true,
            read_labels: true,
            staging: true,
            move_labels: true,
            metadata: true,
            list: true,
            check_and_set: true,
            soft_delete: true,
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        let what = match selector {
            Selector::Label(Label::Current) => format!("'{name}'"),
            other => format!("'{name}' {other}"),
        };
        let read = match selector {
            Selector::Version(0) => return Err(self.not_found(what)),
            Selector::Version(n) => match self.read(name, Some(&version_token(n)), None) {
                // Not one of tresor's ids: a version another tool wrote?
                Err(f) if f.code() == Some(NOT_FOUND) => {
                    if self.state(name)?.is_none() {
                        return Err(self.not_found(what));
                    }
                    let versions = self.list_versions(name)?;
                    match versions
                        .iter()
                        .find(|v| v.number == n && token_number(&v.id).is_none())
                    {
                        Some(v) => self.read(name, Some(&v.id), None),
                        None => return Err(self.not_found(what)),
                    }
                }
                other => other,
            },
            Selector::Label(label) => self.read(name, None, Some(stage_of(label))),
        };
        let (id, value) = read.map_err(|f| self.read_error(f, &what))?;
        let version = self.number_of(name, &id)?;
        Ok(Secret {
            name: name.clone(),
            version,
            value,
        })
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        self.check_value(name, value)?;
        let tags = self.tags_for(&options.metadata)?;
        let what = format!("write of '{name}'");
        for round in 0..WRITE_ROUNDS {
            // After a collision, count unlabelled versions too: the newest
            // version may have lost its label to another tool.
            let Some(state) = self.state_with(name, round > 0)? else {
                if let Some(expected) = options.expect_version.filter(|&v| v != 0) {
                    return Err(Error::Conflict {
                        store: self.name.clone(),
                        name: name.to_string(),
                        expected,
                        found: 0,
                    });
                }
                if options.stage {
                    return Err(self.not_found(format!(
                        "'{name}' (a pending version needs the secret to exist; write it first)"
                    )));
                }
                match self.create(name, value, tags.clone()) {
                    Ok(()) => return Ok(1),
                    // Another writer created it first.
                    Err(f) if f.code() == Some(EXISTS) => {
                        if options.expect_version.is_some() {
                            let found = self.state(name)?.map_or(0, |s| s.current());
                            return Err(Error::Conflict {
                                store: self.name.clone(),
                                name: name.to_string(),
                                expected: 0,
                                found,
                            });
                        }
                        continue;
                    }
                    Err(f) => return Err(self.error(f, &what)),
                }
            };
            if state.deleted_at.is_some() {
                return Err(Error::Validation(format!(
                    "{}: '{name}' is scheduled for deletion: undelete or purge it before writing",
                    self.name
                )));
            }
            let current = state.current();
            if let Some(expected) = options.expect_version
                && expected != current
            {
                return Err(Error::Conflict {
                    store: self.name.clone(),
                    name: name.to_string(),
                    expected,
                    found: current,
                });
            }
            let number = state.latest() + 1;
            let wanted = if options.stage { PENDING } else { CURRENT };
            let taken = match self.put_version(name, value, number, options.stage) {
                // The same bytes already written under this number by another
                // writer count as ours only while the version holds the label.
                Ok(stages) => !stages.iter().any(|s| s == wanted),
                Err(f) if f.code() == Some(EXISTS) => true,
                Err(f) => return Err(self.error(f, &what)),
            };
            if taken {
                if let Some(expected) = options.expect_version {
                    let found = self.state(name)?.map_or(0, |s| s.current());
                    return Err(Error::Conflict {
                        store: self.name.clone(),
                        name: name.to_string(),
                        expected,
                        found,
                    });
                }
                continue;
            }
            if !tags.is_empty() {
                self.tag(name, tags)?;
            }
            return Ok(number);
        }
        Err(Error::Unavailable {
            store: self.name.clone(),
            reason: format!(
                "{what}: other writers took the next version number {WRITE_ROUNDS} times in a row"
            ),
        })
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let what = format!("'{name}'");
        let call = self.client.delete_secret().secret_id(self.id(name));
        let call = match mode {
            DeleteMode::Soft => call.recovery_window_in_days(i64::from(self.recovery_window_days)),
            DeleteMode::Purge => {
                // Secrets Manager force-deletes a missing secret without
                // complaint; tresor says it was not there.
                if self.state(name)?.is_none() {
                    return Err(self.not_found(what));
                }
                call.force_delete_without_recovery(true)
            }
        };
        match self.runtime.block_on(call.send()) {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = self.failure(e, false);
                match f.code() {
                    Some(INVALID_REQUEST) if f.mentions_deletion() => {
                        Err(self.not_found(format!("{what} (already deleted)")))
                    }
                    _ => Err(self.error(f, &format!("delete of {what}"))),
                }
            }
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let full = format!("{}{prefix}", self.prefix);
        // The service reads a leading '-' or '!' as negation; such prefixes
        // (and the empty one) are matched here only.
        let filter = (!full.is_empty() && !full.starts_with(['-', '!'])).then(|| {
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(&full)
                .build()
        });
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.runtime.block_on(
                self.client
                    .list_secrets()
                    .include_planned_deletion(false)
                    .max_results(PAGE)
                    .set_filters(filter.clone().map(|f| vec![f]))
                    .set_next_token(token.take())
                    .send(),
            );
            let page = page.map_err(|e| {
                self.error(self.failure(e, false), &format!("listing of '{prefix}'"))
            })?;
            for entry in page.secret_list() {
                let Some(aws_name) = entry.name() else {
                    continue;
                };
                if entry.deleted_date().is_some() || !aws_name.starts_with(&full) {
                    continue;
                }
                let Ok(name) = SecretName::new(&aws_name[self.prefix.len()..]) else {
                    continue;
                };
                let labelled: Vec<_> = entry
                    .secret_versions_to_stages()
                    .map(|m| {
                        m.iter()
                            .map(|(id, stages)| (id.clone(), 0, stages.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let versions = if labelled.iter().all(|(id, ..)| token_number(id).is_some()) {
                    number_versions(labelled)
                } else {
                    self.list_versions(&name)?
                };
                let state = State {
                    deleted_at: None,
                    versions,
                    tags: tags_to_metadata(entry.tags()),
                };
                out.push(SecretInfo {
                    current: state.current(),
                    latest: state.latest(),
                    pending: state.holder(PENDING).map(|v| v.number),
                    updated_at: entry.last_changed_date().map_or(0, millis),
                    deleted_at: None,
                    metadata: state.tags,
                    name,
                });
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        if self.state(name)?.is_none() {
            return Err(self.not_found(format!("'{name}'")));
        }
        let mut versions = self.list_versions(name)?;
        if versions.is_empty() {
            return Err(self.not_found(format!("'{name}'")));
        }
        versions.sort_by_key(|v| v.number);
        Ok(versions
            .into_iter()
            .map(|v| VersionInfo {
                version: v.number,
                created_at: v.created_at,
                actor: String::new(),
                reason: None,
                labels: v.labels(),
                destroyed_at: None,
                len: 0,
            })
            .collect())
    }

    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        self.runtime
            .block_on(self.client.restore_secret().secret_id(self.id(name)).send())
            .map(drop)
            .map_err(|e| self.error(self.failure(e, false), &format!("'{name}'")))
    }

    fn set_label(&mut self, name: &SecretName, label: Label, version: u64) -> Result<()> {
        let state = self
            .state(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        if state.deleted_at.is_some() {
            return Err(self.not_found(format!("'{name}' (deleted)")));
        }
        let target = state.versions.iter().find(|v| v.number == version).cloned();
        // A version without labels is missing from DescribeSecret's map.
        let target = match target {
            Some(t) => t,
            None => self
                .list_versions(name)?
                .into_iter()
                .find(|v| v.number == version)
                .ok_or_else(|| self.not_found(format!("'{name}' version {version}")))?,
        };
        let stage = stage_of(label);
        let holder = state.holder(stage).map(|v| v.id.clone());
        if holder.as_deref() == Some(target.id.as_str()) {
            return Ok(());
        }
        self.runtime
            .block_on(
                self.client
                    .update_secret_version_stage()
                    .secret_id(self.id(name))
                    .version_stage(stage)
                    .move_to_version_id(&target.id)
                    .set_remove_from_version_id(holder)
                    .send(),
            )
            .map(drop)
            .map_err(|e| {
                self.error(
                    self.failure(e, false),
                    &format!("moving label {label} of '{name}'"),
                )
            })
    }

    fn health(&mut self) -> Health {
        let probe = self
            .runtime
            .block_on(self.client.list_secrets().max_results(1).send());
        let place = format!(
            "Secrets Manager in {} at {}",
            self.region,
            self.endpoint.as_deref().unwrap_or("AWS")
        );
        match probe {
            Ok(_) => Health {
                reachable: true,
                authenticated: true,
                detail: format!("{place}; credentials accepted"),
            },
            Err(e) => match self.error(self.failure(e, false), "probe") {
                Error::Unavailable { reason, .. } => Health {
                    reachable: false,
                    authenticated: false,
                    detail: reason,
                },
                Error::Auth { reason, .. } => Health {
                    reachable: true,
                    authenticated: false,
                    detail: format!("{place}; {reason}"),
                },
                other => Health {
                    reachable: true,
                    authenticated: false,
                    detail: format!("{place}; {other}"),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    #[test]
    fn version_tokens_carry_the_number() {
        let t = version_token(7);
        assert_eq!(t, "tresor-version-00000000000000000007");
        assert!((32..=64).contains(&t.len()), "ClientRequestToken length");
        assert_eq!(token_number(&t), Some(7));
        assert_eq!(token_number(&version_token(u64::MAX)), Some(u64::MAX));
        for foreign in [
            "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1",
            "tresor-version-0000000000000000000x",
            "tresor-version-00000000000000000000",
            "tresor-version-7",
        ] {
            assert_eq!(token_number(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn foreign_versions_number_after_the_one_before() {
        let v = |id: &str, t: i64| (id.to_string(), t, Vec::new());
        let numbered = number_versions(vec![
            v(&version_token(2), 20),
            v("uuid-b", 30),
            v("uuid-a", 10),
            v(&version_token(4), 40),
            v("uuid-c", 40),
        ]);
        let got: Vec<(&str, u64)> = numbered.iter().map(|v| (v.id.as_str(), v.number)).collect();
        assert_eq!(
            got,
            [
                ("uuid-a", 1),
                (version_token(2).as_str(), 2),
                ("uuid-b", 3),
                (version_token(4).as_str(), 4),
                ("uuid-c", 5),
            ]
        );
    }

    #[test]
    fn options_are_checked_before_any_call() {
        let bad = |o: AwsOptions| Aws::connect(o).unwrap_err().kind();
        let base = || AwsOptions {
            region: Some("us-east-1".to_string()),
            ..AwsOptions::default()
        };
        assert_eq!(
            bad(AwsOptions {
                endpoint: Some("127.0.0.1:5000".into()),
                ..base()
            }),
            "validation"
        );
        // Plain http:// to another machine needs insecure_http.
        assert_eq!(
            bad(AwsOptions {
                endpoint: Some("http://sm.example:5000".into()),
                ..base()
            }),
            "validation"
        );
        Aws::connect(AwsOptions {
            endpoint: Some("http://sm.example:5000".into()),
            insecure_http: true,
            ..base()
        })
        .unwrap();
        assert_eq!(
            bad(AwsOptions {
                max_attempts: 0,
                ..base()
            }),
            "validation"
        );
        assert_eq!(
            bad(AwsOptions {
                recovery_window_days: 3,
                ..base()
            }),
            "validation"
        );
        assert_eq!(
            bad(AwsOptions {
                prefix: "team space/".into(),
                ..base()
            }),
            "validation"
        );
        let store = Aws::connect(AwsOptions {
            prefix: "team/".into(),
            ..base()
        })
        .unwrap();
        assert_eq!(store.id(&name("a/b")), "team/a/b");
        assert!(format!("{store:?}").contains("us-east-1"));
    }

    #[test]
    fn from_options_reads_every_key_and_rejects_the_rest() {
        let o = StoreOptions::new("team")
            .with("region", "eu-west-1")
            .with("endpoint", "http://127.0.0.1:1")
            .with("prefix", "p/")
            .with("connect_timeout", "500ms")
            .with("timeout", "2s")
            .with("max_attempts", "4")
            .with("recovery_window_days", "7");
        let store = Aws::from_options(&o).unwrap();
        assert_eq!(
            (store.name(), store.region(), store.prefix()),
            ("team", "eu-west-1", "p/")
        );
        assert!(
            store
                .attempts
                .contains("4 attempts of 500 ms connect + 2000 ms read")
        );
        let o = StoreOptions::new("team")
            .with("region", "eu-west-1")
            .with("timeout", "soon-secret");
        let e = Aws::from_options(&o).unwrap_err().to_string();
        assert!(e.contains("timeout") && !e.contains("soon-secret"), "{e}");
        let o = StoreOptions::new("team")
            .with("region", "eu-west-1")
            .with("endpont", "http://x");
        assert!(
            Aws::from_options(&o)
                .unwrap_err()
                .to_string()
                .contains("endpont")
        );
    }

    /// A fake Secrets Manager: answers each request (one per connection)
    /// with `answer(operation, body)`; counts requests per operation.
    struct Fake {
        url: String,
        seen: Arc<Mutex<Vec<String>>>,
    }

    type Answer = Box<dyn FnMut(&str, &str) -> (u16, String) + Send>;

    fn fake(mut answer: Answer) -> Fake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let (mut length, mut target) = (0, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("x-amz-target:") {
                        target = line.trim().rsplit('.').next().unwrap_or("").to_string();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push(target.clone());
                let (status, reply) = answer(&target, &String::from_utf8_lossy(&body));
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Fake { url, seen }
    }

    impl Fake {
        fn store(&self) -> Aws {
            let credentials = aws_sdk_secretsmanager::config::Credentials::new(
                "AKIDTEST",
                "test-secret",
                None,
                None,
                "test",
            );
            Aws::connect_with(
                AwsOptions {
                    region: Some("us-east-1".to_string()),
                    endpoint: Some(self.url.clone()),
                    timeout: Duration::from_millis(500),
                    connect_timeout: Duration::from_millis(500),
                    ..AwsOptions::default()
                },
                Some(credentials),
            )
            .unwrap()
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    fn error(code: &str, message: &str) -> (u16, String) {
        (
            400,
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        )
    }

    const CURRENT_V3: &str = r#"{"Name":"a/b","VersionId":"tresor-version-00000000000000000003","SecretString":"v","VersionStages":["AWSCURRENT"]}"#;

    #[test]
    fn reads_retry_on_5xx_and_throttling() {
        let mut script = vec![
            (
                500,
                r#"{"__type":"InternalServiceError","message":"boom"}"#.to_string(),
            ),
            error("ThrottlingException", "slow down"),
            (200, CURRENT_V3.to_string()),
        ]
        .into_iter();
        let f = fake(Box::new(move |_, _| script.next().unwrap()));
        let got = f.store().get(&name("a/b"), Selector::default()).unwrap();
        assert_eq!((got.version, got.value.expose_secret()), (3, &b"v"[..]));
        assert_eq!(f.seen().len(), 3);

        let f = fake(Box::new(|_, _| (503, "{}".to_string())));
        let e = f
            .store()
            .get(&name("a/b"), Selector::default())
            .unwrap_err();
        assert_eq!(e.kind(), "unavailable", "{e}");
        assert_eq!(f.seen().len(), 3, "bounded by max_attempts");
    }

    #[test]
    fn writes_retry_safely_under_their_token() {
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let kept = tokens.clone();
        let described = r#"{"Name":"a/b","VersionIdsToStages":{"tresor-version-00000000000000000001":["AWSCURRENT"]}}"#;
        let mut puts = 0;
        let f = fake(Box::new(move |op, body| match op {
            "DescribeSecret" => (200, described.to_string()),
            "PutSecretValue" => {
                let json: serde_json::Value = serde_json::from_str(body).unwrap();
                kept.lock()
                    .unwrap()
                    .push(json["ClientRequestToken"].as_str().unwrap().to_string());
                puts += 1;
                if puts == 1 {
                    (500, r#"{"__type":"InternalServiceError"}"#.to_string())
                } else {
                    (200, r#"{"VersionId":"tresor-version-00000000000000000002","VersionStages":["AWSCURRENT"]}"#.to_string())
                }
            }
            _ => error("InvalidRequestException", op),
        }));
        let v = f
            .store()
            .put(
                &name("a/b"),
                &SecretValue::copy_from(b"x"),
                &PutOptions::default(),
            )
            .unwrap();
        assert_eq!(v, 2);
        let tokens = tokens.lock().unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens.iter().all(|t| t == &version_token(2)), "{tokens:?}");
    }

    #[test]
    fn a_write_that_collides_counts_unlabelled_versions_and_goes_on() {
        // Version 3 exists without a label (another tool removed it), so
        // DescribeSecret's map ends at 2 and the first write collides.
        let described = r#"{"Name":"a/b","VersionIdsToStages":{"tresor-version-00000000000000000002":["AWSCURRENT"]}}"#;
        let listed = format!(
            r#"{{"Versions":[{{"VersionId":"{}","VersionStages":[]}},{{"VersionId":"{}","VersionStages":["AWSCURRENT"]}},{{"VersionId":"{}","VersionStages":[]}}]}}"#,
            version_token(1),
            version_token(2),
            version_token(3)
        );
        let f = fake(Box::new(move |op, body| match op {
            "DescribeSecret" => (200, described.to_string()),
            "ListSecretVersionIds" => (200, listed.clone()),
            "PutSecretValue" if body.contains(&version_token(3)) => error(EXISTS, "token in use"),
            "PutSecretValue" => (200, r#"{"VersionStages":["AWSCURRENT"]}"#.to_string()),
            _ => error("InvalidRequestException", op),
        }));
        let v = f
            .store()
            .put(
                &name("a/b"),
                &SecretValue::copy_from(b"x"),
                &PutOptions::default(),
            )
            .unwrap();
        assert_eq!(v, 4);
        assert_eq!(
            f.seen(),
            [
                "DescribeSecret",
                "PutSecretValue",
                "DescribeSecret",
                "ListSecretVersionIds",
                "PutSecretValue"
            ]
        );
    }

    #[test]
    fn a_write_error_never_shows_the_service_message() {
        // Secrets Manager's validation messages can quote the input.
        let f = fake(Box::new(|op, _| match op {
            "DescribeSecret" => error(NOT_FOUND, "no such secret"),
            _ => error("ValidationException", "Value 'tresor-fake-canary' is bad"),
        }));
        let e = f
            .store()
            .put(
                &name("a/b"),
                &SecretValue::copy_from(b"tresor-fake-canary"),
                &PutOptions::default(),
            )
            .unwrap_err();
        assert_eq!(e.kind(), "validation");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("ValidationException"), "{shown}");
        assert!(!shown.contains("tresor-fake-canary"), "{shown}");
    }

    #[test]
    fn service_errors_map_to_tresor_errors() {
        let f = fake(Box::new(|op, _| match op {
            "GetSecretValue" => error("AccessDeniedException", "not allowed"),
            "DeleteSecret" => error(
                INVALID_REQUEST,
                "You tried to perform the operation on a secret that's currently marked deleted.",
            ),
            _ => error("ExpiredTokenException", "expired"),
        }));
        let mut store = f.store();
        let e = store.get(&name("a/b"), Selector::default()).unwrap_err();
        assert_eq!(e.kind(), "auth", "{e}");
        assert!(
            e.to_string().contains("AccessDeniedException: not allowed"),
            "{e}"
        );
        let e = store.delete(&name("a/b"), DeleteMode::Soft).unwrap_err();
        assert_eq!(e.kind(), "not_found", "{e}");
        let h = store.health();
        assert!(h.reachable && !h.authenticated, "{}", h.detail);
    }

    #[test]
    fn version_listings_follow_next_tokens() {
        let pages = AtomicUsize::new(0);
        let f = fake(Box::new(move |op, body| match op {
            "DescribeSecret" => (200, r#"{"Name":"a/b"}"#.to_string()),
            "ListSecretVersionIds" => {
                let json: serde_json::Value = serde_json::from_str(body).unwrap();
                let page = pages.fetch_add(1, Ordering::SeqCst);
                assert_eq!(
                    json["NextToken"].as_str(),
                    ["", "p2"].get(page).copied().filter(|t| !t.is_empty())
                );
                let (ids, next) = if page == 0 {
                    (1..=100, r#","NextToken":"p2""#)
                } else {
                    (101..=102, "")
                };
                let versions: Vec<String> = ids
                    .map(|n| {
                        format!(
                            r#"{{"VersionId":"{}","VersionStages":[]}}"#,
                            version_token(n)
                        )
                    })
                    .collect();
                (
                    200,
                    format!(r#"{{"Versions":[{}]{next}}}"#, versions.join(",")),
                )
            }
            _ => error("InvalidRequestException", op),
        }));
        let history = f.store().history(&name("a/b")).unwrap();
        assert_eq!(history.len(), 102);
        assert_eq!(history.last().unwrap().version, 102);
    }

    #[test]
    fn a_silent_server_is_unavailable_within_the_bound() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let f = Fake {
            url: format!("http://{}", listener.local_addr().unwrap()),
            seen: Arc::default(),
        };
        let t0 = std::time::Instant::now();
        let e = f
            .store()
            .get(&name("a/b"), Selector::default())
            .unwrap_err();
        assert_eq!(e.kind(), "unavailable", "{e}");
        assert!(e.to_string().contains("timed out"), "{e}");
        // 3 attempts of 1 s at most, plus backoff: bounded at 5 s.
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        drop(listener);
    }
}
