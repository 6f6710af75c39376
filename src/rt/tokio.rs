//! The tokio host: reqwest (rustls) for HTTP, tokio timers, OS randomness, `tokio::spawn`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::LockClient;
use crate::config::{ClientConfig, ConfigError};
use crate::dynamodb::{HttpRequest, HttpResponse, TransportError};
use crate::host::{Clock, Entropy, Spawn, Timer, Transport};
use crate::time::{Instant, Now, WallTime};

/// Runs the lock client on tokio. Renewal tasks are spawned with `tokio::spawn`, so a tokio
/// runtime must be running when locks are acquired.
#[derive(Clone, Debug)]
pub struct TokioHost {
    http: reqwest::Client,
    origin: std::time::Instant,
}

impl TokioHost {
    /// A host with its own HTTP client (connections are pooled and kept alive).
    pub fn new() -> Self {
        Self::with_http_client(
            reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(50))
                .build()
                .unwrap_or_default(),
        )
    }

    /// A host using `http` for requests.
    pub fn with_http_client(http: reqwest::Client) -> Self {
        TokioHost {
            http,
            // The host adapter owns the monotonic clock.
            #[allow(clippy::disallowed_methods)]
            origin: std::time::Instant::now(),
        }
    }

    fn to_tokio(&self, deadline: Instant) -> tokio::time::Instant {
        let at = self
            .origin
            .checked_add(Duration::from_nanos(deadline.as_nanos()))
            .unwrap_or_else(|| self.origin + Duration::from_secs(86_400 * 365 * 30));
        tokio::time::Instant::from_std(at)
    }
}

impl Default for TokioHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioHost {
    fn now(&self) -> Now {
        // The one place the tokio adapter reads the clocks.
        #[allow(clippy::disallowed_methods)]
        let mono = std::time::Instant::now().saturating_duration_since(self.origin);
        #[allow(clippy::disallowed_methods)]
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Now::new(
            Instant::from_nanos(u64::try_from(mono.as_nanos()).unwrap_or(u64::MAX)),
            WallTime::from_millis(u64::try_from(wall.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl Timer for TokioHost {
    type Sleep = tokio::time::Sleep;
    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
        tokio::time::sleep_until(self.to_tokio(deadline))
    }
}

impl Transport for TokioHost {
    type Response = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send>>;

    fn send(&self, request: HttpRequest) -> Self::Response {
        let mut builder = self.http.post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let pending = builder.body(request.body).send();
        Box::pin(async move {
            let response = pending.await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(transport_error)?;
            Ok(HttpResponse {
                status,
                body: body.to_vec(),
            })
        })
    }
}

fn transport_error(e: reqwest::Error) -> TransportError {
    TransportError {
        message: e.to_string(),
        timeout: e.is_timeout(),
    }
}

impl Entropy for TokioHost {
    fn fill(&self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // The OS refused: fall back to std's per-process random hasher keys.
            use std::hash::{BuildHasher, Hasher};
            for chunk in buf.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(chunk.as_ptr() as usize);
                let bytes = h.finish().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }
    }
}

impl Spawn for TokioHost {
    /// Spawns on the current tokio runtime. Outside one (a `Lock` dropped after its runtime
    /// shut down) the task is dropped: renewals stop and a release is not sent, so the item
    /// expires with its lease.
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(task);
        }
    }
}

impl LockClient<TokioHost> {
    /// A tokio client configured from the environment (see [`ClientConfig::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        LockClient::new(TokioHost::new(), ClientConfig::from_env()?)
    }
}
