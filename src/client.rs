//! The async lock client: drives the [core](crate::core) machines through a [`Host`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::{Either, join_all, select};

use crate::config::{ClientConfig, ConfigError, CredentialsProvider};
use crate::core::{
    Acquire, AcquireError, Busy, Held, Layout, LockKey, LockRecord, LossReason, Observation,
    Outcome, ReleaseError, ReleaseOutcome, Request, Response, Rng, Step,
};
use crate::dynamodb::{self, Endpoint, Operation, TransportError};
use crate::host::Host;
use crate::options::{LockOptions, TableOptions, validate_key};
use crate::signal::Signal;
use crate::stats::{Counters, Stats};
use crate::time::Instant;

/// At most this many observations are remembered for [`LockClient::try_lock`].
const MAX_OBSERVATIONS: usize = 1024;

/// A DynamoDB lock client on host `H`. Cheap to clone (shared state).
pub struct LockClient<H: Host> {
    inner: Arc<Inner<H>>,
}

impl<H: Host> Clone for LockClient<H> {
    fn clone(&self) -> Self {
        LockClient {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<H> {
    host: H,
    endpoint: Endpoint,
    credentials: Arc<dyn CredentialsProvider>,
    table: TableOptions,
    request_timeout: Duration,
    owner: String,
    counters: Counters,
    held: Mutex<BTreeMap<u64, Arc<Shared>>>,
    next_serial: Mutex<u64>,
    observations: Mutex<HashMap<LockKey, Observation>>,
    /// Keys whose last acquisition through this client met another holder: the next one
    /// starts with a read instead of a write that would likely be refused.
    contended: Mutex<HashSet<LockKey>>,
}

/// The state of one held lock, shared by its handle, its renewal task and the client.
struct Shared {
    serial: u64,
    prolong: bool,
    key: LockKey,
    held: Mutex<Held>,
    signal: Signal,
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The answer of [`LockClient::try_lock`].
pub enum TryLock<H: Host> {
    /// The lock is ours.
    Acquired(Lock<H>),
    /// Someone else holds it: who, and when to come back.
    Held(Box<Busy>),
}

/// Why [`Lock::write_if_held`] wrote nothing.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GuardedWriteError {
    /// The lock is not ours (any more): nothing was written.
    NotHeld {
        /// The current holder, when DynamoDB returned its item.
        holder: Option<LockRecord>,
    },
    /// One of the caller's actions failed its condition (or conflicted); nothing was written.
    Canceled {
        /// One reason per action, the lock check first.
        reasons: Vec<dynamodb::CancellationReason>,
        /// DynamoDB's message.
        message: String,
    },
    /// Invalid actions; nothing was sent.
    InvalidInput(crate::InvalidInput),
    /// DynamoDB refused or could not be reached (the outcome may be unknown for transport
    /// errors and 5xx).
    Dynamo(dynamodb::Error),
}

impl std::fmt::Display for GuardedWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardedWriteError::NotHeld { holder } => write!(
                f,
                "the lock is not held (holder {:?}); nothing written",
                holder.as_ref().map(|h| &h.owner)
            ),
            GuardedWriteError::Canceled { message, .. } => {
                write!(f, "transaction cancelled: {message}")
            }
            GuardedWriteError::InvalidInput(e) => e.fmt(f),
            GuardedWriteError::Dynamo(e) => write!(f, "DynamoDB: {e}"),
        }
    }
}

impl std::error::Error for GuardedWriteError {}

/// Whether a lock is still held.
#[derive(Clone, Debug, PartialEq)]
pub enum LockStatus {
    /// Held for at least `remaining` (conservative: counted from before the last confirmed
    /// write was sent, minus the safety margin).
    Held {
        /// Time left.
        remaining: Duration,
        /// Set while renewals fail (DynamoDB unreachable or throttled): not a loss yet.
        renewal_error: Option<dynamodb::Error>,
    },
    /// Lost, and why.
    Lost(LossReason),
}

/// A held lock. Renewed in the background while prolonging is on; release it with
/// [`release`](Self::release) or [`LockClient::release_all`].
///
/// Dropping a `Lock` without releasing it stops its renewals and leaves the item in
/// DynamoDB, where it expires with its lease (as if this process had crashed). Release
/// explicitly to hand the lock over at once.
pub struct Lock<H: Host> {
    shared: Arc<Shared>,
    client: LockClient<H>,
}

