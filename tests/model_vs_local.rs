//! Differential test: the simulation's DynamoDB model (`tests/sim/db.rs`, `tests/sim/expr.rs`)
//! against DynamoDB Local, so the model cannot drift from the service it stands for.
//!
//! Seeded random sequences of the requests the lock core really sends (built by
//! `ddb_lock::core::Layout`): creates (also TypeScript-shaped ones without a fencing token),
//! takeovers conditioned on the current, a stale or a never-stored version, renewals and
//! releases (deleting or keeping the item) naming lists of current, stale and uncertain
//! versions with the right or a wrong owner, consistent reads, and `write_if_held`'s
//! transaction (`Layout::still_held` + a `Put`), with and without a TTL attribute, with
//! assorted additional attributes, at fixed wall times, on a few keys of two tables (default
//! and custom key names). Every request goes to both, and the test asserts the same answer:
//! success or `ConditionalCheckFailed`, the item returned on a failed condition (`ALL_OLD`),
//! the attributes of `UPDATED_NEW` (the fencing token), a transaction's acceptance and its
//! cancellation reasons; after every step the touched items are read back (consistent
//! `GetItem`) from both and compared whole.
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
}

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ddb_lock::core::{Layout, LockKey, Outcome, Request, Response, Rng};
use ddb_lock::dynamodb::transact_write_items::{TransactItem, TransactTarget};
use ddb_lock::dynamodb::{AttributeValue, Error, GetItem, Item, TransactWriteItems};
use ddb_lock::rt::TokioHost;
use ddb_lock::time::WallTime;
use ddb_lock::{LockClient, TableOptions};

use sim::db::{Db, check_condition};

