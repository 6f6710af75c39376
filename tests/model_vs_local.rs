//! Differential test: the simulation's DynamoDB model (`tests/sim/db.rs`, `tests/sim/expr.rs`)
//! and its wire codec (`tests/sim/wire.rs`) against DynamoDB Local, so the model cannot drift
//! from the service it stands for.
//!
//! Seeded random sequences of the requests the lock core really sends (built by
//! `ddb_lock::core::Layout`): creates (also TypeScript-shaped ones without a fencing token),
//! takeovers conditioned on the current, a stale or a never-stored version, renewals and
//! releases (deleting or keeping the item) naming lists of current, stale and uncertain
//! versions with the right or a wrong owner, consistent reads, and transactions: the lock
//! action (`write_if_held`'s `Layout::still_held` check, or the holder's renewal as an
//! `Update` action) with one or two actions on data items in a separate data table (puts,
//! updates, deletes and condition checks, unconditional or conditioned on the item's
//! absence, presence or payload, with and without `ALL_OLD`). With and without a TTL
//! attribute, assorted additional attributes, fixed wall times, on three lock keys of two
//! lock tables (default and custom key names) and their data tables (a partition key only,
//! or both keys).
//!
//! Every request is encoded and signed by the crate (`ddb_lock::dynamodb::encode`) and goes,
//! as those bytes, to DynamoDB Local and through the simulated host's wire to the model:
//! `wire::decode_request` must give back exactly the request sent, the model answers with
//! `Db::apply_wire`, `wire::encode_response` turns that into a response, and the crate's
//! decoder must read it back as exactly the model's outcome. The test asserts:
//! * the same answer from both: success or `ConditionalCheckFailed`, the item returned on a
//!   failed condition (`ALL_OLD`), the attributes of `UPDATED_NEW` (the fencing token), a
//!   transaction's acceptance and its cancellation reasons (code, item and message per
//!   action, in order);
//! * response bodies of the same shape: status, field names, `__type`, codes, messages and
//!   table names (numbers, e.g. consumed capacity, and items are left out of the shape;
//!   items are compared decoded);
//! * after every step the touched items (lock item, data items) read back (consistent
//!   `GetItem`) from both and compared whole;
//! * the model's per-key ledger: the effect of every request (acquired / renewed / deleted,
//!   with the lock key and acquisition number the test counts itself for each key), the
//!   acquisition count of every key, the key and acquisition of the current record version,
//!   its token as the acquisition's, no fence error, and a regression reported exactly when
//!   a create restarts the token at or below that key's (not another key's) highest;
//! * once per run: a transaction with two actions on one item is refused by both.
//!
//! Run: `bash scripts/ddb-local.sh run -- cargo test --test model_vs_local`.
//!
//! Environment: `MVL_SEED=<n>` runs that sequence only and prints each step;
//! `MVL_SEQUENCES=<count>` (default 64), `MVL_START=<first seed>`, `MVL_OPS=<ops per sequence>`
//! (default 40).

#![allow(clippy::disallowed_methods)] // Only to report the run's real duration.

mod common;

#[allow(dead_code)]
mod sim {
    pub mod db;
    pub mod expr;
    pub mod wire;
}

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use ddb_lock::core::{Layout, LockKey, Request, Response, Rng};
use ddb_lock::dynamodb::create_table::{AttributeDefinition, CreateTable, KeySchemaElement};
use ddb_lock::dynamodb::transact_write_items::{TransactItem, TransactTarget};
use ddb_lock::dynamodb::{
    self, AttributeValue, Credentials, Endpoint, Error, GetItem, HttpRequest, HttpResponse, Item,
    Names, ReturnOnConditionFailure, TransactWriteItems, UpdateItem,
};
use ddb_lock::host::Transport;
use ddb_lock::rt::TokioHost;
use ddb_lock::time::WallTime;
use ddb_lock::{LockClient, TableOptions};

use sim::db::{Db, Effect, Regression, WireApplied};
use sim::wire::{WireOk, WireOp, decode_request, decode_response, encode_response};

const OWNERS: [&str; 3] = ["alice", "bob", "carol"];
const TTL_ATTR: &str = "expiresAt";
/// The fencing token attribute (`options::attr::FENCE`), absent from TypeScript-written items.
const FENCE: &str = "fencingToken";
const OWNER: &str = "ownerName";
const RVN: &str = "recordVersionNumber";
/// The data items' payload attribute.
const PAYLOAD: &str = "payload";
/// Data items per sequence.
const DATA_ITEMS: usize = 2;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// A plain table for the data items transactions write.
#[derive(Clone, Debug)]
struct DataTable {
    name: String,
    pk: String,
    sk: Option<String>,
}

/// One lock table both sides use, its key attribute names, and its data table.
#[derive(Clone, Debug)]
struct Table {
    name: String,
    pk: String,
    sk: String,
    data: DataTable,
}

impl Table {
    /// The client's table options, with or without a TTL attribute.
    fn options(&self, ttl: Option<Duration>) -> TableOptions {
        let t = TableOptions::new()
            .table_name(&self.name)
            .partition_key(&self.pk)
            .sort_key(&self.sk);
        match ttl {
            Some(d) => t.ttl_key(TTL_ATTR).ttl(d),
            None => t,
        }
    }
}

