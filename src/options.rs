//! Lock options and table options, with the TypeScript client's defaults, validated before
//! any request is sent.

use std::fmt;
use std::time::Duration;

use crate::dynamodb::{AttributeValue, Item};

/// The attribute names of a lock item, fixed by the TypeScript client's format.
pub(crate) mod attr {
    pub(crate) const OWNER: &str = "ownerName";
    pub(crate) const RVN: &str = "recordVersionNumber";
    pub(crate) const LEASE: &str = "leaseDurationInMs";
    pub(crate) const UPDATED: &str = "lastUpdatedTimeInMs";
    pub(crate) const ADDITIONAL: &str = "additionalAttributes";
    /// Our own addition (ignored by the TypeScript client): the fencing token.
    pub(crate) const FENCE: &str = "fencingToken";
    pub(crate) const ALL: [&str; 6] = [OWNER, RVN, LEASE, UPDATED, ADDITIONAL, FENCE];
}

/// DynamoDB's limit on a partition key value, in bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's limit on a sort key value, in bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// DynamoDB's item size limit, in bytes.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Input rejected before any request was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidInput {
    /// The option or argument at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidInput {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidInput {}

/// The lock table: its name, key attribute names and TTL. Defaults follow the TypeScript
/// client's README: table `lockTable` (its code says `LockTable`; pass the name explicitly
/// when sharing a table with it), partition key `lockId`, sort key `lockGroup`, no TTL
/// attribute, TTL one hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableOptions {
    pub(crate) table_name: String,
    pub(crate) partition_key: String,
    pub(crate) sort_key: String,
    pub(crate) ttl_key: Option<String>,
    pub(crate) ttl: Duration,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            table_name: "lockTable".into(),
            partition_key: "lockId".into(),
            sort_key: "lockGroup".into(),
            ttl_key: None,
            ttl: Duration::from_secs(3600),
        }
    }
}

impl TableOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// The table name (default `lockTable`).
    pub fn table_name(mut self, name: impl Into<String>) -> Self {
        self.table_name = name.into();
        self
    }
    /// The partition key attribute, holding the lock id (default `lockId`).
    pub fn partition_key(mut self, name: impl Into<String>) -> Self {
        self.partition_key = name.into();
        self
    }
    /// The sort key attribute, holding the lock group (default `lockGroup`).
    pub fn sort_key(mut self, name: impl Into<String>) -> Self {
        self.sort_key = name.into();
        self
    }
    /// An attribute for DynamoDB's TTL (epoch seconds), written and refreshed with every
    /// write (default: none). The TTL itself must be far longer than any lease.
    pub fn ttl_key(mut self, name: impl Into<String>) -> Self {
        self.ttl_key = Some(name.into());
        self
    }
    /// How far past the last write the TTL attribute points (default one hour).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
    /// The table name.
    pub fn name(&self) -> &str {
        &self.table_name
    }
    /// The partition key attribute name.
    pub fn partition_key_name(&self) -> &str {
        &self.partition_key
    }
    /// The sort key attribute name.
    pub fn sort_key_name(&self) -> &str {
        &self.sort_key
    }
    /// The TTL attribute name, if any.
    pub fn ttl_key_name(&self) -> Option<&str> {
        self.ttl_key.as_deref()
    }
    /// The TTL duration.
    pub fn ttl_duration(&self) -> Duration {
        self.ttl
    }

    /// Checks names against DynamoDB's rules and against the lock's own attributes.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let t = &self.table_name;
        if !(3..=255).contains(&t.len())
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(InvalidInput::new(
                "table_name",
                format!("{t:?} must be 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'"),
            ));
        }
        let mut names: Vec<(&'static str, &str)> = vec![
            ("partition_key", &self.partition_key),
            ("sort_key", &self.sort_key),
        ];
        if let Some(ttl) = &self.ttl_key {
            names.push(("ttl_key", ttl));
        }
        for (i, (field, name)) in names.iter().enumerate() {
            if name.is_empty() || name.len() > 255 {
                return Err(InvalidInput::new(field, "must be 1 to 255 bytes"));
            }
            if attr::ALL.contains(name) {
                return Err(InvalidInput::new(
                    field,
                    format!("{name:?} is one of the lock's own attributes"),
                ));
            }
            if names[..i].iter().any(|(_, other)| other == name) {
                return Err(InvalidInput::new(field, format!("{name:?} is used twice")));
            }
        }
        if self.ttl.is_zero() {
            return Err(InvalidInput::new("ttl", "must be positive"));
        }
        Ok(())
    }
}

