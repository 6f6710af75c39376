//! Endpoint, credentials and SigV4 signing of DynamoDB's JSON requests.
//!
//! Signing uses `aws-sigv4` with the wall time passed in; nothing here reads a clock.
//! Only `host` (taken from the URL, never set by us), `content-type`, `x-amz-date`,
//! `x-amz-target` and `x-amz-security-token` are signed: browsers drop or rewrite the rest.

use std::fmt;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use super::HttpRequest;
use crate::time::WallTime;

/// AWS credentials. `Debug` and `Display` never show the secret or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Credentials {
    /// Long-term or temporary credentials; `session_token` for temporary ones (STS).
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    /// The access key id (not secret).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Whether a session token is present.
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// Where requests go: `scheme://host[:port]` and the signing region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    region: String,
}

/// Why an endpoint or region was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointError(pub String);

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid endpoint: {}", self.0)
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// AWS's regional endpoint, `https://dynamodb.{region}.amazonaws.com`.
    pub fn for_region(region: &str) -> Result<Self, EndpointError> {
        check_region(region)?;
        Ok(Endpoint {
            url: format!("https://dynamodb.{region}.amazonaws.com"),
            region: region.to_owned(),
        })
    }

    /// A custom endpoint (DynamoDB Local, a proxy). Plain `http://` is accepted only for
    /// loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`) unless `allow_insecure` is set:
    /// signed requests and session tokens must not cross a network in clear text.
    pub fn custom(url: &str, region: &str, allow_insecure: bool) -> Result<Self, EndpointError> {
        check_region(region)?;
        let url = url.trim_end_matches('/');
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| EndpointError(format!("{url:?} has no scheme")))?;
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(EndpointError(format!(
                "{url:?} must be scheme://host[:port] with no path, query or user info"
            )));
        }
        match scheme {
            "https" => {}
            "http" if allow_insecure || is_loopback(rest) => {}
            "http" => {
                return Err(EndpointError(format!(
                    "{url:?} is plain http to a non-loopback host; use https or allow it explicitly"
                )));
            }
            _ => return Err(EndpointError(format!("{url:?}: unsupported scheme"))),
        }
        // Hosts are case-insensitive and HTTP clients send them in lower case: sign what is
        // sent.
        Ok(Endpoint {
            url: url.to_ascii_lowercase(),
            region: region.to_owned(),
        })
    }

    /// The URL requests are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }
}

fn check_region(region: &str) -> Result<(), EndpointError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(EndpointError(format!(
            "region {region:?} is not a region name"
        )))
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Why a request could not be signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not sign the request: {}", self.0)
    }
}

impl std::error::Error for SignError {}

/// Builds the signed HTTP request for DynamoDB operation `operation` (e.g. `"PutItem"`)
/// with JSON `body`, signed for wall time `now`.
pub fn signed_request(
    endpoint: &Endpoint,
    credentials: &Credentials,
    operation: &str,
    body: Vec<u8>,
    now: WallTime,
) -> Result<HttpRequest, SignError> {
    let target = format!("DynamoDB_20120810.{operation}");
    let mut headers: Vec<(String, String)> = vec![
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.0".to_owned(),
        ),
        ("x-amz-target".to_owned(), target),
    ];
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
        credentials.session_token.clone(),
        None,
        "ddb-lock",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&endpoint.region)
        .name("dynamodb")
        .time(now.to_system_time())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        endpoint.url.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let (extra, _query) = instructions.into_parts();
    for header in extra {
        headers.push((header.name().to_owned(), header.value().to_owned()));
    }
    Ok(HttpRequest {
        url: endpoint.url.clone(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8000",
            "http://localhost:1",
            "http://[::1]:9",
            "https://example.com",
            "http://127.9.9.9/",
        ] {
            assert!(Endpoint::custom(ok, "us-east-1", false).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8000",
            "http://example.com",
            "ftp://x",
            "127.0.0.1:8000",
            "http://",
            "https://h/path",
            "https://u:p@h",
        ] {
            assert!(Endpoint::custom(bad, "us-east-1", false).is_err(), "{bad}");
        }
        assert!(Endpoint::custom("http://example.com", "us-east-1", true).is_ok());
        assert!(Endpoint::custom("https://x", "US EAST", false).is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials::new("AKIDEXAMPLE", "s3cr3t-key", Some("t0k3n".into()));
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0k3n"),
            "{shown}"
        );
    }

    #[test]
    fn signs_the_headers_browsers_keep() {
        let ep = Endpoint::custom("http://127.0.0.1:8000", "us-east-1", false).unwrap();
        let c = Credentials::new("AKID", "secret", Some("tok".into()));
        let req = signed_request(
            &ep,
            &c,
            "GetItem",
            b"{}".to_vec(),
            WallTime::from_millis(1_700_000_000_000),
        )
        .unwrap();
        let get = |n: &str| {
            req.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("x-amz-date").as_deref(), Some("20231114T221320Z"));
        assert_eq!(get("x-amz-security-token").as_deref(), Some("tok"));
        assert_eq!(
            get("x-amz-target").as_deref(),
            Some("DynamoDB_20120810.GetItem")
        );
        assert!(get("host").is_none(), "host must come from the URL");
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="),
            "{auth}"
        );
        assert!(!format!("{req:?}").contains("secret"));
    }
}