/// The lock action of a transaction.
#[derive(Clone, Debug)]
enum LockAction {
    /// `Layout::still_held`: a `ConditionCheck`, as `write_if_held` sends.
    StillHeld {
        versions: Vec<String>,
        owner: String,
    },
    /// `Layout::renew` as an `Update` action: a lock write inside a transaction.
    Renew {
        versions: Vec<String>,
        owner: String,
        rvn: String,
        wall: u64,
        ttl: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum DataKind {
    /// `Put` of the key and a payload.
    Put,
    /// `Update`: `SET #p = :p`.
    Set,
    /// `Update`: `SET #p = if_not_exists(#p, :zero) + :one`.
    Increment,
    Delete,
    /// `ConditionCheck` (never unconditional).
    Check,
}

#[derive(Clone, Copy, Debug)]
enum DataCond {
    Always,
    /// `attribute_not_exists(<partition key>)`
    Absent,
    /// `attribute_exists(<partition key>)`
    Present,
    /// `#p = :prev`
    PayloadIs(u64),
}

/// One action on a data item in a transaction.
#[derive(Clone, Debug)]
struct DataAction {
    item: usize,
    kind: DataKind,
    cond: DataCond,
    on_failure: Option<ReturnOnConditionFailure>,
    payload: u64,
}

/// One request of a sequence.
#[derive(Clone, Debug)]
enum Op {
    /// `Layout::create`; `legacy` drops the fencing token, as the TypeScript client writes.
    Create {
        key: usize,
        owner: String,
        rvn: String,
        lease_ms: u64,
        attrs: Item,
        wall: u64,
        ttl: bool,
        legacy: bool,
    },
    /// `Layout::steal`.
    Steal {
        key: usize,
        observed: String,
        owner: String,
        rvn: String,
        lease_ms: u64,
        attrs: Item,
        wall: u64,
        ttl: bool,
    },
    /// `Layout::renew`.
    Renew {
        key: usize,
        versions: Vec<String>,
        owner: String,
        rvn: String,
        wall: u64,
        ttl: bool,
    },
    /// `Layout::release_keeping`.
    ReleaseKeeping {
        key: usize,
        versions: Vec<String>,
        owner: String,
        rvn: String,
        wall: u64,
        ttl: bool,
    },
    /// `Layout::release` (delete).
    Release {
        key: usize,
        versions: Vec<String>,
        owner: String,
    },
    /// `Layout::get`.
    Get { key: usize },
    /// `TransactWriteItems`: the lock action, then actions on distinct data items.
    Guarded {
        key: usize,
        lock: LockAction,
        data: Vec<DataAction>,
    },
}

impl Op {
    fn key(&self) -> usize {
        match self {
            Op::Create { key, .. }
            | Op::Steal { key, .. }
            | Op::Renew { key, .. }
            | Op::ReleaseKeeping { key, .. }
            | Op::Release { key, .. }
            | Op::Get { key }
            | Op::Guarded { key, .. } => *key,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Create { legacy: false, .. } => "create",
            Op::Create { legacy: true, .. } => "create (TypeScript shape)",
            Op::Steal { .. } => "steal",
            Op::Renew { .. } => "renew",
            Op::ReleaseKeeping { .. } => "release keeping the item",
            Op::Release { .. } => "release (delete)",
            Op::Get { .. } => "get",
            Op::Guarded {
                lock: LockAction::StillHeld { .. },
                ..
            } => "still_held transaction",
            Op::Guarded {
                lock: LockAction::Renew { .. },
                ..
            } => "renewal in a transaction",
        }
    }
}

/// What one side answered, normalised for comparison (consumed capacity is ignored; set
/// members are sorted, since DynamoDB sets have no order).
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    /// Success; `returned` is `UPDATED_NEW`'s attributes or the item read.
    Ok { returned: Option<Item> },
    /// `ConditionalCheckFailed` with the `ALL_OLD` item.
    ConditionFailed { item: Option<Item> },
    /// A transaction: accepted, or cancelled with (code, item, message) per action.
    Transaction {
        accepted: bool,
        reasons: Vec<(Option<String>, Option<Item>, Option<String>)>,
    },
    /// Anything else (a failure of the test either way).
    Error(String),
}

fn norm_value(v: &AttributeValue) -> AttributeValue {
    let sorted = |s: &Vec<String>| {
        let mut s = s.clone();
        s.sort();
        s
    };
    match v {
        AttributeValue::M(m) => AttributeValue::M(norm(m)),
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(norm_value).collect()),
        AttributeValue::SS(s) => AttributeValue::SS(sorted(s)),
        AttributeValue::NS(s) => AttributeValue::NS(sorted(s)),
        AttributeValue::BS(s) => AttributeValue::BS(sorted(s)),
        other => other.clone(),
    }
}

fn norm(item: &Item) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), norm_value(v)))
        .collect()
}

fn seen(outcome: &Result<WireOk, Error>) -> Seen {
    match outcome {
        Ok(WireOk::Core(Response::Put(_) | Response::Delete(_))) => Seen::Ok { returned: None },
        Ok(WireOk::Core(Response::Update(u))) => Seen::Ok {
            returned: u.attributes.as_ref().map(norm),
        },
        Ok(WireOk::Core(Response::Get(g))) => Seen::Ok {
            returned: g.item.as_ref().map(norm),
        },
        Ok(WireOk::Transact(_)) => Seen::Transaction {
            accepted: true,
            reasons: Vec::new(),
        },
        Err(Error::ConditionalCheckFailed { item }) => Seen::ConditionFailed {
            item: item.as_ref().map(norm),
        },
        Err(Error::TransactionCanceled { reasons, .. }) => Seen::Transaction {
            accepted: false,
            reasons: reasons
                .iter()
                .map(|r| {
                    let message = r.message.as_deref().map(local_message);
                    (r.code.clone(), r.item.as_ref().map(norm), message)
                })
                .collect(),
        },
        Err(e) => Seen::Error(format!("{e:?}")),
    }
}

/// A message as compared: DynamoDB Local ends a cancellation reason's message with a
/// period the service (and the model) does not write.
fn local_message(m: &str) -> String {
    m.strip_suffix('.').unwrap_or(m).to_owned()
}