/// Options of one acquisition. Defaults follow the TypeScript client: lease 20 s, prolong
/// on every 5 s (a quarter of the lease when that is less), `trust_local_time` off, no retry
/// limit, no additional attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct LockOptions {
    pub(crate) lease: Duration,
    pub(crate) prolong: bool,
    pub(crate) prolong_every: Option<Duration>,
    pub(crate) trust_local_time: bool,
    pub(crate) wait_duration: Option<Duration>,
    pub(crate) max_clock_skew: Option<Duration>,
    pub(crate) max_retry_count: Option<u32>,
    pub(crate) additional_attributes: Item,
    pub(crate) poll_interval: Duration,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) safety_margin: Option<Duration>,
    pub(crate) keep_item_on_release: bool,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            lease: Duration::from_secs(20),
            prolong: true,
            prolong_every: None,
            trust_local_time: false,
            wait_duration: None,
            max_clock_skew: None,
            max_retry_count: None,
            additional_attributes: Item::new(),
            poll_interval: Duration::from_secs(1),
            acquire_timeout: None,
            safety_margin: None,
            keep_item_on_release: false,
        }
    }
}

impl LockOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// How long the lock is ours after each write (`leaseDurationInMs`, default 20 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Renew automatically while held (`prolongLeaseEnabled`, default on).
    pub fn prolong(mut self, on: bool) -> Self {
        self.prolong = on;
        self
    }
    /// Renewal period (`prolongEveryMs`; default 5 s, or a quarter of the lease when that is
    /// less). Must be under half the lease, and with the safety margin under the lease.
    pub fn prolong_every(mut self, every: Duration) -> Self {
        self.prolong_every = Some(every);
        self
    }
    /// Take over a lock whose stored `lastUpdatedTimeInMs + leaseDurationInMs` (plus
    /// [`max_clock_skew`](Self::max_clock_skew)) is in the past by this host's wall clock,
    /// instead of watching it for a whole lease (default off). Requires
    /// [`wait_duration`](Self::wait_duration) and [`max_clock_skew`](Self::max_clock_skew).
    pub fn trust_local_time(mut self, on: bool) -> Self {
        self.trust_local_time = on;
        self
    }
    /// With `trust_local_time`: the period after which a still-held lock counts as one
    /// failed attempt (`waitDurationInMs`).
    pub fn wait_duration(mut self, wait: Duration) -> Self {
        self.wait_duration = Some(wait);
        self
    }
    /// With `trust_local_time`: how far apart any two writers' wall clocks may be. Added to
    /// the stored lease before a takeover. Required, so the trade-off is explicit.
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = Some(skew);
        self
    }
    /// Give up when failed attempts exceed this (`maxRetryCount`, default: never). A failed
    /// attempt is a conditional write that was refused, a request that could not complete,
    /// or a wait for the holder's lease (or `wait_duration`) that ended with the lock still
    /// held. Reads that merely watch a live holder do not count.
    pub fn max_retry_count(mut self, n: u32) -> Self {
        self.max_retry_count = Some(n);
        self
    }
    /// Extra attributes stored in the item's `additionalAttributes` map.
    pub fn additional_attributes(mut self, attrs: Item) -> Self {
        self.additional_attributes = attrs;
        self
    }
    /// One extra attribute, added to those already set.
    pub fn additional_attribute(mut self, name: impl Into<String>, value: AttributeValue) -> Self {
        self.additional_attributes.insert(name.into(), value);
        self
    }
    /// How often a waiter reads the lock to notice a release (default 1 s).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }
    /// Give up waiting after this long in all (default: no limit).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }
    /// How long before the lease runs out (measured from before the renewing request was
    /// sent) the holder stops counting the lock as held (default: a tenth of the lease).
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.safety_margin = Some(margin);
        self
    }

    /// Release by marking the item released (lease 0, new version) instead of deleting it
    /// (default off: delete, as the TypeScript client does). The item keeps its fencing token,
    /// so tokens stay strictly increasing across releases without relying on clocks; items
    /// then stay in the table until their TTL (configure a TTL attribute). Anyone, the
    /// TypeScript client included, may take a released item at once.
    pub fn keep_item_on_release(mut self, keep: bool) -> Self {
        self.keep_item_on_release = keep;
        self
    }

    /// The lease.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    pub(crate) fn margin(&self) -> Duration {
        self.safety_margin.unwrap_or(self.lease / 10)
    }

    /// The renewal period: as set, or 5 s, or a quarter of the lease when that is less.
    pub fn renewal_period(&self) -> Duration {
        self.prolong_every
            .unwrap_or_else(|| (self.lease / 4).min(Duration::from_secs(5)))
    }

    /// Checks the options against the table's: DynamoDB may delete an item once its TTL
    /// attribute is past, so the TTL must outlast the lease (by at least a second for TTL's
    /// whole seconds, and by the clock skew this host may have: `max_clock_skew`, at least 1 s).
    pub fn validate_for(&self, table: &TableOptions) -> Result<(), InvalidInput> {
        self.validate()?;
        if table.ttl_key.is_some() {
            let skew = self
                .max_clock_skew
                .unwrap_or_default()
                .max(Duration::from_secs(1));
            let least = self.lease + Duration::from_secs(1) + skew;
            if table.ttl < least {
                return Err(InvalidInput::new(
                    "ttl",
                    format!(
                        "the table's TTL ({:?}) must be at least the lease ({:?}) plus 1 s plus the clock skew ({skew:?}): {least:?}; DynamoDB may delete an item once its TTL is past",
                        table.ttl, self.lease
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the options; nothing is sent when they are invalid.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.lease < Duration::from_millis(1) {
            return Err(InvalidInput::new("lease", "must be at least 1 ms"));
        }
        if self.lease > Duration::from_secs(365 * 24 * 3600) {
            return Err(InvalidInput::new("lease", "must be at most a year"));
        }
        if self.margin() >= self.lease {
            return Err(InvalidInput::new(
                "safety_margin",
                "must be less than the lease",
            ));
        }
        if self.prolong {
            let every = self.renewal_period();
            if every.is_zero() {
                return Err(InvalidInput::new("prolong_every", "must be positive"));
            }
            if every >= self.lease / 2 {
                return Err(InvalidInput::new(
                    "prolong_every",
                    format!(
                        "{every:?} must be less than half the lease ({:?})",
                        self.lease
                    ),
                ));
            }
            if every + self.margin() >= self.lease {
                return Err(InvalidInput::new(
                    "prolong_every",
                    format!(
                        "{every:?} plus the safety margin ({:?}) must be less than the lease ({:?}): every lock would expire before its first renewal",
                        self.margin(),
                        self.lease
                    ),
                ));
            }
        }
        if self.trust_local_time {
            match self.wait_duration {
                None => {
                    return Err(InvalidInput::new(
                        "wait_duration",
                        "is required with trust_local_time",
                    ));
                }
                Some(w) if w.is_zero() => {
                    return Err(InvalidInput::new("wait_duration", "must be positive"));
                }
                _ => {}
            }
            if self.max_clock_skew.is_none() {
                return Err(InvalidInput::new(
                    "max_clock_skew",
                    "is required with trust_local_time (the bound on clock differences between clients)",
                ));
            }
        }
        if self.poll_interval < Duration::from_millis(1) {
            return Err(InvalidInput::new("poll_interval", "must be at least 1 ms"));
        }
        let size: usize = self
            .additional_attributes
            .iter()
            .map(|(k, v)| k.len() + v.size_estimate())
            .sum();
        if size > MAX_ITEM_BYTES - 8 * 1024 {
            return Err(InvalidInput::new(
                "additional_attributes",
                format!("{size} bytes leave no room in a 400 KB item"),
            ));
        }
        for (k, v) in &self.additional_attributes {
            if k.is_empty() {
                return Err(InvalidInput::new(
                    "additional_attributes",
                    "attribute names must not be empty",
                ));
            }
            check_value(k, v)?;
        }
        Ok(())
    }
}

fn check_value(name: &str, v: &AttributeValue) -> Result<(), InvalidInput> {
    let bad = |why: &str| {
        Err(InvalidInput::new(
            "additional_attributes",
            format!("{name:?}: {why}"),
        ))
    };
    match v {
        AttributeValue::N(n) if !is_number(n) => bad("N must be a decimal number"),
        AttributeValue::NS(ns) if ns.is_empty() || ns.iter().any(|n| !is_number(n)) => {
            bad("NS must be a non-empty set of numbers")
        }
        AttributeValue::SS(v) | AttributeValue::BS(v) if v.is_empty() => {
            bad("sets must not be empty")
        }
        AttributeValue::Null(false) => bad("NULL must be true"),
        AttributeValue::M(m) => m.iter().try_for_each(|(k, v)| check_value(k, v)),
        AttributeValue::L(l) => l.iter().try_for_each(|v| check_value(name, v)),
        _ => Ok(()),
    }
}

fn is_number(n: &str) -> bool {
    let n = n.strip_prefix('-').unwrap_or(n);
    let (mantissa, exp) = match n.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (n, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(int.is_empty() && frac.is_empty())
        && digits(int)
        && digits(frac)
        && exp.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        })
}

/// Checks a lock's group and id against DynamoDB's key rules.
pub(crate) fn validate_key(group: &str, id: &str) -> Result<(), InvalidInput> {
    if id.is_empty() {
        return Err(InvalidInput::new("id", "must not be empty"));
    }
    if group.is_empty() {
        return Err(InvalidInput::new("group", "must not be empty"));
    }
    if id.len() > MAX_PARTITION_KEY_BYTES {
        return Err(InvalidInput::new(
            "id",
            format!(
                "{} bytes is over DynamoDB's {MAX_PARTITION_KEY_BYTES}-byte partition key limit",
                id.len()
            ),
        ));
    }
    if group.len() > MAX_SORT_KEY_BYTES {
        return Err(InvalidInput::new(
            "group",
            format!(
                "{} bytes is over DynamoDB's {MAX_SORT_KEY_BYTES}-byte sort key limit",
                group.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_typescript_client() {
        let o = LockOptions::default();
        assert_eq!(o.lease, Duration::from_secs(20));
        assert!(o.prolong);
        assert_eq!(o.renewal_period(), Duration::from_secs(5));
        assert!(!o.trust_local_time && o.max_retry_count.is_none());
        assert!(o.validate().is_ok());
        let t = TableOptions::default();
        assert_eq!(
            (t.name(), t.partition_key_name(), t.sort_key_name()),
            ("lockTable", "lockId", "lockGroup")
        );
        assert_eq!((t.ttl_key_name(), t.ttl), (None, Duration::from_secs(3600)));
        assert!(t.validate().is_ok());
    }

    #[test]
    fn bad_options_are_rejected() {
        let ms = Duration::from_millis;
        let field = |o: LockOptions| o.validate().unwrap_err().field;
        assert_eq!(field(LockOptions::new().lease(ms(0))), "lease");
        assert_eq!(
            field(LockOptions::new().lease(ms(1000)).prolong_every(ms(500))),
            "prolong_every"
        );
        assert!(
            LockOptions::new()
                .lease(ms(1000))
                .prolong(false)
                .prolong_every(ms(500))
                .validate()
                .is_ok()
        );
        assert_eq!(
            field(LockOptions::new().trust_local_time(true)),
            "wait_duration"
        );
        assert_eq!(
            field(
                LockOptions::new()
                    .trust_local_time(true)
                    .wait_duration(ms(10))
            ),
            "max_clock_skew"
        );
        assert!(
            LockOptions::new()
                .trust_local_time(true)
                .wait_duration(ms(10))
                .max_clock_skew(ms(0))
                .validate()
                .is_ok()
        );
        assert_eq!(
            field(LockOptions::new().additional_attribute("x", AttributeValue::N("1x".into()))),
            "additional_attributes"
        );
        assert_eq!(
            field(LockOptions::new().additional_attribute("", AttributeValue::s("v"))),
            "additional_attributes"
        );
        assert_eq!(
            field(
                LockOptions::new()
                    .additional_attribute("big", AttributeValue::s("x".repeat(MAX_ITEM_BYTES)))
            ),
            "additional_attributes"
        );
        assert_eq!(
            field(
                LockOptions::new()
                    .lease(ms(100))
                    .prolong(false)
                    .safety_margin(ms(100))
            ),
            "safety_margin"
        );
    }

    #[test]
    fn numbers() {
        for ok in ["0", "-1", "1.5", ".5", "1e10", "-2.5E-3", "10."] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in ["", "-", "1x", "1e", "e5", "1.2.3", "+1", " 1"] {
            assert!(!is_number(bad), "{bad}");
        }
    }

    #[test]
    fn bad_tables_and_keys_are_rejected() {
        let field = |t: TableOptions| t.validate().unwrap_err().field;
        assert_eq!(field(TableOptions::new().table_name("ab")), "table_name");
        assert_eq!(field(TableOptions::new().table_name("a b c")), "table_name");
        assert_eq!(
            field(TableOptions::new().partition_key("")),
            "partition_key"
        );
        assert_eq!(field(TableOptions::new().sort_key("lockId")), "sort_key");
        assert_eq!(field(TableOptions::new().sort_key("ownerName")), "sort_key");
        assert_eq!(
            field(TableOptions::new().ttl_key("recordVersionNumber")),
            "ttl_key"
        );
        assert_eq!(field(TableOptions::new().ttl_key("lockGroup")), "ttl_key");
        assert!(validate_key("g", "").is_err());
        assert!(validate_key("", "i").is_err());
        assert!(validate_key("g", &"x".repeat(2049)).is_err());
        assert!(validate_key(&"x".repeat(1025), "i").is_err());
        assert!(validate_key(&"x".repeat(1024), &"x".repeat(2048)).is_ok());
    }
}
