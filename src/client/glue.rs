//! HTTP and caching glue: signing and sending one operation, and what the client remembers
//! per key between acquisitions.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{Either, select};

use super::LockClient;
use crate::core::{LockKey, LockMachine, Observation, Outcome, Request, Response, Start};
use crate::dynamodb::{self, Operation, TransportError};
use crate::host::Host;
use crate::time::Instant;

impl<H: Host> LockClient<H> {
    /// Sends one request a machine asked for, bounded by its deadline.
    pub(crate) async fn execute(&self, request: Request, deadline: Instant) -> Outcome {
        match request {
            Request::Put(op) => self.call_until(&op, deadline).await.map(Response::Put),
            Request::Update(op) => self.call_until(&op, deadline).await.map(Response::Update),
            Request::Get(op) => self.call_until(&op, deadline).await.map(Response::Get),
            Request::Delete(op) => self.call_until(&op, deadline).await.map(Response::Delete),
        }
    }

    /// Signs and sends one DynamoDB operation, bounded by the request timeout, and counts it.
    ///
    /// Cancellation: dropping the future abandons the HTTP request; the operation may or may
    /// not have been applied.
    pub async fn call<O: Operation>(&self, op: &O) -> Result<O::Output, dynamodb::Error> {
        let deadline = self.host().now().mono + self.inner.request_timeout;
        self.call_until(op, deadline).await
    }

    /// [`call`](Self::call) with an explicit deadline.
    pub(crate) async fn call_until<O: Operation>(
        &self,
        op: &O,
        deadline: Instant,
    ) -> Result<O::Output, dynamodb::Error> {
        let result = self.call_uncounted(op, deadline).await;
        self.inner.counters.record::<O>(&result);
        result
    }

    async fn call_uncounted<O: Operation>(
        &self,
        op: &O,
        deadline: Instant,
    ) -> Result<O::Output, dynamodb::Error> {
        let inner = &*self.inner;
        let credentials = inner
            .credentials
            .credentials()
            .map_err(|e| dynamodb::Error::Access {
                code: "CredentialsUnavailable".into(),
                message: e.to_string(),
            })?;
        let now = inner.host.now();
        let request =
            dynamodb::encode(op, &inner.endpoint, &credentials, now.wall).map_err(|e| {
                dynamodb::Error::Validation {
                    message: e.to_string(),
                }
            })?;
        let response = with_timeout(&inner.host, deadline, inner.host.send(request))
            .await
            .map_err(dynamodb::Error::Transport)?;
        dynamodb::decode::<O>(&response)
    }
}

/// Completes with `fut`'s output, or a timeout error at `deadline`.
pub(crate) async fn with_timeout<H: Host, T>(
    host: &H,
    deadline: Instant,
    fut: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    if host.now().mono >= deadline {
        return Err(TransportError::timeout());
    }
    let fut = pin!(fut);
    let sleep = pin!(host.sleep_until(deadline));
    match select(fut, sleep).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(TransportError::timeout()),
    }
}

/// At most this many keys are remembered.
pub(crate) const MAX_KEYS: usize = 1024;
/// Versions of unfinished acquisitions remembered per key.
const MAX_OWN: usize = 16;

/// What the client remembers of one key between acquisitions.
#[derive(Debug, Default)]
struct Entry {
    /// What an unfinished attempt saw of another holder: the next attempt continues the
    /// watch, so a dead holder is taken over once its version was seen for a whole lease,
    /// however the waiting is split into calls.
    observation: Option<Observation>,
    /// The last acquisition met another holder: the next starts with a read rather than a
    /// write that would likely be refused.
    contended: bool,
    /// Versions written by acquisitions that did not finish (cancelled, timed out): an item
    /// carrying one is ours to take at once.
    own: Vec<String>,
    /// When this entry is forgotten.
    expires: Instant,
}

/// Per-key memory, bounded: entries expire two leases after they were last written, and
/// when full the entry that expires first makes room (only its watch restarts).
#[derive(Debug, Default)]
pub(crate) struct KeyMemory {
    entries: BTreeMap<LockKey, Entry>,
}

