#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod client;
mod config;
pub mod core;
pub mod dynamodb;
pub mod host;
pub mod options;
pub mod rt;
mod signal;
mod stats;
pub mod table;
pub mod time;

pub use client::{Events, GuardedWriteError, Lock, LockClient, LockStatus, TryLock, WithLockError};
pub use config::{ClientConfig, ConfigError, CredentialsError, CredentialsProvider};
pub use core::{
    AcquireError, Busy, LockEvent, LockKey, LockRecord, LossReason, ReleaseError, ReleaseOutcome,
};
pub use dynamodb::Credentials;
pub use options::{InvalidInput, LockOptions, TableOptions};
pub use stats::{OpStats, Stats};