/// What two responses must share beyond their decoded outcome: the status and the JSON
/// body with every number replaced by `0`, every item (`Item`, `Attributes`) by `{}`, every
/// list of consumed capacities sorted, and strings kept (`__type`, codes, messages, table
/// names). `message` and `Message` count as one field: DynamoDB spells it both ways, Local
/// capitalises it where the service does not (`ConditionalCheckFailedException`), and the
/// client reads both. A body that is not JSON is kept whole.
fn shape(resp: &HttpResponse) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Number(_) => *v = Value::from(0),
            Value::Array(a) => a.iter_mut().for_each(strip),
            Value::Object(m) => {
                if let Some(Value::String(text)) =
                    m.remove("Message").or_else(|| m.remove("message"))
                {
                    m.insert("message".into(), Value::String(local_message(&text)));
                }
                for (k, v) in m.iter_mut() {
                    if k == "Item" || k == "Attributes" {
                        *v = Value::Object(Default::default());
                    } else {
                        strip(v);
                    }
                }
                if let Some(Value::Array(list)) = m.get_mut("ConsumedCapacity") {
                    list.sort_by_key(|c| c.to_string());
                }
            }
            _ => {}
        }
    }
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(mut v) => {
            strip(&mut v);
            format!("{} {v}", resp.status)
        }
        Err(_) => format!(
            "{} (not JSON) {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        ),
    }
}

/// The crate's request encoding, per operation.
fn encode(op: &WireOp, endpoint: &Endpoint, credentials: &Credentials) -> HttpRequest {
    let now = WallTime::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64,
    );
    match op {
        WireOp::Core(Request::Put(o)) => dynamodb::encode(o, endpoint, credentials, now),
        WireOp::Core(Request::Update(o)) => dynamodb::encode(o, endpoint, credentials, now),
        WireOp::Core(Request::Get(o)) => dynamodb::encode(o, endpoint, credentials, now),
        WireOp::Core(Request::Delete(o)) => dynamodb::encode(o, endpoint, credentials, now),
        WireOp::Transact(o) => dynamodb::encode(o, endpoint, credentials, now),
    }
    .expect("the crate encodes its own requests")
}

/// A single `UpdateItem` as a transaction action.
fn as_action(u: UpdateItem) -> TransactItem {
    TransactItem::Update(TransactTarget {
        table_name: u.table_name,
        key: u.key,
        update_expression: Some(u.update_expression),
        condition_expression: u.condition_expression,
        expression_attribute_names: u.expression_attribute_names,
        expression_attribute_values: u.expression_attribute_values,
        return_values_on_condition_check_failure: u.return_values_on_condition_check_failure,
        ..Default::default()
    })
}

fn payload_of(item: Option<&Item>) -> Option<u64> {
    item.and_then(|i| i.get(PAYLOAD))
        .and_then(AttributeValue::as_u64)
}

fn fence_of(item: Option<&Item>) -> Option<u64> {
    item.and_then(|i| i.get(FENCE))
        .and_then(AttributeValue::as_u64)
}

/// Random additional attributes, of every type a caller may store.
fn random_attrs(rng: &mut Rng) -> Item {
    let mut m = Item::new();
    let n = rng.below(4);
    for i in 0..n {
        let v = match rng.below(11) {
            0 => AttributeValue::s(""),
            1 => AttributeValue::s(format!("v{}", rng.below(100))),
            2 => AttributeValue::n(rng.below(1_000_000)),
            3 => AttributeValue::N("-12.5".into()),
            4 => AttributeValue::Bool(rng.below(2) == 0),
            5 => AttributeValue::Null(true),
            6 => AttributeValue::B("AAEC/w==".into()),
            7 => AttributeValue::SS(vec!["zeta".into(), "alpha".into(), "mu".into()]),
            8 => AttributeValue::NS(vec!["3".into(), "10".into(), "-1".into()]),
            9 => AttributeValue::L(vec![
                AttributeValue::s("x"),
                AttributeValue::n(7),
                AttributeValue::M(Item::new()),
                AttributeValue::L(Vec::new()),
            ]),
            _ => AttributeValue::M(
                [
                    ("inner".to_owned(), AttributeValue::s("ü ✓")),
                    ("deep".to_owned(), AttributeValue::M(Item::new())),
                ]
                .into(),
            ),
        };
        m.insert(format!("attr{i}"), v);
    }
    m
}

/// What the generator knows about one lock key (from the model, which the test keeps in
/// step with DynamoDB Local).
#[derive(Default)]
struct KeyState {
    /// The item as last read back.
    current: Option<Item>,
    /// Every record version stored under this key so far.
    history: Vec<String>,
}

impl KeyState {
    fn rvn(&self) -> Option<&str> {
        self.current
            .as_ref()
            .and_then(|i| i.get(RVN))
            .and_then(AttributeValue::as_s)
    }
    fn owner(&self) -> Option<&str> {
        self.current
            .as_ref()
            .and_then(|i| i.get(OWNER))
            .and_then(AttributeValue::as_s)
    }
}

struct Gen {
    rng: Rng,
    /// Versions that were generated but never stored (a renewal that failed, or one whose
    /// outcome the holder does not know).
    ghosts: Vec<String>,
    wall_base: u64,
    payload: u64,
}