impl KeyMemory {
    /// How the next acquisition of `key` starts.
    pub(crate) fn start(&mut self, key: &LockKey, try_only: bool, now: Instant) -> Start {
        self.entries.retain(|_, e| e.expires > now);
        let e = self.entries.get(key);
        Start {
            try_only,
            prior: e.and_then(|e| e.observation.clone()),
            own_versions: e.map(|e| e.own.clone()).unwrap_or_default(),
            read_first: e.is_some_and(|e| e.contended || e.observation.is_some()),
        }
    }

    /// Records how an acquisition of `key` ended (`machine` has finished acquiring).
    pub(crate) fn after(
        &mut self,
        key: &LockKey,
        machine: &LockMachine,
        lease: Duration,
        now: Instant,
    ) {
        let acquired = matches!(machine.acquisition(), Some(Ok(_)));
        let contended = machine.contended();
        if acquired && !contended {
            self.entries.remove(key);
            return;
        }
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_KEYS {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= MAX_KEYS
                && let Some(first) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&first);
            }
        }
        let e = self.entries.entry(key.clone()).or_default();
        e.contended = contended;
        e.expires = now + lease.saturating_mul(2).max(Duration::from_secs(1));
        if acquired {
            e.observation = None;
            e.own.clear();
        } else {
            e.observation = machine.observation().cloned();
            for v in machine.versions_sent() {
                if !e.own.contains(&v) {
                    if e.own.len() == MAX_OWN {
                        e.own.remove(0);
                    }
                    e.own.push(v);
                }
            }
        }
    }

    /// Keys remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Layout, Rng};
    use crate::options::{LockOptions, TableOptions};
    use crate::time::{Now, WallTime};

    fn key(i: usize) -> LockKey {
        LockKey {
            group: "g".into(),
            id: format!("k{i}"),
        }
    }

    /// A try_lock that found key `i` busy (a read showing another holder).
    fn busy_machine(i: usize, now: Now) -> LockMachine {
        let mut m = LockMachine::new(
            Layout::new(TableOptions::new(), key(i)),
            "me".into(),
            LockOptions::new(),
            Start {
                try_only: true,
                read_first: true,
                ..Default::default()
            },
            Duration::from_secs(2),
            Rng::seeded(i as u64),
            now,
        );
        let crate::core::Output::Send { id, .. } = m.poll(now) else {
            panic!()
        };
        let mut item = Layout::new(TableOptions::new(), key(i)).key_item();
        for (k, v) in [("ownerName", "other"), ("recordVersionNumber", "v1")] {
            item.insert(k.into(), dynamodb::AttributeValue::s(v));
        }
        item.insert(
            "leaseDurationInMs".into(),
            dynamodb::AttributeValue::n(20_000),
        );
        m.handle(
            now,
            id,
            Ok(Response::Get(dynamodb::get_item::GetItemOutput {
                item: Some(item),
                ..Default::default()
            })),
        )
        .unwrap();
        let _ = m.poll(now);
        assert!(matches!(
            m.acquisition(),
            Some(Err(crate::AcquireError::Busy(_)))
        ));
        m
    }

    #[test]
    fn memory_is_bounded_expires_and_never_clears_wholesale() {
        let now = Now::new(Instant::from_millis(1_000), WallTime::from_millis(1_000));
        let lease = Duration::from_secs(20);
        let mut mem = KeyMemory::default();
        for i in 0..MAX_KEYS {
            let t = now.advance(Duration::from_millis(i as u64));
            mem.after(&key(i), &busy_machine(i, t), lease, t.mono);
        }
        assert_eq!(mem.len(), MAX_KEYS);
        // One more key: only the entry that expires first goes (it was written first).
        let t = now.advance(Duration::from_secs(2));
        mem.after(&key(MAX_KEYS), &busy_machine(MAX_KEYS, t), lease, t.mono);
        assert_eq!(mem.len(), MAX_KEYS);
        assert!(mem.start(&key(0), true, t.mono).prior.is_none());
        let kept = mem.start(&key(1), true, t.mono);
        assert_eq!(
            kept.prior.map(|o| o.record.owner),
            Some("other".to_owned()),
            "the watches of the other keys go on"
        );
        assert!(kept.read_first);
        // Two leases later every entry has expired.
        let later = t.advance(lease * 2 + Duration::from_secs(1));
        assert!(mem.start(&key(5), true, later.mono).prior.is_none());
        assert_eq!(mem.len(), 0);
    }
}
