//! DynamoDB's errors, typed from the `__type` field of an error response.
//!
//! Wire form of an error (HTTP 400 or 5xx):
//! `{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"...","Item":{...}}`
//! The part after `#` names the error. `Item` is present on a failed condition when the
//! request asked for `ReturnValuesOnConditionCheckFailure: ALL_OLD` and the item exists.

use std::fmt;

use serde::Deserialize;

use super::attr::Item;

/// Why a DynamoDB request did not succeed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The request's condition was false. This is an expected outcome of a lock write,
    /// not a failure: `item` is the current item (if the request asked for it and one exists).
    ConditionalCheckFailed {
        /// The item as it was when the condition was evaluated; `None` if there was none.
        item: Option<Item>,
    },
    /// A transaction was cancelled; one reason per action, in order.
    TransactionCanceled {
        /// Per-action reasons (`code` is `"None"` for actions that did not cause it).
        reasons: Vec<CancellationReason>,
        /// DynamoDB's message.
        message: String,
    },
    /// The request was throttled and **not applied**: `ProvisionedThroughputExceededException`,
    /// `ThrottlingException` or `RequestLimitExceeded`. Safe to retry after a pause.
    Throttled {
        /// DynamoDB's error name.
        code: String,
        /// DynamoDB's message.
        message: String,
    },
    /// Another transaction was in progress on the item (`TransactionConflictException`): the
    /// request was **not applied**. Safe to retry after a pause.
    TransactionConflict {
        /// DynamoDB's message.
        message: String,
    },
    /// The table (or index) does not exist: `ResourceNotFoundException`.
    NotFound {
        /// DynamoDB's message.
        message: String,
    },
    /// DynamoDB rejected the request as invalid: `ValidationException`, `SerializationException`.
    Validation {
        /// DynamoDB's message.
        message: String,
    },
    /// The credentials or signature were refused (`UnrecognizedClientException`,
    /// `InvalidSignatureException`, `AccessDeniedException`, `ExpiredTokenException`, ...).
    Access {
        /// DynamoDB's error name.
        code: String,
        /// DynamoDB's message.
        message: String,
    },
    /// DynamoDB failed (HTTP 5xx, `InternalServerError`, `ServiceUnavailable`). The request
    /// may or may not have been applied.
    Server {
        /// HTTP status.
        status: u16,
        /// DynamoDB's error name, if it gave one.
        code: String,
        /// DynamoDB's message.
        message: String,
    },
    /// Any other error DynamoDB named (`ResourceInUseException`, `LimitExceededException`, ...).
    Service {
        /// HTTP status.
        status: u16,
        /// DynamoDB's error name.
        code: String,
        /// DynamoDB's message.
        message: String,
    },
    /// The request did not complete: connection failure, or no answer before the timeout.
    /// It may or may not have been applied.
    Transport(TransportError),
    /// The server answered something that is not a DynamoDB response.
    Malformed {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
}

/// A request that did not complete at the HTTP level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// What happened, for people.
    pub message: String,
    /// True when the request timed out (its effect is unknown).
    pub timeout: bool,
}

impl TransportError {
    /// A transport failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            timeout: false,
        }
    }

    /// A request that got no answer in time.
    pub fn timeout() -> Self {
        TransportError {
            message: "request timed out".into(),
            timeout: true,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {}

/// One entry of `CancellationReasons` in a `TransactionCanceledException`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancellationReason {
    /// `"None"`, `"ConditionalCheckFailed"`, `"TransactionConflict"`, ...
    #[serde(default)]
    pub code: Option<String>,
    /// The item, for a failed condition with `ALL_OLD`.
    #[serde(default)]
    pub item: Option<Item>,
    /// DynamoDB's message.
    #[serde(default)]
    pub message: Option<String>,
}

impl Error {
    /// DynamoDB's error name (`"ConditionalCheckFailedException"`, ...), or a short tag for
    /// errors that are not DynamoDB's (`"Transport"`, `"Malformed"`).
    pub fn code(&self) -> &str {
        match self {
            Error::ConditionalCheckFailed { .. } => "ConditionalCheckFailedException",
            Error::TransactionCanceled { .. } => "TransactionCanceledException",
            Error::TransactionConflict { .. } => "TransactionConflictException",
            Error::NotFound { .. } => "ResourceNotFoundException",
            Error::Validation { .. } => "ValidationException",
            Error::Throttled { code, .. }
            | Error::Access { code, .. }
            | Error::Server { code, .. }
            | Error::Service { code, .. } => code,
            Error::Transport(_) => "Transport",
            Error::Malformed { .. } => "Malformed",
        }
    }

    /// True when a write that failed this way may nevertheless have been applied
    /// (timeouts, transport errors, 5xx): its outcome must be reconciled, never assumed.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Error::Transport(_) | Error::Server { .. } | Error::Malformed { .. }
        )
    }

    /// True when the same request may succeed if sent again later (throttling, a conflicting
    /// transaction, 5xx, transport errors). Conditional failures and invalid requests are not
    /// retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Throttled { .. } | Error::TransactionConflict { .. }
        ) || self.is_ambiguous()
    }

    /// Decodes an error response (any non-200 status).
    pub fn from_response(status: u16, body: &[u8]) -> Error {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "__type")]
            kind: Option<String>,
            #[serde(alias = "Message")]
            message: Option<String>,
            #[serde(rename = "Item")]
            item: Option<Item>,
            #[serde(rename = "CancellationReasons")]
            reasons: Option<Vec<CancellationReason>>,
        }
        let wire: Wire = match serde_json::from_slice(body) {
            Ok(w) => w,
            Err(_) if status >= 500 => {
                return Error::Server {
                    status,
                    code: String::new(),
                    message: snippet(body),
                };
            }
            Err(e) => {
                return Error::Malformed {
                    status,
                    reason: format!("error body is not DynamoDB JSON ({e}): {}", snippet(body)),
                };
            }
        };
        let code = wire
            .kind
            .as_deref()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_default();
        let message = wire.message.unwrap_or_default();
        match code.as_str() {
            "ConditionalCheckFailedException" => Error::ConditionalCheckFailed { item: wire.item },
            "TransactionCanceledException" => Error::TransactionCanceled {
                reasons: wire.reasons.unwrap_or_default(),
                message,
            },
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded" => Error::Throttled { code, message },
            "TransactionConflictException" => Error::TransactionConflict { message },
            "ResourceNotFoundException" => Error::NotFound { message },
            "ValidationException" | "SerializationException" => Error::Validation { message },
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "AccessDeniedException"
            | "MissingAuthenticationTokenException"
            | "IncompleteSignatureException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch" => Error::Access { code, message },
            _ if status >= 500 || code == "InternalServerError" || code == "ServiceUnavailable" => {
                Error::Server {
                    status,
                    code,
                    message,
                }
            }
            "" => Error::Malformed {
                status,
                reason: format!("error without __type: {}", snippet(body)),
            },
            _ => Error::Service {
                status,
                code,
                message,
            },
        }
    }
}

