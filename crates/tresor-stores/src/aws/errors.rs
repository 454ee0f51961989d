//! What a failed call may show, and the tresor error it becomes.

use super::*;

impl Aws {
    // --- errors ---------------------------------------------------------------

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
            return Err(Error::Validation(format!(
                "{}: the value for '{name}' is {} bytes; Secrets Manager takes at most {MAX_VALUE_LEN}",
                self.name,
                value.len()
            )));
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

/// An error and its sources in words, each said once (transport errors
/// hold no request or response bodies).
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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

pub(super) fn shorten(message: &str) -> String {
    let message = message.trim();
    if message.chars().count() > 200 {
        format!("{}…", message.chars().take(200).collect::<String>())
    } else {
        message.to_string()
    }
}

pub(super) fn colon(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}
