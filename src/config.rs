//! Client configuration: endpoint, region, credentials, table, timeouts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::dynamodb::{Credentials, Endpoint, EndpointError};
use crate::host::{MaybeSend, MaybeSync};
use crate::options::{InvalidInput, TableOptions};

/// Supplies credentials for each request (so temporary credentials can be refreshed).
pub trait CredentialsProvider: MaybeSend + MaybeSync + 'static {
    /// The credentials to sign the next request with.
    fn credentials(&self) -> Result<Credentials, CredentialsError>;
}

impl CredentialsProvider for Credentials {
    fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.clone())
    }
}

/// Credentials could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsError(pub String);

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no credentials: {}", self.0)
    }
}

impl std::error::Error for CredentialsError {}

/// The configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting (environment variable) is missing.
    Missing(&'static str),
    /// The endpoint or region is invalid.
    Endpoint(EndpointError),
    /// The table options are invalid.
    Table(InvalidInput),
    /// Other invalid settings.
    Invalid(InvalidInput),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(v) => write!(f, "missing setting {v}"),
            ConfigError::Endpoint(e) => e.fmt(f),
            ConfigError::Table(e) | ConfigError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How a [`LockClient`](crate::LockClient) reaches DynamoDB.
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) region: String,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) allow_insecure_http: bool,
    pub(crate) credentials: Arc<dyn CredentialsProvider>,
    pub(crate) table: TableOptions,
    pub(crate) request_timeout: Duration,
    pub(crate) owner_name: Option<String>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("credentials", &"** provider **")
            .field("table", &self.table)
            .field("request_timeout", &self.request_timeout)
            .field("owner_name", &self.owner_name)
            .finish()
    }
}

impl ClientConfig {
    /// AWS's endpoint for `region`, signing with `credentials`.
    pub fn new(region: impl Into<String>, credentials: impl CredentialsProvider) -> Self {
        ClientConfig {
            region: region.into(),
            endpoint_url: None,
            allow_insecure_http: false,
            credentials: Arc::new(credentials),
            table: TableOptions::default(),
            request_timeout: Duration::from_secs(2),
            owner_name: None,
        }
    }

    /// From the usual environment variables: `AWS_REGION` (or `AWS_DEFAULT_REGION`),
    /// `AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL` (optional), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (optional).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Like [`from_env`](Self::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or(ConfigError::Missing("AWS_REGION"))?;
        let key = var("AWS_ACCESS_KEY_ID").ok_or(ConfigError::Missing("AWS_ACCESS_KEY_ID"))?;
        let secret =
            var("AWS_SECRET_ACCESS_KEY").ok_or(ConfigError::Missing("AWS_SECRET_ACCESS_KEY"))?;
        let mut config = ClientConfig::new(
            region,
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN")),
        );
        config.endpoint_url = var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| var("AWS_ENDPOINT_URL"));
        Ok(config)
    }

    /// A custom endpoint (`scheme://host[:port]`), e.g. DynamoDB Local.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Allow plain `http://` to hosts other than loopback (off: signed requests and session
    /// tokens should not cross a network in clear text).
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The lock table and its attribute names.
    pub fn table(mut self, table: TableOptions) -> Self {
        self.table = table;
        self
    }

    /// How long one request may take before it counts as failed with an unknown outcome
    /// (default 2 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// This client's owner name in lock items (default: a random UUID).
    pub fn owner_name(mut self, name: impl Into<String>) -> Self {
        self.owner_name = Some(name.into());
        self
    }

    /// The table options.
    pub fn table_options(&self) -> &TableOptions {
        &self.table
    }

    pub(crate) fn endpoint(&self) -> Result<Endpoint, ConfigError> {
        match &self.endpoint_url {
            Some(url) => Endpoint::custom(url, &self.region, self.allow_insecure_http),
            None => Endpoint::for_region(&self.region),
        }
        .map_err(ConfigError::Endpoint)
    }

    pub(crate) fn validate(&self) -> Result<Endpoint, ConfigError> {
        self.table.validate().map_err(ConfigError::Table)?;
        if self.request_timeout < Duration::from_millis(1) {
            return Err(ConfigError::Invalid(InvalidInput::new(
                "request_timeout",
                "must be at least 1 ms",
            )));
        }
        if let Some(owner) = &self.owner_name
            && (owner.is_empty() || owner.len() > 1024)
        {
            return Err(ConfigError::Invalid(InvalidInput::new(
                "owner_name",
                "must be 1 to 1024 bytes",
            )));
        }
        self.endpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_the_usual_environment() {
        let vars: HashMap<&str, &str> = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_SESSION_TOKEN", "session-tok"),
            ("AWS_ENDPOINT_URL", "https://generic.example"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        ]
        .into();
        let c = ClientConfig::from_vars(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        let ep = c.validate().unwrap();
        assert_eq!(
            (ep.url(), ep.region()),
            ("http://127.0.0.1:8000", "eu-west-1")
        );
        let creds = c.credentials.credentials().unwrap();
        assert!(creds.has_session_token());
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("session-tok"));

        let c = ClientConfig::from_vars(|k| {
            (k != "AWS_ENDPOINT_URL_DYNAMODB")
                .then(|| vars.get(k).map(|v| v.to_string()))
                .flatten()
        })
        .unwrap();
        assert_eq!(c.validate().unwrap().url(), "https://generic.example");
        let missing = ClientConfig::from_vars(|k| {
            (k != "AWS_SECRET_ACCESS_KEY")
                .then(|| vars.get(k).map(|v| v.to_string()))
                .flatten()
        });
        assert_eq!(
            missing.unwrap_err(),
            ConfigError::Missing("AWS_SECRET_ACCESS_KEY")
        );
    }

    #[test]
    fn regional_endpoint_and_refusals() {
        let c = ClientConfig::new("us-east-2", Credentials::new("a", "b", None));
        assert_eq!(
            c.validate().unwrap().url(),
            "https://dynamodb.us-east-2.amazonaws.com"
        );
        let c = c.endpoint_url("http://10.1.2.3:8000");
        assert!(matches!(c.validate(), Err(ConfigError::Endpoint(_))));
        assert!(c.allow_insecure_http(true).validate().is_ok());
        let c = ClientConfig::new("us-east-2", Credentials::new("a", "b", None))
            .table(TableOptions::new().table_name("x"));
        assert!(matches!(c.validate(), Err(ConfigError::Table(_))));
    }
}