/// At most 200 bytes of a body, lossily decoded, for messages.
fn snippet(body: &[u8]) -> String {
    let end = body.len().min(200);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ConditionalCheckFailed { item } => write!(
                f,
                "the conditional request failed ({})",
                if item.is_some() {
                    "item returned"
                } else {
                    "no item"
                }
            ),
            Error::TransactionCanceled { message, .. } => {
                write!(f, "transaction cancelled: {message}")
            }
            Error::Throttled { code, message } => write!(f, "throttled ({code}): {message}"),
            Error::TransactionConflict { message } => {
                write!(f, "conflicting transaction in progress: {message}")
            }
            Error::NotFound { message } => write!(f, "not found: {message}"),
            Error::Validation { message } => write!(f, "validation error: {message}"),
            Error::Access { code, message } => write!(f, "access refused ({code}): {message}"),
            Error::Server {
                status,
                code,
                message,
            } => write!(f, "server error {status} {code}: {message}"),
            Error::Service {
                status,
                code,
                message,
            } => write!(f, "DynamoDB error {status} {code}: {message}"),
            Error::Transport(e) => write!(f, "transport error: {e}"),
            Error::Malformed { status, reason } => {
                write!(f, "malformed response (HTTP {status}): {reason}")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> Error {
        Error::from_response(status, body.as_bytes())
    }

    #[test]
    fn types_follow_the_wire_name() {
        let e = err(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed","Item":{"k":{"S":"v"}}}"#,
        );
        match e {
            Error::ConditionalCheckFailed { item: Some(item) } => {
                assert_eq!(item["k"].as_s(), Some("v"))
            }
            other => panic!("{other:?}"),
        }
        for t in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            let e = err(400, &format!(r#"{{"__type":"x#{t}","message":"slow"}}"#));
            assert!(matches!(e, Error::Throttled { .. }), "{t}");
            assert!(e.is_retryable() && !e.is_ambiguous());
        }
        assert!(matches!(
            err(
                400,
                r#"{"__type":"x#ResourceNotFoundException","message":"no"}"#
            ),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            err(400, r#"{"__type":"x#ValidationException","Message":"bad"}"#),
            Error::Validation { message } if message == "bad"
        ));
        assert!(matches!(
            err(400, r#"{"__type":"x#UnrecognizedClientException"}"#),
            Error::Access { .. }
        ));
        assert!(matches!(
            err(400, r#"{"__type":"x#ResourceInUseException","message":"exists"}"#),
            Error::Service { code, .. } if code == "ResourceInUseException"
        ));
        // A write that met another transaction on its item was not applied: retry it.
        let e = err(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#,
        );
        assert!(matches!(e, Error::TransactionConflict { .. }), "{e:?}");
        assert!(e.is_retryable() && !e.is_ambiguous());
        let e = err(500, r#"{"__type":"x#InternalServerError"}"#);
        assert!(matches!(e, Error::Server { status: 500, .. }) && e.is_ambiguous());
    }

    #[test]
    fn garbage_is_typed() {
        assert!(matches!(err(400, "<html>"), Error::Malformed { .. }));
        assert!(matches!(err(400, "{}"), Error::Malformed { .. }));
        assert!(matches!(
            err(503, "<html>"),
            Error::Server { status: 503, .. }
        ));
        assert!(matches!(
            err(
                400,
                r#"{"__type":"x#ConditionalCheckFailedException","Item":{"k":{"Z":1}}}"#
            ),
            Error::Malformed { .. }
        ));
    }
}
