//! The async lock client: drives each lock's [`LockMachine`](crate::core::LockMachine)
//! through a [`Host`].
//!
//! - `mod.rs` (this file): [`LockClient`], its calls and its registry of locks;
//! - `handle.rs`: [`Lock`] and the other public handles and errors;
//! - `driver.rs`: the run loop every caller and background task shares, and the guards that
//!   make each future safe to drop;
//! - `glue.rs`: signing and sending one operation, and the per-key memory.
//!
//! # Cancellation
//!
//! Every public async fn may be dropped at any point (`tokio::time::timeout`, `select!`,
//! shutdown). A request in flight at that moment counts as "outcome unknown, may have
//! applied", like a timeout; what each call leaves behind is in its doc.

mod driver;
mod glue;
mod handle;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::{Either, join_all, select};

use crate::config::{ClientConfig, ConfigError, CredentialsProvider};
use crate::core::{
    AcquireError, Layout, LockKey, LockMachine, LockRecord, Output, Phase, Rng, Status,
};
use crate::dynamodb::Endpoint;
use crate::host::Host;
use crate::options::{LockOptions, TableOptions, validate_key};
use crate::stats::{Counters, Stats};

use driver::{AcquireGuard, ReleaseGuard, Shared, drive, ensure_background};
use glue::KeyMemory;