impl Gen {
    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.rng.below(xs.len() as u64) as usize]
    }
    fn fresh_rvn(&mut self) -> String {
        let v = self.rng.uuid();
        self.ghosts.push(v.clone());
        v
    }
    /// A version that is not the current one: stale, or uncertain (never stored).
    fn other_version(&mut self, st: &KeyState) -> String {
        let cur = st.rvn().map(str::to_owned);
        let stale: Vec<&String> = st
            .history
            .iter()
            .filter(|v| Some(v.as_str()) != cur.as_deref())
            .collect();
        if !stale.is_empty() && self.chance(55) {
            return (*self.pick(&stale)).clone();
        }
        let ghosts: Vec<String> = self
            .ghosts
            .iter()
            .filter(|v| Some(v.as_str()) != cur.as_deref())
            .cloned()
            .collect();
        if !ghosts.is_empty() && self.chance(50) {
            return self.pick(&ghosts).clone();
        }
        self.rng.uuid()
    }
    /// The versions a holder names: the current one (or not) anywhere in a list of 1 to 4
    /// distinct versions.
    fn versions(&mut self, st: &KeyState) -> Vec<String> {
        let most = if self.chance(20) { 4 } else { 2 };
        let n = 1 + self.rng.below(most) as usize;
        let with_current = st.rvn().is_some() && self.chance(65);
        let mut out: Vec<String> = Vec::new();
        let others = if with_current { n - 1 } else { n };
        let mut tries = 0;
        while out.len() < others && tries < 20 {
            tries += 1;
            let v = self.other_version(st);
            if !out.contains(&v) {
                out.push(v);
            }
        }
        if with_current {
            let at = self.rng.below(out.len() as u64 + 1) as usize;
            out.insert(at, st.rvn().unwrap().to_owned());
        }
        if out.is_empty() {
            out.push(self.rng.uuid());
        }
        out
    }
    fn owner_for(&mut self, st: &KeyState) -> String {
        match st.owner() {
            Some(o) if self.chance(70) => o.to_owned(),
            _ => (*self.pick(&OWNERS)).to_owned(),
        }
    }
    fn wall(&mut self) -> u64 {
        // Fixed wall times around the sequence's base, in any order (clients' clocks
        // disagree), far enough in the future that no TTL ever expires.
        self.wall_base + self.rng.below(600_000)
    }
    fn lease(&mut self) -> u64 {
        *self.pick(&[0, 1, 500, 20_000, 3_600_000])
    }

    /// One or two actions on distinct data items, mostly with conditions that may go either
    /// way given what the items hold (`data`).
    fn data_actions(&mut self, data: &[Option<Item>]) -> Vec<DataAction> {
        let first = self.rng.below(data.len() as u64) as usize;
        let mut items = vec![first];
        if self.chance(35) {
            items.push((first + 1) % data.len());
        }
        let mut out = Vec::new();
        for item in items {
            let current = payload_of(data[item].as_ref());
            let kind = *self.pick(&[
                DataKind::Put,
                DataKind::Put,
                DataKind::Set,
                DataKind::Increment,
                DataKind::Delete,
                DataKind::Check,
            ]);
            let cond = match self.rng.below(5) {
                0 | 1 => DataCond::Always,
                2 => DataCond::Absent,
                3 => DataCond::Present,
                _ => DataCond::PayloadIs(match current {
                    Some(p) if self.chance(60) => p,
                    _ => self.rng.below(4),
                }),
            };
            let cond = match (kind, cond) {
                (DataKind::Check, DataCond::Always) => DataCond::Present,
                (_, c) => c,
            };
            let on_failure = match self.rng.below(3) {
                0 => None,
                1 => Some(ReturnOnConditionFailure::AllOld),
                _ => Some(ReturnOnConditionFailure::None),
            };
            self.payload += 1;
            out.push(DataAction {
                item,
                kind,
                cond,
                on_failure,
                payload: self.payload,
            });
        }
        out
    }

    fn op(&mut self, keys: &[KeyState], data: &[Option<Item>], ttl_mode: u64) -> Op {
        let key = self.rng.below(keys.len() as u64) as usize;
        let st = &keys[key];
        let ttl = match ttl_mode {
            0 => false,
            1 => true,
            _ => self.chance(50),
        };
        // Mostly requests that make sense for the key's state, some that do not.
        let exists = st.current.is_some();
        // A missing item is mostly created; an existing one sees a create now and then.
        let create = if exists { 6 } else { 55 };
        let roll = if self.chance(create) {
            0
        } else {
            15 + self.rng.below(85)
        };
        match roll {
            0 => Op::Create {
                key,
                owner: (*self.pick(&OWNERS)).to_owned(),
                rvn: self.fresh_rvn(),
                lease_ms: self.lease(),
                attrs: random_attrs(&mut self.rng),
                wall: self.wall(),
                ttl,
                legacy: self.chance(25),
            },
            15..=34 => Op::Steal {
                key,
                observed: match st.rvn() {
                    Some(v) if self.chance(60) => v.to_owned(),
                    _ => self.other_version(st),
                },
                owner: (*self.pick(&OWNERS)).to_owned(),
                rvn: self.fresh_rvn(),
                lease_ms: self.lease(),
                attrs: random_attrs(&mut self.rng),
                wall: self.wall(),
                ttl,
            },
            35..=56 => Op::Renew {
                key,
                versions: self.versions(st),
                owner: self.owner_for(st),
                rvn: self.fresh_rvn(),
                wall: self.wall(),
                ttl,
            },
            57..=67 => Op::ReleaseKeeping {
                key,
                versions: self.versions(st),
                owner: self.owner_for(st),
                rvn: self.fresh_rvn(),
                wall: self.wall(),
                ttl,
            },
            68..=79 => Op::Release {
                key,
                versions: self.versions(st),
                owner: self.owner_for(st),
            },
            80..=84 => Op::Get { key },
            _ => {
                let lock = if self.chance(35) {
                    LockAction::Renew {
                        versions: self.versions(st),
                        owner: self.owner_for(st),
                        rvn: self.fresh_rvn(),
                        wall: self.wall(),
                        ttl,
                    }
                } else {
                    LockAction::StillHeld {
                        versions: self.versions(st),
                        owner: self.owner_for(st),
                    }
                };
                Op::Guarded {
                    key,
                    lock,
                    data: self.data_actions(data),
                }
            }
        }
    }
}

/// Outcome counts per request kind: (succeeded / accepted, condition failed / cancelled).
type Coverage = BTreeMap<&'static str, (u64, u64)>;

/// What the test itself counts of one lock key, to check the model's ledger against.
#[derive(Clone, Default)]
struct Count {
    /// Creates and takeovers that succeeded.
    acquisitions: u64,
    /// The highest fencing token any of them wrote.
    max_fence: Option<u64>,
}