const OWNERS: [&str; 3] = ["alice", "bob", "carol"];
const TTL_ATTR: &str = "expiresAt";
/// The fencing token attribute (`options::attr::FENCE`), absent from TypeScript-written items.
const FENCE: &str = "fencingToken";
const OWNER: &str = "ownerName";
const RVN: &str = "recordVersionNumber";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// One table both sides use: its name and key attribute names.
#[derive(Clone, Debug)]
struct Table {
    name: String,
    pk: String,
    sk: String,
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
    /// `TransactWriteItems`: `Layout::still_held` + an unconditional `Put` of a data item.
    Guarded {
        key: usize,
        versions: Vec<String>,
        owner: String,
        payload: u64,
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
            Op::Guarded { .. } => "still_held transaction",
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
    /// A transaction: accepted, or cancelled with (code, item) per action.
    Transaction {
        accepted: bool,
        reasons: Vec<(Option<String>, Option<Item>)>,
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

fn seen(outcome: Outcome) -> Seen {
    match outcome {
        Ok(Response::Put(_) | Response::Delete(_)) => Seen::Ok { returned: None },
        Ok(Response::Update(u)) => Seen::Ok {
            returned: u.attributes.as_ref().map(norm),
        },
        Ok(Response::Get(g)) => Seen::Ok {
            returned: g.item.as_ref().map(norm),
        },
        Err(Error::ConditionalCheckFailed { item }) => Seen::ConditionFailed {
            item: item.as_ref().map(norm),
        },
        Err(e) => Seen::Error(format!("{e:?}")),
    }
}

/// Sends one core request to DynamoDB Local.
async fn send(c: &LockClient<TokioHost>, r: &Request) -> Outcome {
    match r {
        Request::Put(op) => c.call(op).await.map(Response::Put),
        Request::Update(op) => c.call(op).await.map(Response::Update),
        Request::Get(op) => c.call(op).await.map(Response::Get),
        Request::Delete(op) => c.call(op).await.map(Response::Delete),
    }
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

    fn op(&mut self, keys: &[KeyState], ttl_mode: u64) -> Op {
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
            80..=86 => Op::Get { key },
            _ => {
                self.payload += 1;
                Op::Guarded {
                    key,
                    versions: self.versions(st),
                    owner: self.owner_for(st),
                    payload: self.payload,
                }
            }
        }
    }
}

/// Outcome counts per request kind: (succeeded / accepted, condition failed / cancelled).
type Coverage = BTreeMap<&'static str, (u64, u64)>;

struct Sequence<'a> {
    seed: u64,
    client: &'a LockClient<TokioHost>,
    table: Table,
    ttl: Duration,
    lock_keys: Vec<LockKey>,
    data_key: (String, String),
    model: Db,
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

    fn data_item(&self, payload: u64) -> Item {
        [
            (self.table.pk.clone(), AttributeValue::s(&self.data_key.0)),
            (self.table.sk.clone(), AttributeValue::s(&self.data_key.1)),
            ("payload".to_owned(), AttributeValue::n(payload)),
        ]
        .into()
    }

    fn data_get(&self) -> GetItem {
        GetItem {
            table_name: self.table.name.clone(),
            key: [
                (self.table.pk.clone(), AttributeValue::s(&self.data_key.0)),
                (self.table.sk.clone(), AttributeValue::s(&self.data_key.1)),
            ]
            .into(),
            consistent_read: true,
            ..Default::default()
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

    /// Applies `r` to the model; its refusal (a request the model does not understand, or
    /// one DynamoDB would refuse) is a failure.
    fn model_apply(&mut self, r: &Request) -> Result<Seen, String> {
        self.model.apply(r).map(|a| seen(a.outcome))
    }

    /// Reads `get` back from both sides and compares.
    async fn read_back(&mut self, get: GetItem) -> Result<Option<Item>, String> {
        let r = Request::Get(get);
        let m = self
            .model_apply(&r)
            .map_err(|e| format!("model refused its read: {e}"))?;
        let l = seen(send(self.client, &r).await);
        if m != l {
            return Err(format!(
                "items differ after the step\n  model: {m:?}\n  local: {l:?}"
            ));
        }
        match m {
            Seen::Ok { returned } => Ok(returned),
            other => Err(format!("read back failed on both sides: {other:?}")),
        }
    }

    fn request(&self, op: &Op) -> Request {
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
                Request::Put(put)
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
            } => Request::Update(self.layout(key, ttl).steal(
                &observed,
                &owner,
                &rvn,
                Duration::from_millis(lease_ms),
                &attrs,
                WallTime::from_millis(wall),
            )),
            Op::Renew {
                key,
                versions,
                owner,
                rvn,
                wall,
                ttl,
            } => Request::Update(self.layout(key, ttl).renew(
                &versions,
                &owner,
                &rvn,
                WallTime::from_millis(wall),
            )),
            Op::ReleaseKeeping {
                key,
                versions,
                owner,
                rvn,
                wall,
                ttl,
            } => Request::Update(self.layout(key, ttl).release_keeping(
                &versions,
                &owner,
                &rvn,
                WallTime::from_millis(wall),
            )),
            Op::Release {
                key,
                versions,
                owner,
            } => Request::Delete(self.layout(key, false).release(&versions, &owner)),
            Op::Get { key } => Request::Get(self.layout(key, false).get()),
            Op::Guarded { .. } => unreachable!("transactions are not core requests"),
        }
    }

    /// `write_if_held`'s transaction on both sides.
    async fn guarded(
        &mut self,
        key: usize,
        versions: &[String],
        owner: &str,
        payload: u64,
    ) -> Result<(Seen, Seen), String> {
        let layout = self.layout(key, false);
        let check = layout.still_held(versions, owner);
        let TransactItem::ConditionCheck(target) = &check else {
            return Err(format!("still_held is not a ConditionCheck: {check:?}"));
        };
        if target.table_name != self.table.name || target.key != layout.key_item() {
            return Err(format!("still_held checks another item: {target:?}"));
        }
        let data = self.data_item(payload);

        // The model: the condition on the lock item as it is now, then the put.
        let current = match self.model_apply(&Request::Get(layout.get()))? {
            Seen::Ok { returned } => returned,
            other => return Err(format!("model read failed: {other:?}")),
        };
        let accepted = check_condition(
            target.condition_expression.as_deref().unwrap_or(""),
            &target.expression_attribute_names,
            &target.expression_attribute_values,
            current.as_ref(),
        )
        .map_err(|e| format!("model refused the condition check: {e}"))?;
        let model = if accepted {
            self.model.force(self.data_key.clone(), Some(data.clone()));
            Seen::Transaction {
                accepted: true,
                reasons: Vec::new(),
            }
        } else {
            // DynamoDB's cancellation reasons: the failed check with ALL_OLD, then "None".
            Seen::Transaction {
                accepted: false,
                reasons: vec![
                    (Some("ConditionalCheckFailed".to_owned()), current),
                    (Some("None".to_owned()), None),
                ],
            }
        };

        let op = TransactWriteItems {
            transact_items: vec![
                check.clone(),
                TransactItem::Put(TransactTarget {
                    table_name: self.table.name.clone(),
                    item: data,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        };
        let local = match self.client.call(&op).await {
            Ok(_) => Seen::Transaction {
                accepted: true,
                reasons: Vec::new(),
            },
            Err(Error::TransactionCanceled { reasons, .. }) => Seen::Transaction {
                accepted: false,
                reasons: reasons
                    .into_iter()
                    .map(|r| (r.code, r.item.as_ref().map(norm)))
                    .collect(),
            },
            Err(e) => Seen::Error(format!("{e:?}")),
        };
        Ok((model, local))
    }

    async fn step(&mut self, step: usize, op: &Op, cov: &mut Coverage) -> Result<(), String> {
        let (m, l) = match op {
            Op::Guarded {
                key,
                versions,
                owner,
                payload,
            } => self.guarded(*key, versions, owner, *payload).await?,
            _ => {
                let r = self.request(op);
                let m = self
                    .model_apply(&r)
                    .map_err(|e| format!("model refused the request: {e}"))?;
                (m, seen(send(self.client, &r).await))
            }
        };
        if self.echo {
            println!("seed {} step {step}: {op:?}\n  -> {m:?}", self.seed);
        }
        if m != l {
            return Err(format!("outcomes differ\n  model: {m:?}\n  local: {l:?}"));
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
        self.log.push(format!(
            "{step}: {} on key {} -> {}",
            op.kind(),
            op.key(),
            if ok { "ok" } else { "refused" }
        ));
        if matches!(op, Op::Guarded { .. }) {
            let get = self.data_get();
            self.read_back(get).await?;
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
        for step in 0..ops {
            let op = g.op(&keys, ttl_mode);
            let key = op.key();
            let res = match self.step(step, &op, &mut cov).await {
                Ok(()) => self.read_back(self.layout(key, false).get()).await,
                Err(e) => Err(e),
            };
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

/// Two tables: default key names without TTL, custom key names with TTL enabled.
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
    let table = |t: &TableOptions| Table {
        name: t.name().to_owned(),
        pk: t.partition_key_name().to_owned(),
        sk: t.sort_key_name().to_owned(),
    };
    vec![(table(&a), ca), (table(&b), cb)]
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

    // Sequences use disjoint keys, so they run concurrently; each is deterministic.
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for seed in seeds.clone() {
        let clients = clients.clone();
        let permits = permits.clone();
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
            let options = table.options(Some(ttl));
            let sequence = Sequence {
                seed,
                client,
                table: table.clone(),
                ttl,
                lock_keys,
                data_key: (format!("s{seed}-data"), "data".into()),
                model: Db::new(&options),
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
    let steps: u64 = coverage.values().map(|(a, b)| a + b).sum();
    println!(
        "model vs DynamoDB Local: {} sequences, {steps} agreeing steps, {:.1}s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    for (k, (ok, refused)) in &coverage {
        println!("  {k:<28} {ok:>5} ok {refused:>5} refused");
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
        ] {
            let (ok, refused) = coverage.get(kind).copied().unwrap_or_default();
            assert!(
                ok > 0 && refused > 0,
                "{kind}: {ok} successes and {refused} refusals: the generator must reach both"
            );
        }
    }
}
