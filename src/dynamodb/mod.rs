//! A small DynamoDB client layer: typed operations, DynamoDB JSON, typed errors, SigV4.
//!
//! One file per operation, each owning its request encoding and response decoding. Nothing
//! here performs I/O: [`encode`] turns an operation into a signed [`HttpRequest`] and
//! [`decode`] turns an [`HttpResponse`] into the operation's output or a typed [`Error`].

mod attr;
mod error;
mod sign;

pub mod create_table;
pub mod delete_item;
pub mod describe_table;
pub mod get_item;
pub mod put_item;
pub mod query;
pub mod scan;
pub mod transact_write_items;
pub mod update_item;
pub mod update_time_to_live;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use attr::{AttributeValue, Item};
pub use error::{CancellationReason, Error, TransportError};
pub use sign::{Credentials, Endpoint, EndpointError, SignError, signed_request};

pub use create_table::CreateTable;
pub use delete_item::DeleteItem;
pub use describe_table::DescribeTable;
pub use get_item::GetItem;
pub use put_item::PutItem;
pub use query::Query;
pub use scan::Scan;
pub use transact_write_items::TransactWriteItems;
pub use update_item::UpdateItem;
pub use update_time_to_live::UpdateTimeToLive;

use crate::time::WallTime;

/// A DynamoDB operation: its name, its JSON request (the `Serialize` impl) and its output.
pub trait Operation: Serialize {
    /// The operation's name as in `X-Amz-Target: DynamoDB_20120810.<NAME>`.
    const NAME: &'static str;
    /// What a successful (HTTP 200) response decodes into.
    type Output: DeserializeOwned;

    /// Capacity units the output reports (`ReturnConsumedCapacity: TOTAL`), zero if none.
    fn capacity(_output: &Self::Output) -> f64 {
        0.0
    }
}

fn units(c: &Option<ConsumedCapacity>) -> f64 {
    c.as_ref().and_then(|c| c.capacity_units).unwrap_or(0.0)
}

/// An HTTP request ready for a transport: always a `POST` of `body` to `url`.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `scheme://host[:port]`.
    pub url: String,
    /// Header names (lower case) and values; `host` is not among them.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = k.eq_ignore_ascii_case("authorization")
                    || k.eq_ignore_ascii_case("x-amz-security-token");
                (
                    k.as_str(),
                    if secret { "** redacted **" } else { v.as_str() },
                )
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// An HTTP response as a transport hands it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Capacity consumed by one request (`ReturnConsumedCapacity: TOTAL`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumedCapacity {
    /// Total capacity units (read or write) the request consumed.
    #[serde(default)]
    pub capacity_units: Option<f64>,
    /// Read capacity units, when DynamoDB reports them apart.
    #[serde(default)]
    pub read_capacity_units: Option<f64>,
    /// Write capacity units, when DynamoDB reports them apart.
    #[serde(default)]
    pub write_capacity_units: Option<f64>,
}

/// `ReturnValuesOnConditionCheckFailure`: what a failed condition returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReturnOnConditionFailure {
    /// The whole item as it was (costs no read).
    #[serde(rename = "ALL_OLD")]
    AllOld,
    /// Nothing.
    #[serde(rename = "NONE")]
    None,
}

/// Expression attribute names (`#n` to name).
pub type Names = BTreeMap<String, String>;

/// Makes a names map from pairs.
pub fn names<const N: usize>(pairs: [(&str, &str); N]) -> Names {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Why an operation could not be turned into a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The JSON encoder failed (cannot happen for the types here, but is not assumed).
    Json(String),
    /// Signing failed.
    Sign(SignError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Json(e) => write!(f, "could not encode the request: {e}"),
            EncodeError::Sign(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Encodes and signs `op` for `endpoint`, at wall time `now`.
pub fn encode<O: Operation>(
    op: &O,
    endpoint: &Endpoint,
    credentials: &Credentials,
    now: WallTime,
) -> Result<HttpRequest, EncodeError> {
    let body = serde_json::to_vec(op).map_err(|e| EncodeError::Json(e.to_string()))?;
    signed_request(endpoint, credentials, O::NAME, body, now).map_err(EncodeError::Sign)
}

/// Decodes a response to `O`: its output on HTTP 200, otherwise a typed [`Error`].
pub fn decode<O: Operation>(response: &HttpResponse) -> Result<O::Output, Error> {
    if response.status != 200 {
        return Err(Error::from_response(response.status, &response.body));
    }
    serde_json::from_slice(&response.body).map_err(|e| Error::Malformed {
        status: 200,
        reason: format!("{} response: {e}", O::NAME),
    })
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `ReturnConsumedCapacity` value every request here sends, so costs can be counted.
pub(crate) const TOTAL: &str = "TOTAL";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_debug_redacts_secrets() {
        let r = HttpRequest {
            url: "https://x".into(),
            headers: vec![
                ("authorization".into(), "AWS4 Signature=abc".into()),
                ("x-amz-security-token".into(), "tok".into()),
                ("x-amz-target".into(), "DynamoDB_20120810.GetItem".into()),
            ],
            body: b"{}".to_vec(),
        };
        let s = format!("{r:?}");
        assert!(!s.contains("abc") && !s.contains("tok\""), "{s}");
        assert!(s.contains("GetItem"));
    }

    #[test]
    fn decode_types_errors_and_garbage() {
        let ok = HttpResponse {
            status: 200,
            body: br#"{"Item":{"k":{"S":"v"}}}"#.to_vec(),
        };
        let out = decode::<GetItem>(&ok).unwrap();
        assert_eq!(out.item.unwrap()["k"].as_s(), Some("v"));
        let bad = HttpResponse {
            status: 200,
            body: b"not json".to_vec(),
        };
        assert!(matches!(
            decode::<GetItem>(&bad),
            Err(Error::Malformed { .. })
        ));
    }
}
