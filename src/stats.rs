//! Request and capacity counters: DynamoDB requests and units are the users' bill.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::dynamodb::{self, Operation};

/// Counts of one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Requests sent.
    pub requests: u64,
    /// Requests refused by their condition (`ConditionalCheckFailedException`). DynamoDB
    /// still charges a write unit for each.
    pub conditional_failures: u64,
}

/// A snapshot of a client's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// `PutItem` (acquiring a free lock).
    pub put_item: OpStats,
    /// `UpdateItem` (takeovers, renewals).
    pub update_item: OpStats,
    /// `GetItem` (waiting, reconciling).
    pub get_item: OpStats,
    /// `DeleteItem` (releases).
    pub delete_item: OpStats,
    /// Every other operation (tables, listing, transactions).
    pub other: OpStats,
    /// Requests throttled.
    pub throttled: u64,
    /// Requests that failed otherwise (transport, 5xx, validation, ...), conditional
    /// failures excluded.
    pub errors: u64,
    /// Capacity units DynamoDB reported as consumed by successful requests.
    pub capacity_units: f64,
    /// Answers the client had no request in flight for (a bug in the driver, if ever
    /// non-zero; the answer is ignored).
    pub unexpected_responses: u64,
}

impl Stats {
    /// All requests sent.
    pub fn requests(&self) -> u64 {
        self.put_item.requests
            + self.update_item.requests
            + self.get_item.requests
            + self.delete_item.requests
            + self.other.requests
    }

    /// All writes refused by their condition.
    pub fn conditional_failures(&self) -> u64 {
        self.put_item.conditional_failures
            + self.update_item.conditional_failures
            + self.delete_item.conditional_failures
            + self.other.conditional_failures
    }
}

#[derive(Default)]
struct OpCounters {
    requests: AtomicU64,
    conditional_failures: AtomicU64,
}

impl OpCounters {
    fn get(&self) -> OpStats {
        OpStats {
            requests: self.requests.load(Relaxed),
            conditional_failures: self.conditional_failures.load(Relaxed),
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    put: OpCounters,
    update: OpCounters,
    get: OpCounters,
    delete: OpCounters,
    other: OpCounters,
    throttled: AtomicU64,
    errors: AtomicU64,
    /// Capacity in thousandths of a unit.
    milli_units: AtomicU64,
    unexpected: AtomicU64,
}

impl Counters {
    pub(crate) fn record<O: Operation>(&self, result: &Result<O::Output, dynamodb::Error>) {
        let op = match O::NAME {
            "PutItem" => &self.put,
            "UpdateItem" => &self.update,
            "GetItem" => &self.get,
            "DeleteItem" => &self.delete,
            _ => &self.other,
        };
        op.requests.fetch_add(1, Relaxed);
        match result {
            Err(dynamodb::Error::TransactionConflict { .. }) => {
                self.throttled.fetch_add(1, Relaxed);
            }
            Ok(out) => {
                let milli = (O::capacity(out) * 1000.0).round();
                if milli.is_finite() && milli > 0.0 {
                    self.milli_units.fetch_add(milli as u64, Relaxed);
                }
            }
            Err(dynamodb::Error::ConditionalCheckFailed { .. }) => {
                op.conditional_failures.fetch_add(1, Relaxed);
            }
            Err(dynamodb::Error::Throttled { .. }) => {
                self.throttled.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.errors.fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn unexpected_response(&self) {
        self.unexpected.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            put_item: self.put.get(),
            update_item: self.update.get(),
            get_item: self.get.get(),
            delete_item: self.delete.get(),
            other: self.other.get(),
            throttled: self.throttled.load(Relaxed),
            errors: self.errors.load(Relaxed),
            capacity_units: self.milli_units.load(Relaxed) as f64 / 1000.0,
            unexpected_responses: self.unexpected.load(Relaxed),
        }
    }
}