struct Sequence<'a> {
    seed: u64,
    client: &'a LockClient<TokioHost>,
    endpoint: Endpoint,
    credentials: Credentials,
    table: Table,
    ttl: Duration,
    lock_keys: Vec<LockKey>,
    /// The data items' keys.
    data_keys: Vec<Item>,
    model: Db,
    counts: Vec<Count>,
    echo: bool,
    log: Vec<String>,
}

impl Sequence<'_> {
    fn layout(&self, key: usize, ttl: bool) -> Layout {
        Layout::new(
            self.table.options(ttl.then_some(self.ttl)),
            self.lock_keys[key].clone(),
        )
    }

    fn data_get(&self, item: usize) -> GetItem {
        GetItem {
            table_name: self.table.data.name.clone(),
            key: self.data_keys[item].clone(),
            consistent_read: true,
            ..Default::default()
        }
    }

    /// A data action as the transaction action it stands for.
    fn data_action(&self, a: &DataAction) -> TransactItem {
        let mut names = Names::new();
        let mut values = Item::new();
        let pk = &self.table.data.pk;
        let condition = match a.cond {
            DataCond::Always => None,
            DataCond::Absent | DataCond::Present => {
                names.insert("#k".into(), pk.clone());
                Some(if matches!(a.cond, DataCond::Absent) {
                    "attribute_not_exists(#k)"
                } else {
                    "attribute_exists(#k)"
                })
            }
            DataCond::PayloadIs(p) => {
                names.insert("#p".into(), PAYLOAD.into());
                values.insert(":prev".into(), AttributeValue::n(p));
                Some("#p = :prev")
            }
        };
        let mut target = TransactTarget {
            table_name: self.table.data.name.clone(),
            key: self.data_keys[a.item].clone(),
            condition_expression: condition.map(str::to_owned),
            return_values_on_condition_check_failure: a.on_failure,
            ..Default::default()
        };
        let set = |names: &mut Names, values: &mut Item, expr: &str| {
            names.insert("#p".into(), PAYLOAD.into());
            match expr {
                "set" => values.insert(":p".into(), AttributeValue::n(a.payload)),
                _ => {
                    values.insert(":zero".into(), AttributeValue::n(0));
                    values.insert(":one".into(), AttributeValue::n(1))
                }
            };
        };
        let item = match a.kind {
            DataKind::Put => {
                target.item = std::mem::take(&mut target.key);
                target
                    .item
                    .insert(PAYLOAD.into(), AttributeValue::n(a.payload));
                TransactItem::Put
            }
            DataKind::Set => {
                set(&mut names, &mut values, "set");
                target.update_expression = Some("SET #p = :p".into());
                TransactItem::Update
            }
            DataKind::Increment => {
                set(&mut names, &mut values, "increment");
                target.update_expression = Some("SET #p = if_not_exists(#p, :zero) + :one".into());
                TransactItem::Update
            }
            DataKind::Delete => TransactItem::Delete,
            DataKind::Check => TransactItem::ConditionCheck,
        };
        target.expression_attribute_names = names;
        target.expression_attribute_values = values;
        item(target)
    }

    fn request(&self, op: &Op) -> WireOp {
        let core = |r: Request| WireOp::Core(r);
        match op.clone() {
            Op::Create {
                key,
                owner,
                rvn,
                lease_ms,
                attrs,
                wall,
                ttl,
                legacy,
            } => {
                let mut put = self.layout(key, ttl).create(
                    &owner,
                    &rvn,
                    Duration::from_millis(lease_ms),
                    &attrs,
                    WallTime::from_millis(wall),
                );
                if legacy {
                    put.item.remove(FENCE);
                }
                core(Request::Put(put))
            }
            Op::Steal {
                key,
                observed,
                owner,
                rvn,
                lease_ms,
                attrs,
                wall,
                ttl,
            } => core(Request::Update(self.layout(key, ttl).steal(
                &observed,
                &owner,
                &rvn,
                Duration::from_millis(lease_ms),
                &attrs,
                WallTime::from_millis(wall),
            ))),
            Op::Renew {
                key,
                versions,
                owner,
                rvn,
                wall,
                ttl,
            } => core(Request::Update(self.layout(key, ttl).renew(
                &versions,
                &owner,
                &rvn,
                WallTime::from_millis(wall),
            ))),
            Op::ReleaseKeeping {
                key,
                versions,
                owner,
                rvn,
                wall,
                ttl,
            } => core(Request::Update(self.layout(key, ttl).release_keeping(
                &versions,
                &owner,
                &rvn,
                WallTime::from_millis(wall),
            ))),
            Op::Release {
                key,
                versions,
                owner,
            } => core(Request::Delete(
                self.layout(key, false).release(&versions, &owner),
            )),
            Op::Get { key } => core(Request::Get(self.layout(key, false).get())),
            Op::Guarded { key, lock, data } => {
                let first = match lock {
                    LockAction::StillHeld { versions, owner } => {
                        self.layout(key, false).still_held(&versions, &owner)
                    }
                    LockAction::Renew {
                        versions,
                        owner,
                        rvn,
                        wall,
                        ttl,
                    } => as_action(self.layout(key, ttl).renew(
                        &versions,
                        &owner,
                        &rvn,
                        WallTime::from_millis(wall),
                    )),
                };
                let mut transact_items = vec![first];
                transact_items.extend(data.iter().map(|a| self.data_action(a)));
                // As `write_if_held` sends it.
                WireOp::Transact(TransactWriteItems {
                    transact_items,
                    client_request_token: None,
                    return_consumed_capacity: Some("TOTAL"),
                })
            }
        }
    }

    fn fail(&self, step: usize, op: &Op, what: String) -> String {
        let recent = self.log.len().saturating_sub(40);
        format!(
            "seed {seed}, step {step} ({kind}): {what}\n  op: {op:?}\n  steps so far:\n    {log}\n  \
             replay with MVL_SEED={seed}",
            seed = self.seed,
            kind = op.kind(),
            log = self.log[recent..].join("\n    "),
        )
    }

    /// Sends `op`, as the crate encodes it, to DynamoDB Local and through the wire to the
    /// model; checks the wire both ways and compares the answers (decoded and in shape).
    /// The model's refusal (a request it does not understand, or one DynamoDB would refuse)
    /// is a failure.
    async fn exchange(&mut self, op: &WireOp) -> Result<(Seen, WireApplied), String> {
        let req = encode(op, &self.endpoint, &self.credentials);
        let decoded = decode_request(&req)
            .map_err(|e| format!("the wire decoder refused the crate's request: {e}"))?;
        if decoded != *op {
            return Err(format!(
                "the wire decoder changed the request\n  sent:    {op:?}\n  decoded: {decoded:?}"
            ));
        }
        let applied = self
            .model
            .apply_wire(&decoded)
            .map_err(|e| format!("model refused the request: {e}"))?;
        let model_resp = encode_response(&decoded, &applied.outcome)
            .map_err(|e| format!("the model's answer has no wire form: {e}"))?;
        let back = decode_response(&decoded, &model_resp);
        if back != applied.outcome {
            return Err(format!(
                "the model's answer does not survive the wire\n  answer:  {:?}\n  decoded: {back:?}",
                applied.outcome
            ));
        }
        let local_resp = self
            .client
            .host()
            .send(req)
            .await
            .map_err(|e| format!("DynamoDB Local did not answer: {e}"))?;
        let local = decode_response(&decoded, &local_resp);
        let (m, l) = (seen(&applied.outcome), seen(&local));
        if m != l {
            return Err(format!("outcomes differ\n  model: {m:?}\n  local: {l:?}"));
        }
        let (ms, ls) = (shape(&model_resp), shape(&local_resp));
        if ms != ls {
            return Err(format!(
                "response bodies differ in shape\n  model: {ms}\n  local: {ls}"
            ));
        }
        Ok((m, applied))
    }

    /// Reads `get` back from both sides and compares.
    async fn read_back(&mut self, get: GetItem) -> Result<Option<Item>, String> {
        let (seen, applied) = self
            .exchange(&WireOp::Core(Request::Get(get)))
            .await
            .map_err(|e| format!("reading back: {e}"))?;
        if applied.effects != [Effect::Nothing] {
            return Err(format!("a read had effects {:?}", applied.effects));
        }
        match seen {
            Seen::Ok { returned } => Ok(returned),
            other => Err(format!("read back failed on both sides: {other:?}")),
        }
    }

    /// Runs one step; returns whether it succeeded and what the model's ledger saw.
    async fn step(
        &mut self,
        step: usize,
        op: &Op,
        cov: &mut Coverage,
    ) -> Result<(bool, WireApplied), String> {
        let (m, applied) = self.exchange(&self.request(op)).await?;
        if self.echo {
            println!("seed {} step {step}: {op:?}\n  -> {m:?}", self.seed);
        }
        let ok = match &m {
            Seen::Ok { .. } => true,
            Seen::Transaction { accepted, .. } => *accepted,
            Seen::ConditionFailed { .. } => false,
            Seen::Error(e) => return Err(format!("both sides failed the request: {e}")),
        };
        let c = cov.entry(op.kind()).or_default();
        if ok {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
        // Which actions cancelled a transaction: the lock's, a data action's, several.
        if let Seen::Transaction { reasons, .. } = &m {
            let failed: Vec<usize> = (0..reasons.len())
                .filter(|&i| reasons[i].0.as_deref() == Some("ConditionalCheckFailed"))
                .collect();
            for (kind, hit) in [
                (
                    "transaction cancelled by a data action",
                    failed.iter().any(|&i| i > 0),
                ),
                ("transaction cancelled by several actions", failed.len() > 1),
            ] {
                cov.entry(kind).or_default().1 += u64::from(hit);
            }
        }
        self.log.push(format!(
            "{step}: {} on key {} -> {}",
            op.kind(),
            op.key(),
            if ok { "ok" } else { "refused" }
        ));
        Ok((ok, applied))
    }

    /// Checks what the model's ledger saw of one step against the test's own count:
    /// `before` and `after` are lock `key`'s item around it (as both sides read it back).
    fn check_ledger(
        &mut self,
        op: &Op,
        ok: bool,
        applied: &WireApplied,
        before: Option<&Item>,
        after: Option<&Item>,
    ) -> Result<(), String> {
        let index = op.key();
        let key = self.lock_keys[index].clone();
        let n = self.counts[index].acquisitions;
        let acquired = |steal: bool| Effect::Acquired {
            key: key.clone(),
            acq: n + 1,
            steal,
            prev_owner: if steal {
                before
                    .and_then(|i| i.get(OWNER))
                    .and_then(AttributeValue::as_s)
                    .map(str::to_owned)
            } else {
                None
            },
        };
        let renewed = Effect::Renewed {
            key: key.clone(),
            acq: n,
        };
        let expected = match (op, ok) {
            (Op::Guarded { .. }, false) => Vec::new(),
            (Op::Get { .. }, _) | (_, false) => vec![Effect::Nothing],
            (Op::Create { .. }, true) => vec![acquired(false)],
            (Op::Steal { .. }, true) => vec![acquired(true)],
            (Op::Renew { .. } | Op::ReleaseKeeping { .. }, true) => vec![renewed],
            (Op::Release { .. }, true) => vec![Effect::Deleted {
                key: key.clone(),
                acq: n,
            }],
            (Op::Guarded { lock, data, .. }, true) => {
                let mut e = vec![match lock {
                    LockAction::StillHeld { .. } => Effect::Nothing,
                    LockAction::Renew { .. } => renewed,
                }];
                e.extend(data.iter().map(|_| Effect::Nothing));
                e
            }
        };
        if applied.effects != expected {
            return Err(format!(
                "ledger effects {:?}, expected {expected:?}",
                applied.effects
            ));
        }
        if !applied.fence_errors.is_empty() {
            return Err(format!("fence errors: {:?}", applied.fence_errors));
        }
        let acquisition = ok && matches!(op, Op::Create { .. } | Op::Steal { .. });
        let count = &mut self.counts[index];
        let mut regressions = Vec::new();
        if acquisition {
            count.acquisitions += 1;
            let fence = fence_of(after);
            if let (Op::Create { .. }, Some(f), Some(m)) = (op, fence, count.max_fence)
                && f <= m
            {
                regressions.push(Regression {
                    key: key.clone(),
                    new_token: f,
                    max_token: m,
                });
            }
            if let Some(f) = fence {
                count.max_fence = Some(count.max_fence.map_or(f, |m| m.max(f)));
            }
        }
        if applied.regressions != regressions {
            return Err(format!(
                "regressions {:?}, expected {regressions:?}",
                applied.regressions
            ));
        }
        for (k, c) in self.lock_keys.iter().zip(&self.counts) {
            if self.model.acquisitions(k) != c.acquisitions {
                return Err(format!(
                    "the ledger counts {} acquisitions of {k}, the test {}",
                    self.model.acquisitions(k),
                    c.acquisitions
                ));
            }
            if self.model.max_fence(k) != c.max_fence {
                return Err(format!(
                    "the ledger's highest token of {k} is {:?}, the test's {:?}",
                    self.model.max_fence(k),
                    c.max_fence
                ));
            }
        }
        if let Some(item) = after {
            let n = self.counts[index].acquisitions;
            let rvn = item.get(RVN).and_then(AttributeValue::as_s).unwrap_or("");
            if self.model.acq_of(rvn) != Some((&key, n)) {
                return Err(format!(
                    "the current version {rvn} belongs to {:?} in the ledger, not ({key}, {n})",
                    self.model.acq_of(rvn)
                ));
            }
            if self.model.fence_of_acq(&key, n) != fence_of(after) {
                return Err(format!(
                    "the ledger says acquisition {n} of {key} wrote token {:?}, the item holds {:?}",
                    self.model.fence_of_acq(&key, n),
                    fence_of(after)
                ));
            }
        }
        Ok(())
    }

    async fn run(mut self, ops: usize) -> Result<Coverage, String> {
        let mut cov = Coverage::new();
        let mut g = Gen {
            rng: Rng::seeded(self.seed),
            ghosts: Vec::new(),
            wall_base: 2_000_000_000_000 + Rng::seeded(!self.seed).below(1_000_000_000),
            payload: 0,
        };
        let ttl_mode = g.rng.below(3);
        let mut keys: Vec<KeyState> = (0..self.lock_keys.len())
            .map(|_| KeyState::default())
            .collect();
        let mut data: Vec<Option<Item>> = vec![None; self.data_keys.len()];
        for step in 0..ops {
            let op = g.op(&keys, &data, ttl_mode);
            let key = op.key();
            let res = async {
                let (ok, applied) = self.step(step, &op, &mut cov).await?;
                let item = self.read_back(self.layout(key, false).get()).await?;
                self.check_ledger(&op, ok, &applied, keys[key].current.as_ref(), item.as_ref())?;
                if matches!(op, Op::Guarded { .. }) {
                    for (i, d) in data.iter_mut().enumerate() {
                        *d = self.read_back(self.data_get(i)).await?;
                    }
                }
                Ok::<_, String>(item)
            }
            .await;
            match res {
                Ok(item) => {
                    let st = &mut keys[key];
                    st.current = item;
                    if let Some(v) = st.rvn().map(str::to_owned)
                        && !st.history.contains(&v)
                    {
                        st.history.push(v);
                    }
                }
                Err(e) => return Err(self.fail(step, &op, e)),
            }
        }
        // Every key at the end, the untouched ones included.
        for key in 0..self.lock_keys.len() {
            let get = self.layout(key, false).get();
            self.read_back(get)
                .await
                .map_err(|e| format!("seed {}: final read of key {key}: {e}", self.seed))?;
        }
        Ok(cov)
    }
}