impl<H: Host> std::fmt::Debug for Lock<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.shared.key)
            .field("record", self.shared.held().record())
            .finish()
    }
}

impl<H: Host> LockClient<H> {
    /// A client on `host` with `config`. Fails on an invalid endpoint, region or table
    /// options; sends nothing.
    pub fn new(host: H, config: ClientConfig) -> Result<Self, ConfigError> {
        let endpoint = config.validate()?;
        let owner = match config.owner_name {
            Some(o) => o,
            None => rng_from(&host).uuid(),
        };
        Ok(LockClient {
            inner: Arc::new(Inner {
                host,
                endpoint,
                credentials: config.credentials,
                table: config.table,
                request_timeout: config.request_timeout,
                owner,
                counters: Counters::default(),
                held: Mutex::new(BTreeMap::new()),
                next_serial: Mutex::new(0),
                observations: Mutex::new(HashMap::new()),
                contended: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// This client's owner name, as written in the items it holds.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// The table options.
    pub fn table(&self) -> &TableOptions {
        &self.inner.table
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.inner.host
    }

    /// Requests and capacity counted so far.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Locks currently held through this client.
    pub fn held_count(&self) -> usize {
        locked(&self.inner.held).len()
    }

    /// Acquires the lock `(group, id)`, waiting while another holder keeps it alive.
    ///
    /// ```no_run
    /// # async fn f(client: ddb_lock::LockClient<ddb_lock::rt::TokioHost>) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let lock = client
    ///     .lock("jobs", "nightly-report", &ddb_lock::LockOptions::new().lease(Duration::from_secs(10)))
    ///     .await?;
    /// // ... work while lock.is_held() ...
    /// lock.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn lock(
        &self,
        group: &str,
        id: &str,
        options: &LockOptions,
    ) -> Result<Lock<H>, AcquireError> {
        self.acquire(group, id, options, false).await
    }

    /// One attempt: the lock, or who holds it and when a takeover could be tried. Repeated
    /// calls for the same key continue one watch, so a dead holder's lock is taken over
    /// once its version has been seen unchanged for a whole lease.
    ///
    /// ```no_run
    /// # async fn f(client: ddb_lock::LockClient<ddb_lock::rt::TokioHost>) -> Result<(), Box<dyn std::error::Error>> {
    /// match client.try_lock("jobs", "cron", &ddb_lock::LockOptions::new()).await? {
    ///     ddb_lock::TryLock::Acquired(lock) => { lock.release().await?; }
    ///     ddb_lock::TryLock::Held(busy) => println!("held by {}, retry in {:?}", busy.holder.owner, busy.retry_after),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(
        &self,
        group: &str,
        id: &str,
        options: &LockOptions,
    ) -> Result<TryLock<H>, AcquireError> {
        match self.acquire(group, id, options, true).await {
            Ok(lock) => Ok(TryLock::Acquired(lock)),
            Err(AcquireError::Busy(busy)) => Ok(TryLock::Held(Box::new(busy))),
            Err(e) => Err(e),
        }
    }

    async fn acquire(
        &self,
        group: &str,
        id: &str,
        options: &LockOptions,
        try_only: bool,
    ) -> Result<Lock<H>, AcquireError> {
        validate_key(group, id)?;
        options.validate()?;
        let key = LockKey {
            group: group.to_owned(),
            id: id.to_owned(),
        };
        let layout = Layout::new(self.inner.table.clone(), key.clone());
        // Continue the watch of an earlier attempt (a try_lock, or a lock that timed out or
        // ran out of retries), so a dead holder's lock is taken over once its version has been
        // seen unchanged for a lease, however the waiting is split into calls.
        let prior = locked(&self.inner.observations).get(&key).cloned();
        // With an observation, look before answering (a release is noticed at once); a key
        // contended lately also starts with a read rather than a write likely refused.
        let read_first = prior.is_some() || locked(&self.inner.contended).contains(&key);
        let mut machine = Acquire::new(
            layout.clone(),
            self.inner.owner.clone(),
            options.clone(),
            try_only,
            prior,
            read_first,
            rng_from(&self.inner.host),
            self.inner.host.now(),
        );
        let result = loop {
            let now = self.inner.host.now();
            match machine.poll(now) {
                Step::Send(request) => {
                    let outcome = self.execute(request).await;
                    machine.handle(self.inner.host.now(), outcome);
                }
                Step::Sleep(deadline) => self.inner.host.sleep_until(deadline).await,
                // Only one task drives this machine, so no request is ever in flight here.
                Step::AwaitResponse => {
                    break Err(AcquireError::Dynamo(dynamodb::Error::Malformed {
                        status: 0,
                        reason: "internal: acquire polled with a request in flight".into(),
                    }));
                }
                Step::Done(result) => break result,
            }
        };
        {
            let mut contended = locked(&self.inner.contended);
            if machine.contended() {
                if contended.len() >= MAX_OBSERVATIONS {
                    contended.clear();
                }
                contended.insert(key.clone());
            } else {
                contended.remove(&key);
            }
        }
        let acquired = match result {
            Ok(acquired) => acquired,
            Err(AcquireError::Busy(busy)) => {
                let mut obs = locked(&self.inner.observations);
                if obs.len() >= MAX_OBSERVATIONS {
                    obs.clear();
                }
                obs.insert(key, busy.observation.clone());
                return Err(AcquireError::Busy(busy));
            }
            Err(e @ (AcquireError::Timeout { .. } | AcquireError::MaxRetries { .. })) => {
                if let Some(o) = machine.observation() {
                    let mut obs = locked(&self.inner.observations);
                    if obs.len() >= MAX_OBSERVATIONS {
                        obs.clear();
                    }
                    obs.insert(key, o.clone());
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        locked(&self.inner.observations).remove(&key);
        let held = Held::new(layout, acquired, options, rng_from(&self.inner.host));
        let serial = {
            let mut s = locked(&self.inner.next_serial);
            *s += 1;
            *s
        };
        let shared = Arc::new(Shared {
            serial,
            prolong: options.prolong,
            key,
            held: Mutex::new(held),
            signal: Signal::default(),
        });
        locked(&self.inner.held).insert(serial, shared.clone());
        if options.prolong {
            self.inner
                .host
                .spawn(renew_loop(self.clone(), shared.clone()));
        }
        Ok(Lock {
            shared,
            client: self.clone(),
        })
    }

    /// Releases `lock`: deletes its item if it is still ours. Someone else's item is never
    /// touched ([`ReleaseError::NotOwner`]).
    pub async fn release(&self, lock: &Lock<H>) -> Result<ReleaseOutcome, ReleaseError> {
        self.release_shared(&lock.shared).await
    }

    /// Releases every lock held through this client, concurrently, and reports each outcome.
    pub async fn release_all(&self) -> Vec<(LockKey, Result<ReleaseOutcome, ReleaseError>)> {
        let all: Vec<Arc<Shared>> = locked(&self.inner.held).values().cloned().collect();
        join_all(
            all.iter()
                .map(|s| async move { (s.key.clone(), self.release_shared(s).await) }),
        )
        .await
    }

    async fn release_shared(&self, shared: &Arc<Shared>) -> Result<ReleaseOutcome, ReleaseError> {
        shared.held().begin_release();
        shared.signal.notify();
        let result = loop {
            let changed = shared.signal.changed();
            let now = self.inner.host.now();
            let step = shared.held().poll_release(now);
            match step {
                Step::Send(request) => {
                    let outcome = self.execute(request).await;
                    shared.held().handle(self.inner.host.now(), outcome);
                    shared.signal.notify();
                }
                Step::Sleep(deadline) => self.inner.host.sleep_until(deadline).await,
                Step::AwaitResponse => changed.await,
                Step::Done(result) => break result,
            }
        };
        self.forget(shared);
        shared.signal.notify();
        result
    }

    /// Whether a renewal task looks after this lock (it forgets the lock when it ends).
    fn renews(&self, shared: &Shared) -> bool {
        shared.prolong
    }

    fn forget(&self, shared: &Shared) {
        locked(&self.inner.held).remove(&shared.serial);
    }

    /// Reads a lock without acquiring it (strongly consistent). `Ok(None)` if it is free.
    pub async fn read(&self, group: &str, id: &str) -> Result<Option<LockRecord>, AcquireError> {
        validate_key(group, id)?;
        let layout = Layout::new(
            self.inner.table.clone(),
            LockKey {
                group: group.to_owned(),
                id: id.to_owned(),
            },
        );
        let out = self
            .call(&layout.get())
            .await
            .map_err(AcquireError::Dynamo)?;
        out.item
            .map(|item| LockRecord::from_item(&item))
            .transpose()
            .map_err(AcquireError::ForeignItem)
    }

    /// Sends one request the core asked for.
    pub(crate) async fn execute(&self, request: Request) -> Outcome {
        match request {
            Request::Put(op) => self.call(&op).await.map(Response::Put),
            Request::Update(op) => self.call(&op).await.map(Response::Update),
            Request::Get(op) => self.call(&op).await.map(Response::Get),
            Request::Delete(op) => self.call(&op).await.map(Response::Delete),
        }
    }

    /// Signs and sends one DynamoDB operation, bounded by the request timeout, and counts it.
    pub async fn call<O: Operation>(&self, op: &O) -> Result<O::Output, dynamodb::Error> {
        let result = self.call_uncounted(op).await;
        self.inner.counters.record::<O>(&result);
        result
    }

    async fn call_uncounted<O: Operation>(&self, op: &O) -> Result<O::Output, dynamodb::Error> {
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
        let response = with_timeout(
            &inner.host,
            now.mono + inner.request_timeout,
            inner.host.send(request),
        )
        .await
        .map_err(dynamodb::Error::Transport)?;
        dynamodb::decode::<O>(&response)
    }
}

/// Completes with `fut`'s output, or a timeout error at `deadline`.
async fn with_timeout<H: Host, T>(
    host: &H,
    deadline: Instant,
    fut: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    let fut = pin!(fut);
    let sleep = pin!(host.sleep_until(deadline));
    match select(fut, sleep).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(TransportError::timeout()),
    }
}

fn rng_from<H: Host>(host: &H) -> Rng {
    let mut seed = [0u8; 32];
    host.fill(&mut seed);
    Rng::from_seed(seed)
}

/// Keeps a lock alive until it is lost or released.
async fn renew_loop<H: Host>(client: LockClient<H>, shared: Arc<Shared>) {
    let host = client.inner.host.clone();
    loop {
        let changed = shared.signal.changed();
        let step = shared.held().poll_renew(host.now());
        match step {
            Step::Send(request) => {
                let outcome = client.execute(request).await;
                shared.held().handle(host.now(), outcome);
                shared.signal.notify();
            }
            Step::Sleep(deadline) => {
                let sleep = pin!(host.sleep_until(deadline));
                select(sleep, changed).await;
            }
            Step::AwaitResponse => changed.await,
            Step::Done(_) => {
                // A release in progress forgets the lock itself when it is done.
                if !shared.held().releasing() {
                    client.forget(&shared);
                }
                shared.signal.notify();
                return;
            }
        }
    }
}

impl<H: Host> Drop for Lock<H> {
    fn drop(&mut self) {
        let mut held = self.shared.held();
        if !held.releasing() {
            held.abandon();
            drop(held);
            self.shared.signal.notify();
            if !self.client.renews(&self.shared) {
                self.client.forget(&self.shared);
            }
        }
    }
}

impl<H: Host> Lock<H> {
    /// The lock's group and id.
    pub fn key(&self) -> &LockKey {
        &self.shared.key
    }

    /// Our record as last confirmed (owner, current record version, lease, ...).
    pub fn record(&self) -> LockRecord {
        self.shared.held().record().clone()
    }

    /// This acquisition's fencing token: strictly greater than every earlier acquisition's
    /// token of the same key (see [`fence_base`](crate::core::fence_base) for the mechanism and
    /// the conditions it relies on). Pass it to the resource you protect and have it reject
    /// tokens lower than the highest it has seen. `None` only if the item was written by a
    /// client that keeps no token and its answer was lost (never for our own writes).
    pub fn fencing_token(&self) -> Option<u64> {
        self.shared.held().record().fence
    }

    /// Applies `actions` (puts, updates, deletes, checks on any tables) in one DynamoDB
    /// transaction that also checks this lock is still ours: all happen only if the lock item
    /// still carries our owner and version.
    ///
    /// ```no_run
    /// # async fn f(lock: ddb_lock::Lock<ddb_lock::rt::TokioHost>) -> Result<(), Box<dyn std::error::Error>> {
    /// use ddb_lock::dynamodb::{AttributeValue, transact_write_items::{TransactItem, TransactTarget}};
    /// let put = TransactItem::Put(TransactTarget {
    ///     table_name: "reports".into(),
    ///     item: [("id".to_owned(), AttributeValue::s("nightly")),
    ///            ("state".to_owned(), AttributeValue::s("done"))].into(),
    ///     ..Default::default()
    /// });
    /// lock.write_if_held(vec![put]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_if_held(
        &self,
        actions: Vec<crate::dynamodb::transact_write_items::TransactItem>,
    ) -> Result<(), GuardedWriteError> {
        let now = self.client.inner.host.now().mono;
        let check = self.shared.held().still_held(now);
        let Some(check) = check else {
            return Err(GuardedWriteError::NotHeld { holder: None });
        };
        if actions.is_empty() || actions.len() > 99 {
            return Err(GuardedWriteError::InvalidInput(crate::InvalidInput::new(
                "actions",
                "must be 1 to 99 actions (DynamoDB allows 100 with the lock check)",
            )));
        }
        let mut transact_items = Vec::with_capacity(actions.len() + 1);
        transact_items.push(check);
        transact_items.extend(actions);
        let op = crate::dynamodb::TransactWriteItems {
            transact_items,
            client_request_token: None,
            return_consumed_capacity: Some("TOTAL"),
        };
        match self.client.call(&op).await {
            Ok(_) => Ok(()),
            Err(dynamodb::Error::TransactionCanceled { reasons, message }) => {
                let lock_failed = reasons
                    .first()
                    .and_then(|r| r.code.as_deref())
                    .is_some_and(|c| c == "ConditionalCheckFailed");
                if lock_failed {
                    let holder = reasons[0]
                        .item
                        .as_ref()
                        .and_then(|i| LockRecord::from_item(i).ok());
                    Err(GuardedWriteError::NotHeld { holder })
                } else {
                    Err(GuardedWriteError::Canceled { reasons, message })
                }
            }
            Err(e) => Err(GuardedWriteError::Dynamo(e)),
        }
    }

    /// Whether the lock is still ours by the conservative clock (see [`status`](Self::status)).
    pub fn is_held(&self) -> bool {
        matches!(self.status(), LockStatus::Held { .. })
    }

    /// Held (with time left and any renewal trouble) or lost (with the reason).
    pub fn status(&self) -> LockStatus {
        let now = self.client.inner.host.now().mono;
        let held = self.shared.held();
        match held.lost(now) {
            Some(reason) => LockStatus::Lost(reason),
            None => LockStatus::Held {
                remaining: held.remaining(now),
                renewal_error: held.renewal_error().cloned(),
            },
        }
    }

    /// Time left before the lock stops counting as held; zero when lost.
    pub fn remaining(&self) -> Duration {
        let now = self.client.inner.host.now().mono;
        self.shared.held().remaining(now)
    }

    /// Completes when the lock is lost, with the reason (stolen, deleted, expired, released).
    ///
    /// ```no_run
    /// # async fn f(lock: ddb_lock::Lock<ddb_lock::rt::TokioHost>) {
    /// let reason = lock.lost().await;
    /// eprintln!("lock lost: {reason}");
    /// # }
    /// ```
    pub async fn lost(&self) -> LossReason {
        let host = &self.client.inner.host;
        loop {
            let changed = self.shared.signal.changed();
            let (lost, until) = {
                let held = self.shared.held();
                (held.lost(host.now().mono), held.valid_until())
            };
            if let Some(reason) = lost {
                return reason;
            }
            let sleep = pin!(host.sleep_until(until));
            select(sleep, changed).await;
        }
    }

    /// Completes `warning` before the lock would stop counting as held (e.g. while renewals
    /// fail), or when it is lost: returns the time left then (zero if lost).
    pub async fn expiring(&self, warning: Duration) -> Duration {
        let host = &self.client.inner.host;
        loop {
            let changed = self.shared.signal.changed();
            let now = host.now().mono;
            let (lost, until) = {
                let held = self.shared.held();
                (held.lost(now).is_some(), held.valid_until())
            };
            let remaining = until - now;
            if lost || remaining <= warning {
                return if lost { Duration::ZERO } else { remaining };
            }
            let sleep = pin!(host.sleep_until(until.saturating_sub(warning)));
            select(sleep, changed).await;
        }
    }

    /// Releases the lock (see [`LockClient::release`]).
    pub async fn release(&self) -> Result<ReleaseOutcome, ReleaseError> {
        self.client.release_shared(&self.shared).await
    }
}