pub use handle::{Events, GuardedWriteError, Lock, LockStatus, TryLock, WithLockError};

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
    /// Every lock this client looks after: acquired and not ended (held, lost with a live
    /// handle, being released), and cleanups of acquisitions that did not finish.
    locks: Mutex<BTreeMap<u64, Arc<Shared>>>,
    next_serial: AtomicU64,
    memory: Mutex<KeyMemory>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
                locks: Mutex::new(BTreeMap::new()),
                next_serial: AtomicU64::new(1),
                memory: Mutex::new(KeyMemory::default()),
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

    /// Locks held through this client now (acquired, not lost, not being released).
    pub fn held_count(&self) -> usize {
        let now = self.inner.host.now();
        self.registered()
            .iter()
            .filter(|s| matches!(s.machine().status(now), Status::Held { .. }))
            .count()
    }

    /// Locks this client still looks after: held ones, lost ones whose handle lives, and
    /// those being released (by a call or in the background), including cleanups of
    /// acquisitions that did not finish. Zero once everything is released and every handle
    /// is gone.
    pub fn active_count(&self) -> usize {
        locked(&self.inner.locks).len()
    }

    fn registered(&self) -> Vec<Arc<Shared>> {
        locked(&self.inner.locks).values().cloned().collect()
    }

    fn register(&self, shared: &Arc<Shared>) {
        locked(&self.inner.locks).insert(shared.serial, shared.clone());
    }

    pub(crate) fn forget(&self, shared: &Shared) {
        locked(&self.inner.locks).remove(&shared.serial);
    }

    /// Acquires the lock `(group, id)`, waiting while another holder keeps it alive.
    ///
    /// Cancellation: dropped before it returns, the acquisition is cancelled. If a write of
    /// it may have applied, the item is released in the background (one conditional delete
    /// naming every version it sent), and this client's next `lock()` of the key takes an
    /// item carrying one of those versions at once instead of waiting a lease.
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
    /// once its version has been seen unchanged for a whole lease. Bounded: it answers
    /// [`AcquireError::Unavailable`] after [`TRY_ATTEMPTS`](crate::core::TRY_ATTEMPTS) failed
    /// requests in a row (throttled, unreachable), and honours `acquire_timeout`.
    ///
    /// Cancellation: as [`lock`](Self::lock).
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

    /// Runs `body` while the lock `(group, id)` is held, then releases it. If the lock is
    /// lost first (stolen, deleted, or renewals failed until its validity ended), `body` is
    /// stopped (dropped) at that moment, before the lease runs out.
    ///
    /// Returns `body`'s value when it finished while the lock was held (the release that
    /// follows is best effort: a release that cannot be confirmed leaves the item to expire
    /// with its lease); [`WithLockError::Lost`] when the lock was lost before `body`
    /// finished, or the release found it taken; [`WithLockError::Acquire`] when it was never
    /// acquired.
    ///
    /// Cancellation: dropped while waiting, as [`lock`](Self::lock); while `body` runs,
    /// `body` is dropped and the lock is released in the background.
    ///
    /// ```no_run
    /// # async fn f(client: ddb_lock::LockClient<ddb_lock::rt::TokioHost>) -> Result<(), Box<dyn std::error::Error>> {
    /// let rows = client
    ///     .with_lock("jobs", "migrate", &ddb_lock::LockOptions::new(), async |lock| {
    ///         println!("migrating with fencing token {:?}", lock.fencing_token());
    ///         42
    ///     })
    ///     .await?;
    /// # let _ = rows; Ok(()) }
    /// ```
    pub async fn with_lock<T>(
        &self,
        group: &str,
        id: &str,
        options: &LockOptions,
        body: impl AsyncFnOnce(&Lock<H>) -> T,
    ) -> Result<T, WithLockError> {
        let lock = self
            .lock(group, id, options)
            .await
            .map_err(WithLockError::Acquire)?;
        let outcome = {
            let work = std::pin::pin!(body(&lock));
            let lost = std::pin::pin!(lock.lost());
            match select(work, lost).await {
                Either::Left((value, _)) => Ok(value),
                Either::Right((reason, _)) => Err(reason),
            }
        };
        let released = lock.release().await;
        match (outcome, released) {
            (Err(reason), _) => Err(WithLockError::Lost(reason)),
            (Ok(_), Err(crate::ReleaseError::NotOwner { holder })) => {
                Err(WithLockError::Lost(crate::LossReason::Stolen {
                    by: holder,
                }))
            }
            (Ok(_), Err(crate::ReleaseError::AlreadyLost(reason))) => {
                Err(WithLockError::Lost(reason))
            }
            (Ok(value), _) => Ok(value),
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
        options.validate_for(&self.inner.table)?;
        let key = LockKey {
            group: group.to_owned(),
            id: id.to_owned(),
        };
        let now = self.inner.host.now();
        let start = locked(&self.inner.memory).start(&key, try_only, now.mono);
        let machine = LockMachine::new(
            Layout::new(self.inner.table.clone(), key.clone()),
            self.inner.owner.clone(),
            options.clone(),
            start,
            self.inner.request_timeout,
            rng_from(&self.inner.host),
            now,
        );
        let serial = self.inner.next_serial.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared::new(serial, key, machine));
        let mut guard = AcquireGuard {
            client: self,
            shared: &shared,
            armed: true,
        };
        let result = drive(self, &shared, |m, _| m.acquisition().cloned()).await;
        guard.armed = false;
        drop(guard);
        self.acquisition_over(&shared);
        match result {
            Some(Ok(_)) => Ok(Lock::new(shared, self.clone())),
            Some(Err(e)) => Err(e),
            None => Err(AcquireError::Cancelled),
        }
    }

    /// An acquisition finished (or was cancelled): remember what it learnt, and look after
    /// the lock, or after whatever the acquisition may have left.
    fn acquisition_over(&self, shared: &Arc<Shared>) {
        let now = self.inner.host.now();
        let phase = {
            let m = shared.machine();
            let lease = m.options().lease_duration();
            locked(&self.inner.memory).after(&shared.key, &m, lease, now.mono);
            m.phase()
        };
        if phase != Phase::Ended {
            self.register(shared);
            ensure_background(self, shared);
        }
    }

    /// Releases `lock`: deletes its item if it is still ours. Someone else's item is never
    /// touched ([`ReleaseError::NotOwner`](crate::ReleaseError::NotOwner)). See
    /// [`Lock::release`].
    ///
    /// Cancellation: dropped before it returns, the release goes on in the background; a
    /// later call completes with its result.
    pub async fn release(
        &self,
        lock: &Lock<H>,
    ) -> Result<crate::ReleaseOutcome, crate::ReleaseError> {
        self.release_shared(lock.shared()).await
    }

    /// Releases every lock this client looks after, concurrently, and reports each outcome:
    /// held locks, lost ones whose handle lives (`AlreadyLost`), releases under way, and
    /// cleanups of acquisitions that did not finish. Each is bounded like
    /// [`Lock::release`]. Handles of released locks stay valid (their status says so).
    ///
    /// Cancellation: dropped before it returns, every release it started goes on in the
    /// background; a later call finds the ones not finished yet.
    pub async fn release_all(
        &self,
    ) -> Vec<(LockKey, Result<crate::ReleaseOutcome, crate::ReleaseError>)> {
        let all = self.registered();
        join_all(
            all.iter()
                .map(|s| async move { (s.key.clone(), self.release_shared(s).await) }),
        )
        .await
    }

    pub(crate) async fn release_shared(
        &self,
        shared: &Arc<Shared>,
    ) -> Result<crate::ReleaseOutcome, crate::ReleaseError> {
        let now = self.inner.host.now();
        shared.command(|m| m.release(now));
        let _guard = ReleaseGuard {
            client: self,
            shared,
        };
        // Ended without a release (abandoned): nothing was released, the lease runs out.
        let never = || {
            Err(crate::ReleaseError::AlreadyLost(
                crate::LossReason::Expired { last_error: None },
            ))
        };
        drive(self, shared, |m, settled| match m.release_outcome() {
            Some(r) => Some(r.clone()),
            None if matches!(settled, Some(Output::Idle | Output::Ended))
                || m.phase() == Phase::Ended =>
            {
                Some(never())
            }
            None => None,
        })
        .await
        .unwrap_or_else(never)
    }

    /// Reads a lock without acquiring it (strongly consistent). `Ok(None)` if it is free.
    ///
    /// Cancellation: nothing is left behind.
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
}

fn rng_from<H: Host>(host: &H) -> Rng {
    let mut seed = [0u8; 32];
    host.fill(&mut seed);
    Rng::from_seed(seed)
}
