//! What a failed call may show, and the tresor error it becomes.

use super::*;
use crate::remote::runtime::InsideRuntime;

impl Aws {
    // --- errors ---------------------------------------------------------------

    /// Runs one SDK call on the store's runtime (refused from inside another
    /// runtime); a failure says what went wrong without any value.
    pub(super) fn call<T, E>(
        &self,
        future: impl std::future::Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
        carries_value: bool,
    ) -> std::result::Result<T, Failure>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match self.runtime.block_on(future) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(self.failure(e, carries_value)),
            Err(inside) => Err(Failure::InsideRuntime(inside)),
        }
    }

    /// What went wrong with a call, without any value: a service error's code
    /// (and its message unless the call carried a value), or a transport error.
    pub(super) fn failure<E>(&self, e: SdkError<E, HttpResponse>, carries_value: bool) -> Failure
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
                        remote::shorten(err.message().unwrap_or_default())
                    },
                }
            }
            SdkError::TimeoutError(_) => Failure::Transport("timed out".to_string()),
            SdkError::DispatchFailure(dispatch) => {
                let detail = if dispatch.is_timeout() {
                    "timed out".to_string()
                } else {
                    match dispatch.as_connector_error() {
                        Some(c) => remote::error_chain(c),
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
    pub(super) fn error(&self, failure: Failure, what: &str) -> Error {
        let store = self.name.clone();
        match failure {
            Failure::Transport(detail) => Error::Unavailable {
                store,
                reason: format!(
                    "{what}: Secrets Manager in {} not reached: {detail} ({})",
                    self.region, self.attempts
                ),
            },
            Failure::InsideRuntime(inside) => inside.error(&store, what),
            Failure::Request => remote::refused(&store, what, "invalid request"),
            Failure::Service {
                status,
                code,
                message,
            } => {
                let detail = format!("{code}{}", remote::colon(&message));
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
                    | "DecryptionFailure" => remote::status_error(&store, what, 403, &detail),
                    "ThrottlingException"
                    | "TooManyRequestsException"
                    | "InternalServiceError"
                    | "InternalFailure"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException" => remote::unreachable(&store, what, &detail),
                    // Secrets Manager answers 400 for most errors: only the
                    // status of one with another code says more.
                    _ => remote::status_error(
                        &store,
                        what,
                        status,
                        &format!("HTTP {status}: {detail}"),
                    ),
                }
            }
        }
    }

    pub(super) fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            store: self.name.clone(),
            what,
        }
    }

    /// A read's failure: a secret scheduled for deletion is not found.
    pub(super) fn read_error(&self, failure: Failure, what: &str) -> Error {
        match failure.code() {
            Some(INVALID_REQUEST) if failure.mentions_deletion() => {
                self.not_found(format!("{what} (deleted)"))
            }
            _ => self.error(failure, what),
        }
    }

    pub(super) fn check_value(&self, name: &SecretName, value: &SecretValue) -> Result<()> {
        if value.len() > MAX_VALUE_LEN {
            return Err(remote::too_large(&self.name, name, MAX_VALUE_LEN));
        }
        Ok(())
    }

    pub(super) fn tags_for(&self, metadata: &Metadata) -> Result<Vec<Tag>> {
        validate_metadata(metadata)?;
        metadata
            .iter()
            .map(|(key, value)| {
                if key.len() > MAX_TAG_KEY
                    || value.len() > MAX_TAG_VALUE
                    || key.to_ascii_lowercase().starts_with("aws:")
                {
                    return Err(Error::Malformed {
                        what: format!("{}: metadata key {key:?}", self.name),
                        problem: format!(
                            "Secrets Manager tags take keys of at most {MAX_TAG_KEY} bytes not \
                             starting with aws:, values of at most {MAX_TAG_VALUE}"
                        ),
                    });
                }
                Ok(Tag::builder().key(key).value(value).build())
            })
            .collect()
    }
}

/// A failed call, reduced to what may be shown.
#[derive(Debug)]
pub(super) enum Failure {
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
    /// The caller is a task of another tokio runtime.
    InsideRuntime(InsideRuntime),
}

pub(super) const NOT_FOUND: &str = "ResourceNotFoundException";
pub(super) const EXISTS: &str = "ResourceExistsException";
pub(super) const INVALID_REQUEST: &str = "InvalidRequestException";

impl Failure {
    pub(super) fn code(&self) -> Option<&str> {
        match self {
            Failure::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(super) fn mentions_deletion(&self) -> bool {
        matches!(self, Failure::Service { message, .. } if message.contains("deleted") || message.contains("deletion"))
    }
}