async fn create_data_table(c: &LockClient<TokioHost>, data: &DataTable) {
    let mut key_schema = vec![KeySchemaElement {
        attribute_name: data.pk.clone(),
        key_type: "HASH".into(),
    }];
    let mut attribute_definitions = vec![AttributeDefinition {
        attribute_name: data.pk.clone(),
        attribute_type: "S".into(),
    }];
    if let Some(sk) = &data.sk {
        key_schema.push(KeySchemaElement {
            attribute_name: sk.clone(),
            key_type: "RANGE".into(),
        });
        attribute_definitions.push(AttributeDefinition {
            attribute_name: sk.clone(),
            attribute_type: "S".into(),
        });
    }
    c.call(&CreateTable {
        table_name: data.name.clone(),
        key_schema,
        attribute_definitions,
        billing_mode: "PAY_PER_REQUEST".into(),
        provisioned_throughput: None,
    })
    .await
    .expect("create the data table");
}

/// Two lock tables: default key names without TTL, custom key names with TTL enabled; each
/// with a data table (a partition key only; both keys).
async fn create_tables() -> Vec<(Table, LockClient<TokioHost>)> {
    let (a, ca) = common::fresh("model-vs-local").await;
    let (b, cb) = common::fresh_with(
        TableOptions::new()
            .table_name(common::unique_table("model-vs-local-custom"))
            .partition_key("pk")
            .sort_key("sk")
            .ttl_key(TTL_ATTR),
    )
    .await;
    let datas = [
        DataTable {
            name: common::unique_table("model-vs-local-data"),
            pk: "dataId".into(),
            sk: None,
        },
        DataTable {
            name: common::unique_table("model-vs-local-data2"),
            pk: "id".into(),
            sk: Some("part".into()),
        },
    ];
    create_data_table(&ca, &datas[0]).await;
    create_data_table(&ca, &datas[1]).await;
    let table = |t: &TableOptions, data: &DataTable| Table {
        name: t.name().to_owned(),
        pk: t.partition_key_name().to_owned(),
        sk: t.sort_key_name().to_owned(),
        data: data.clone(),
    };
    vec![(table(&a, &datas[0]), ca), (table(&b, &datas[1]), cb)]
}

/// A transaction with two actions on one item: DynamoDB refuses it (`ValidationException`),
/// the model too. (DynamoDB Local evaluates the conditions first: a failed one cancels the
/// transaction before the duplicate is noticed. The actions here have none.)
async fn two_actions_on_one_item(table: &Table, client: &LockClient<TokioHost>) {
    let mut item: Item = [(table.data.pk.clone(), AttributeValue::s("twice"))].into();
    if let Some(sk) = &table.data.sk {
        item.insert(sk.clone(), AttributeValue::s("twice"));
    }
    let put = TransactItem::Put(TransactTarget {
        table_name: table.data.name.clone(),
        item: item.clone(),
        ..Default::default()
    });
    let op = TransactWriteItems {
        transact_items: vec![
            put.clone(),
            TransactItem::Delete(TransactTarget {
                table_name: table.data.name.clone(),
                key: item,
                ..Default::default()
            }),
        ],
        client_request_token: None,
        return_consumed_capacity: Some("TOTAL"),
    };
    let mut model = Db::new(&table.options(None));
    model.add_table(&table.data.name, &table.data.pk, table.data.sk.as_deref());
    let refused = model
        .apply_transact(&op)
        .expect_err("the model accepted two actions on one item");
    assert!(refused.contains("ValidationException"), "{refused}");
    match client.call(&op).await {
        Err(Error::Validation { message }) => {
            assert!(message.contains("one item"), "{message}")
        }
        other => panic!("DynamoDB Local answered {other:?} to two actions on one item"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_agrees_with_dynamodb_local() {
    let started = std::time::Instant::now();
    let only = env_u64("MVL_SEED");
    let start = env_u64("MVL_START").unwrap_or(0);
    let count = env_u64("MVL_SEQUENCES").unwrap_or(64);
    let ops = env_u64("MVL_OPS").unwrap_or(40) as usize;
    let seeds: Vec<u64> = match only {
        Some(s) => vec![s],
        None => (start..start + count).collect(),
    };
    let clients = Arc::new(create_tables().await);
    two_actions_on_one_item(&clients[0].0, &clients[0].1).await;
    let endpoint = Endpoint::custom(&common::endpoint(), "us-east-1", false)
        .expect("DynamoDB Local's endpoint");

    // Sequences use disjoint keys, so they run concurrently; each is deterministic.
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for seed in seeds.clone() {
        let clients = clients.clone();
        let permits = permits.clone();
        let endpoint = endpoint.clone();
        let echo = only.is_some();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            let (table, client) = &clients[(seed % 2) as usize];
            let mut rng = Rng::seeded(seed ^ 0x5eed);
            let ttl = Duration::from_secs(*[60, 3600, 86_400].get(rng.below(3) as usize).unwrap());
            let lock_keys = vec![
                LockKey {
                    group: "g".into(),
                    id: format!("s{seed}-a"),
                },
                LockKey {
                    group: "g".into(),
                    id: format!("s{seed}-b"),
                },
                // Same id, another group: the sort key is part of the key.
                LockKey {
                    group: "grüppe ✓".into(),
                    id: format!("s{seed}-a"),
                },
            ];
            let data = &table.data;
            let data_keys = (0..DATA_ITEMS)
                .map(|i| {
                    let mut k: Item =
                        [(data.pk.clone(), AttributeValue::s(format!("s{seed}-d{i}")))].into();
                    if let Some(sk) = &data.sk {
                        k.insert(sk.clone(), AttributeValue::s("part ✓"));
                    }
                    k
                })
                .collect();
            let options = table.options(Some(ttl));
            let mut model = Db::new(&options);
            model.add_table(&data.name, &data.pk, data.sk.as_deref());
            let sequence = Sequence {
                seed,
                client,
                endpoint,
                credentials: Credentials::new("local", "local", None),
                table: table.clone(),
                ttl,
                counts: vec![Count::default(); lock_keys.len()],
                lock_keys,
                data_keys,
                model,
                echo,
                log: Vec::new(),
            };
            sequence.run(ops).await
        }));
    }
    let mut failures = Vec::new();
    let mut coverage = Coverage::new();
    for (seed, t) in seeds.iter().zip(tasks) {
        match t.await {
            Ok(Ok(cov)) => {
                for (k, (a, b)) in cov {
                    let c = coverage.entry(k).or_default();
                    c.0 += a;
                    c.1 += b;
                }
            }
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("seed {seed}: task panicked: {e}")),
        }
    }
    let steps: u64 = coverage
        .iter()
        .filter(|(k, _)| !k.starts_with("transaction cancelled"))
        .map(|(_, (a, b))| a + b)
        .sum();
    println!(
        "model vs DynamoDB Local: {} sequences, {steps} agreeing steps, {:.1}s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    for (k, (ok, refused)) in &coverage {
        println!("  {k:<40} {ok:>5} ok {refused:>5} refused");
    }
    assert!(
        failures.is_empty(),
        "{} of {} sequences disagree:\n\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n\n")
    );
    // The generator must reach both outcomes of every kind of write, or the comparison is
    // blind to half of the model.
    if only.is_none() && count >= 20 {
        for kind in [
            "create",
            "create (TypeScript shape)",
            "steal",
            "renew",
            "release keeping the item",
            "release (delete)",
            "still_held transaction",
            "renewal in a transaction",
        ] {
            let (ok, refused) = coverage.get(kind).copied().unwrap_or_default();
            assert!(
                ok > 0 && refused > 0,
                "{kind}: {ok} successes and {refused} refusals: the generator must reach both"
            );
        }
        for kind in [
            "transaction cancelled by a data action",
            "transaction cancelled by several actions",
        ] {
            let refused = coverage.get(kind).map_or(0, |c| c.1);
            assert!(refused > 0, "no {kind}");
        }
    }
}
