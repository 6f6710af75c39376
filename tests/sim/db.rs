//! A simulated DynamoDB: the lock table and plain data tables, with per-item linearizable
//! conditional writes (requests are applied one at a time, at the instant they arrive),
//! consistent reads, `ALL_OLD` on a failed condition, `UPDATED_NEW` / `ALL_NEW`, optional TTL
//! deletion of lock items, and `TransactWriteItems` (all actions or none). It implements
//! exactly the requests the lock core and `Lock::write_if_held` send, plus plain
//! conditional and unconditional `PutItem` / `UpdateItem` / `DeleteItem` / `GetItem` on the
//! data tables (the simulation's protected resource), and rejects anything else (a request
//! DynamoDB would refuse, or an expression or request shape this model does not know) with
//! an `Err` that fails the run. Expressions are those of `expr.rs`; keys are strings.
//!
//! It also keeps an omniscient ledger the real service does not, **per lock key** (group and
//! id; the simulation may run several locks in one table):
//! * every record version it ever stored maps to the key and the *acquisition* (a create
//!   or takeover, numbered per key from 1 in the order DynamoDB applied them) it belongs to;
//!   renewals and releases that keep the item inherit their acquisition's number;
//! * the fencing token (`fencingToken`) of every write is checked: within one item lifetime a
//!   takeover must add exactly one, other writes must leave it alone; a create after a
//!   deletion restarts from the creator's clock and is reported for the caller to judge
//!   against the documented clock condition.
//!
//! Writes to lock items follow the same rules whether sent alone or inside a transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ddb_lock::TableOptions;
use ddb_lock::core::{LockKey, Outcome, Request, Response};
use ddb_lock::dynamodb::transact_write_items::{
    TransactItem, TransactTarget, TransactWriteItemsOutput,
};
use ddb_lock::dynamodb::{
    AttributeValue, CancellationReason, ConsumedCapacity, DeleteItem, Error, GetItem, Item, Names,
    PutItem, ReturnOnConditionFailure, TransactWriteItems, UpdateItem,
    delete_item::DeleteItemOutput, get_item::GetItemOutput, put_item::PutItemOutput,
    update_item::UpdateItemOutput,
};

use super::expr::{Assign, Operand, SetTerm, Term, parse_condition, parse_update, placeholders};
use super::wire::{CONDITION_FAILED_MESSAGE, WireOk, WireOp};

pub const OWNER: &str = "ownerName";
pub const RVN: &str = "recordVersionNumber";
/// The fencing token attribute the core writes (`options::attr::FENCE`).
pub const FENCE: &str = "fencingToken";

/// What a request (or one action of a transaction) did to a lock item, as the ledger sees
/// it. Writes to data tables are not the ledger's business: they report `Nothing`.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A read, a failed condition, a condition check, a write to a data table, or a delete
    /// of an absent lock item.
    Nothing,
    /// A create (`steal == false`) or takeover of lock `key` took effect: its acquisition
    /// number `acq`.
    Acquired {
        key: LockKey,
        acq: u64,
        steal: bool,
        prev_owner: Option<String>,
    },
    /// A renewal (or a release that keeps the item) of acquisition `acq` of `key` took effect.
    Renewed { key: LockKey, acq: u64 },
    /// The item of lock `key` (of acquisition `acq`) was deleted.
    Deleted { key: LockKey, acq: u64 },
}

/// A create whose token is not above every earlier token of its key: allowed by the core's
/// documented clock condition only when the creators' clocks are further apart than the
/// deleted item lived (see `ddb_lock::core::fence_base`).
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    pub key: LockKey,
    pub new_token: u64,
    pub max_token: u64,
}

/// The answer to one core request and what the ledger saw.
#[derive(Debug)]
pub struct Applied {
    pub outcome: Outcome,
    pub effect: Effect,
    /// A token rule the core must keep was broken (always a violation).
    pub fence_error: Option<String>,
    /// A create restarted the token below the highest so far (judged by the caller).
    pub regression: Option<Regression>,
}

/// The answer to a transaction (or any wire request) and what the ledger saw.
#[derive(Debug)]
pub struct AppliedAll<T> {
    pub outcome: Result<T, Error>,
    /// One per action, in order, when applied; none when the request changed nothing.
    pub effects: Vec<Effect>,
    /// Token rules broken by the actions (always violations).
    pub fence_errors: Vec<String>,
    /// Creates that restarted the token below the highest so far (judged by the caller).
    pub regressions: Vec<Regression>,
}

/// A `TransactWriteItems`' answer.
pub type TransactApplied = AppliedAll<TransactWriteItemsOutput>;
/// The answer to any request that came over the wire.
pub type WireApplied = AppliedAll<WireOk>;

/// An item's key: partition key value and sort key value (empty for a table without one).
type Key = (String, String);

struct Table {
    pk: String,
    sk: Option<String>,
    /// The lock table: its writes go through the ledger and the lock-shape rules.
    lock: bool,
    items: BTreeMap<Key, Item>,
}

/// One lock key's history.
#[derive(Default)]
struct Ledger {
    /// Acquisitions applied so far (the newest one's number).
    acquisitions: u64,
    fence_of_acq: HashMap<u64, Option<u64>>,
    max_fence: Option<u64>,
}

pub struct Db {
    lock_table: String,
    ttl_attr: Option<String>,
    tables: BTreeMap<String, Table>,
    ledgers: BTreeMap<LockKey, Ledger>,
    acq_of: HashMap<String, (LockKey, u64)>,
}

/// Consumed capacity as DynamoDB reports it when asked (`TOTAL`, `INDEXES`).
fn capacity(asked: Option<&'static str>, units: f64) -> Option<ConsumedCapacity> {
    match asked {
        Some("TOTAL" | "INDEXES") => Some(ConsumedCapacity {
            capacity_units: Some(units),
            ..Default::default()
        }),
        _ => None,
    }
}

fn values_equal(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::N(x), AttributeValue::N(y)) => {
            match (x.parse::<i128>(), y.parse::<i128>()) {
                (Ok(x), Ok(y)) => x == y,
                _ => x == y,
            }
        }
        _ => a == b,
    }
}

/// Resolved expression context of one request.
struct Ctx<'a> {
    names: &'a BTreeMap<String, String>,
    values: &'a Item,
}

impl Ctx<'_> {
    fn name(&self, n: &str) -> Result<&str, String> {
        self.names
            .get(n)
            .map(String::as_str)
            .ok_or_else(|| format!("ValidationException: name placeholder {n} is not defined"))
    }
    fn value(&self, v: &str) -> Result<&AttributeValue, String> {
        self.values
            .get(v)
            .ok_or_else(|| format!("ValidationException: value placeholder {v} is not defined"))
    }
    fn operand<'i>(
        &'i self,
        o: &Operand,
        item: Option<&'i Item>,
    ) -> Result<Option<&'i AttributeValue>, String> {
        match o {
            Operand::Name(n) => {
                let attr = self.name(n)?;
                Ok(item.and_then(|i| i.get(attr)))
            }
            Operand::Value(v) => self.value(v).map(Some),
        }
    }
    fn eval(&self, terms: &[Term], item: Option<&Item>) -> Result<bool, String> {
        let mut all = true;
        for t in terms {
            let has = |n: &str| -> Result<bool, String> {
                let attr = self.name(n)?;
                Ok(item.is_some_and(|i| i.contains_key(attr)))
            };
            let ok = match t {
                Term::Exists(n) => has(n)?,
                Term::NotExists(n) => !has(n)?,
                Term::Eq(a, b) => match (self.operand(a, item)?, self.operand(b, item)?) {
                    (Some(x), Some(y)) => values_equal(x, y),
                    _ => false,
                },
                Term::In(a, list) => {
                    let x = self.operand(a, item)?;
                    let mut any = false;
                    for o in list {
                        if let (Some(x), Some(y)) = (x, self.operand(o, item)?) {
                            any |= values_equal(x, y);
                        }
                    }
                    any
                }
            };
            // Keep evaluating so undefined placeholders anywhere are caught.
            all &= ok;
        }
        Ok(all)
    }
    fn term(&self, t: &SetTerm, old: Option<&Item>) -> Result<AttributeValue, String> {
        let attr = |n: &str| -> Result<Option<AttributeValue>, String> {
            let a = self.name(n)?;
            Ok(old.and_then(|i| i.get(a)).cloned())
        };
        match t {
            SetTerm::Value(v) => self.value(v).cloned(),
            SetTerm::Attr(n) => attr(n)?.ok_or_else(|| {
                format!("ValidationException: the update refers to {n}, absent from the item")
            }),
            SetTerm::IfNotExists(n, v) => match attr(n)? {
                Some(x) => Ok(x),
                None => self.value(v).cloned(),
            },
        }
    }
    /// The new value of one `SET` assignment, computed from the item before the update.
    fn assign(&self, a: &Assign, old: Option<&Item>) -> Result<AttributeValue, String> {
        let v = self.term(&a.value, old)?;
        let Some(plus) = &a.plus else {
            return Ok(v);
        };
        let w = self.term(plus, old)?;
        match (&v, &w) {
            (AttributeValue::N(x), AttributeValue::N(y)) => {
                match (x.parse::<i128>(), y.parse::<i128>()) {
                    (Ok(x), Ok(y)) => Ok(AttributeValue::N((x + y).to_string())),
                    _ => Err(format!("unsupported non-integer arithmetic {x} + {y}")),
                }
            }
            _ => Err(format!(
                "ValidationException: + needs numbers, found {} and {}",
                v.type_name(),
                w.type_name()
            )),
        }
    }
}

/// DynamoDB refuses a request whose maps hold placeholders the expressions do not use, or
/// whose expressions use placeholders the maps do not define.
fn check_placeholders(
    terms: &[Term],
    sets: &[Assign],
    names: &BTreeMap<String, String>,
    values: &Item,
) -> Result<(), String> {
    let (used_n, used_v) = placeholders(terms, sets);
    for n in names.keys() {
        if !used_n.contains(n) {
            return Err(format!(
                "ValidationException: ExpressionAttributeNames unused in expressions: {n}"
            ));
        }
    }
    for v in values.keys() {
        if !used_v.contains(v) {
            return Err(format!(
                "ValidationException: ExpressionAttributeValues unused in expressions: {v}"
            ));
        }
    }
    for n in &used_n {
        if !names.contains_key(n) {
            return Err(format!("ValidationException: {n} is not defined"));
        }
    }
    for v in &used_v {
        if !values.contains_key(v) {
            return Err(format!("ValidationException: {v} is not defined"));
        }
    }
    Ok(())
}

fn fence_of(item: &Item) -> Result<Option<u64>, String> {
    match item.get(FENCE) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{FENCE} is not a non-negative integer: {v:?}")),
    }
}

fn owner_of(item: &Item) -> Option<String> {
    item.get(OWNER)
        .and_then(AttributeValue::as_s)
        .map(str::to_owned)
}

fn rvn_of(item: &Item) -> &str {
    item.get(RVN).and_then(AttributeValue::as_s).unwrap_or("")
}

fn lock_key(key: &Key) -> LockKey {
    LockKey {
        group: key.1.clone(),
        id: key.0.clone(),
    }
}

/// The kind of a single-item action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Check,
    Put,
    Update,
    Delete,
}

/// One single-item write or check, sent alone or as one action of a transaction.
struct Action<'a> {
    kind: Kind,
    table: &'a str,
    /// The key; for a `Put`, the whole item.
    key: &'a Item,
    update: Option<&'a str>,
    condition: Option<&'a str>,
    names: &'a Names,
    values: &'a Item,
    on_failure: Option<ReturnOnConditionFailure>,
}

impl<'a> Action<'a> {
    fn put(p: &'a PutItem) -> Self {
        Action {
            kind: Kind::Put,
            table: &p.table_name,
            key: &p.item,
            update: None,
            condition: p.condition_expression.as_deref(),
            names: &p.expression_attribute_names,
            values: &p.expression_attribute_values,
            on_failure: p.return_values_on_condition_check_failure,
        }
    }

    fn update(u: &'a UpdateItem) -> Self {
        Action {
            kind: Kind::Update,
            table: &u.table_name,
            key: &u.key,
            update: Some(&u.update_expression),
            condition: u.condition_expression.as_deref(),
            names: &u.expression_attribute_names,
            values: &u.expression_attribute_values,
            on_failure: u.return_values_on_condition_check_failure,
        }
    }

    fn delete(d: &'a DeleteItem) -> Self {
        Action {
            kind: Kind::Delete,
            table: &d.table_name,
            key: &d.key,
            update: None,
            condition: d.condition_expression.as_deref(),
            names: &d.expression_attribute_names,
            values: &d.expression_attribute_values,
            on_failure: d.return_values_on_condition_check_failure,
        }
    }

    /// A transaction action, refused unless it has its kind's shape: a `Put` carries `Item`
    /// and no `Key`, the others a `Key` and no `Item`; only an `Update` has an update
    /// expression; a `ConditionCheck` has a condition.
    fn transact(i: &'a TransactItem) -> Result<Self, String> {
        let (kind, t): (Kind, &TransactTarget) = match i {
            TransactItem::ConditionCheck(t) => (Kind::Check, t),
            TransactItem::Put(t) => (Kind::Put, t),
            TransactItem::Update(t) => (Kind::Update, t),
            TransactItem::Delete(t) => (Kind::Delete, t),
        };
        let bad = |why: &str| Err(format!("ValidationException: {kind:?} action {why}: {t:?}"));
        if kind == Kind::Put {
            if !t.key.is_empty() || t.item.is_empty() {
                return bad("must carry an Item and no Key");
            }
        } else if t.key.is_empty() || !t.item.is_empty() {
            return bad("must carry a Key and no Item");
        }
        if (kind == Kind::Update) != t.update_expression.is_some() {
            return bad("has an UpdateExpression if and only if it is an Update");
        }
        if kind == Kind::Check && t.condition_expression.is_none() {
            return bad("needs a ConditionExpression");
        }
        Ok(Action {
            kind,
            table: &t.table_name,
            key: if kind == Kind::Put { &t.item } else { &t.key },
            update: t.update_expression.as_deref(),
            condition: t.condition_expression.as_deref(),
            names: &t.expression_attribute_names,
            values: &t.expression_attribute_values,
            on_failure: t.return_values_on_condition_check_failure,
        })
    }
}

/// What an action would do, judged against the items as they are now.
enum Plan {
    /// The condition is false; `returned` is what `ALL_OLD` hands back (the item, if asked
    /// for and there is one).
    Failed {
        returned: Option<Item>,
    },
    /// A condition check that holds: nothing to write.
    Holds,
    Write(Write),
}

struct Write {
    table: String,
    key: Key,
    old: Option<Item>,
    /// The item after the write; `None` deletes it.
    new: Option<Item>,
    /// On the lock table: a create or takeover (a new acquisition).
    acquisition: bool,
    /// The attributes an update set, with their new values (`UPDATED_NEW`).
    changed: Item,
}

/// What committing one write did to the ledger.
type Ledgered = (Effect, Option<String>, Option<Regression>);

impl Db {
    /// A database holding the (empty) lock table `table`.
    pub fn new(table: &TableOptions) -> Self {
        let mut tables = BTreeMap::new();
        tables.insert(
            table.name().to_owned(),
            Table {
                pk: table.partition_key_name().to_owned(),
                sk: Some(table.sort_key_name().to_owned()),
                lock: true,
                items: BTreeMap::new(),
            },
        );
        Db {
            lock_table: table.name().to_owned(),
            ttl_attr: table.ttl_key_name().map(str::to_owned),
            tables,
            ledgers: BTreeMap::new(),
            acq_of: HashMap::new(),
        }
    }

    /// Adds an empty data table (no ledger, no lock rules, no TTL) keyed by the string
    /// attributes `pk` and, if given, `sk`. Panics if the name is taken (a test setup error).
    pub fn add_table(&mut self, name: &str, pk: &str, sk: Option<&str>) {
        let old = self.tables.insert(
            name.to_owned(),
            Table {
                pk: pk.to_owned(),
                sk: sk.map(str::to_owned),
                lock: false,
                items: BTreeMap::new(),
            },
        );
        assert!(old.is_none(), "table {name:?} exists already");
    }

    /// The lock key and acquisition record version `rvn` belongs to, if DynamoDB ever stored
    /// it (versions are random UUIDs, unique across keys).
    pub fn acq_of(&self, rvn: &str) -> Option<(&LockKey, u64)> {
        self.acq_of.get(rvn).map(|(k, a)| (k, *a))
    }

    /// The token acquisition `acq` of `key` wrote.
    pub fn fence_of_acq(&self, key: &LockKey, acq: u64) -> Option<u64> {
        self.ledgers
            .get(key)
            .and_then(|l| l.fence_of_acq.get(&acq).copied().flatten())
    }

    /// Acquisitions of `key` applied so far (the newest one's number; 0 if none).
    pub fn acquisitions(&self, key: &LockKey) -> u64 {
        self.ledgers.get(key).map_or(0, |l| l.acquisitions)
    }

    /// The highest token ever written for `key`.
    pub fn max_fence(&self, key: &LockKey) -> Option<u64> {
        self.ledgers.get(key).and_then(|l| l.max_fence)
    }

    /// The lock keys that have ever been acquired.
    pub fn lock_keys(&self) -> impl Iterator<Item = &LockKey> {
        self.ledgers.keys()
    }

    /// Replaces (or removes) the lock item at `(id, group)` behind the clients' backs:
    /// another writer, an operator. The ledger does not see it.
    pub fn force(&mut self, key: (String, String), item: Option<Item>) {
        let items = &mut self.lock_table_mut().items;
        match item {
            Some(i) => items.insert(key, i),
            None => items.remove(&key),
        };
    }

    /// The item of lock `key`, if there is one.
    pub fn current(&self, key: &LockKey) -> Option<&Item> {
        self.tables[&self.lock_table]
            .items
            .get(&(key.id.clone(), key.group.clone()))
    }

    /// The item of any table at `key` (the DynamoDB key, e.g. a `GetItem`'s).
    pub fn item(&self, table: &str, key: &Item) -> Result<Option<&Item>, String> {
        let t = self.table(table)?;
        Ok(t.items.get(&key_of(t, key, true)?))
    }

    fn lock_table_mut(&mut self) -> &mut Table {
        self.tables
            .get_mut(&self.lock_table)
            .expect("the lock table exists")
    }

    fn table(&self, name: &str) -> Result<&Table, String> {
        self.tables
            .get(name)
            .ok_or_else(|| format!("ResourceNotFoundException: table {name:?}"))
    }

    /// The acquisition of `key` that `item`'s version belongs to (0 for an item the ledger
    /// never saw, e.g. a forced one).
    fn acq_in(&self, key: &LockKey, item: &Item) -> u64 {
        match self.acq_of.get(rvn_of(item)) {
            Some((k, a)) if k == key => *a,
            _ => 0,
        }
    }

    /// Judges `a` against the items as they are now, changing nothing. Refuses what DynamoDB
    /// would refuse (unknown table, bad key, undefined or unused placeholders, updating a key
    /// attribute) and lock-table writes the core never sends (a put over an existing lock
    /// item, a holder's update creating one).
    fn plan(&self, a: &Action) -> Result<Plan, String> {
        let table = self.table(a.table)?;
        let key = key_of(table, a.key, a.kind != Kind::Put)?;
        let terms = match a.condition {
            Some(c) => parse_condition(c)?,
            None => Vec::new(),
        };
        let sets = match (a.kind, a.update) {
            (Kind::Update, Some(u)) => parse_update(u)?,
            (_, None) => Vec::new(),
            (kind, Some(u)) => return Err(format!("an update expression on a {kind:?}: {u}")),
        };
        check_placeholders(&terms, &sets, a.names, a.values)?;
        let ctx = Ctx {
            names: a.names,
            values: a.values,
        };
        let old = table.items.get(&key);
        if !ctx.eval(&terms, old)? {
            let returned = match a.on_failure {
                Some(ReturnOnConditionFailure::AllOld) => old.cloned(),
                _ => None,
            };
            return Ok(Plan::Failed { returned });
        }
        let (new, acquisition, changed) = match a.kind {
            Kind::Check => return Ok(Plan::Holds),
            Kind::Delete => (None, false, Item::new()),
            Kind::Put => {
                if table.lock && old.is_some() {
                    return Err(
                        "a PutItem replaced an existing lock item (the core only creates)".into(),
                    );
                }
                (Some(a.key.clone()), table.lock, Item::new())
            }
            Kind::Update => {
                let mut new = old.cloned().unwrap_or_else(|| a.key.clone());
                let mut changed = Item::new();
                for s in &sets {
                    let attr = ctx.name(&s.name)?.to_owned();
                    if attr == table.pk || table.sk.as_deref() == Some(attr.as_str()) {
                        return Err(format!(
                            "ValidationException: cannot update key attribute {attr}"
                        ));
                    }
                    if changed.contains_key(&attr) {
                        return Err(format!("ValidationException: {attr} set twice"));
                    }
                    // Every value is computed from the item as it was before the update.
                    changed.insert(attr, ctx.assign(s, old)?);
                }
                new.extend(changed.clone());
                // On the lock table, a write that sets the owner is a takeover (a new
                // acquisition); one that only moves the version, time or lease is the
                // holder's (renewal, release keeping the item) and extends the acquisition
                // it belongs to.
                let sets_owner = changed.contains_key(OWNER);
                if table.lock && old.is_none() && !sets_owner {
                    return Err(format!(
                        "a holder-shaped UpdateItem created a lock item: {}",
                        a.update.unwrap_or_default()
                    ));
                }
                (Some(new), table.lock && sets_owner, changed)
            }
        };
        Ok(Plan::Write(Write {
            table: a.table.to_owned(),
            key,
            old: old.cloned(),
            new,
            acquisition,
            changed,
        }))
    }

    /// Stores a planned write; lock items go through the ledger.
    fn commit(&mut self, w: Write) -> Ledgered {
        let table = self.tables.get_mut(&w.table).expect("a planned table");
        match &w.new {
            Some(new) => table.items.insert(w.key.clone(), new.clone()),
            None => table.items.remove(&w.key),
        };
        if !table.lock {
            return (Effect::Nothing, None, None);
        }
        let key = lock_key(&w.key);
        match (w.old, w.new) {
            (old, Some(new)) => self.record_write(key, old.as_ref(), &new, w.acquisition),
            (Some(old), None) => {
                let acq = self.acq_in(&key, &old);
                (Effect::Deleted { key, acq }, None, None)
            }
            (None, None) => (Effect::Nothing, None, None),
        }
    }

    /// Ledger bookkeeping for a write that replaced `old` by `new` in lock `key`'s item.
    fn record_write(
        &mut self,
        key: LockKey,
        old: Option<&Item>,
        new: &Item,
        acquisition: bool,
    ) -> Ledgered {
        let mut fence_error = None;
        let mut regression = None;
        let new_fence = fence_of(new).unwrap_or_else(|e| {
            fence_error = Some(format!("{key}: {e}"));
            None
        });
        let old_fence = old.and_then(|o| fence_of(o).ok().flatten());
        let held_acq = old.map_or(0, |o| self.acq_in(&key, o));
        let ledger = self.ledgers.entry(key.clone()).or_default();
        let acq = if acquisition {
            ledger.acquisitions += 1;
            let n = ledger.acquisitions;
            match (old, old_fence, new_fence) {
                // A takeover within the item's lifetime: exactly one more.
                (Some(_), Some(o), f) if f != Some(o + 1) => {
                    fence_error = Some(format!(
                        "{key}: takeover #{n} wrote {FENCE}={f:?} over {o} (must be exactly one more)"
                    ));
                }
                // A create restarts from the creator's clock.
                (None, _, Some(f)) if ledger.max_fence.is_some_and(|m| f <= m) => {
                    regression = Some(Regression {
                        key: key.clone(),
                        new_token: f,
                        max_token: ledger.max_fence.unwrap(),
                    });
                }
                _ => {}
            }
            if let Some(f) = new_fence {
                ledger.max_fence = Some(ledger.max_fence.map_or(f, |m| m.max(f)));
            }
            ledger.fence_of_acq.insert(n, new_fence);
            n
        } else {
            if old_fence != new_fence {
                fence_error = Some(format!(
                    "{key}: a write by the holder changed {FENCE} from {old_fence:?} to {new_fence:?}"
                ));
            }
            held_acq
        };
        self.acq_of
            .insert(rvn_of(new).to_owned(), (key.clone(), acq));
        let effect = if acquisition {
            Effect::Acquired {
                key,
                acq,
                steal: old.is_some(),
                prev_owner: old.and_then(owner_of),
            }
        } else {
            Effect::Renewed { key, acq }
        };
        (effect, fence_error, regression)
    }

    /// Runs a single-item write: a failed condition, or the write and its answer.
    fn single(
        &mut self,
        a: &Action,
        respond: impl FnOnce(&Write) -> Response,
    ) -> Result<Applied, String> {
        match self.plan(a)? {
            Plan::Failed { returned } => Ok(Applied {
                outcome: Err(Error::ConditionalCheckFailed { item: returned }),
                effect: Effect::Nothing,
                fence_error: None,
                regression: None,
            }),
            Plan::Holds => Err("a condition check outside a transaction".into()),
            Plan::Write(w) => {
                let response = respond(&w);
                let (effect, fence_error, regression) = self.commit(w);
                Ok(Applied {
                    outcome: Ok(response),
                    effect,
                    fence_error,
                    regression,
                })
            }
        }
    }

    /// Applies one request at its arrival.
    pub fn apply(&mut self, req: &Request) -> Result<Applied, String> {
        match req {
            Request::Put(p) => self.single(&Action::put(p), |_| {
                Response::Put(PutItemOutput {
                    consumed_capacity: capacity(p.return_consumed_capacity, 1.0),
                })
            }),
            Request::Update(u) => {
                #[derive(Clone, Copy)]
                enum Back {
                    None,
                    UpdatedNew,
                    AllNew,
                }
                let back = match u.return_values {
                    None | Some("NONE") => Back::None,
                    Some("UPDATED_NEW") => Back::UpdatedNew,
                    Some("ALL_NEW") => Back::AllNew,
                    Some(rv) => return Err(format!("unsupported ReturnValues {rv:?}")),
                };
                self.single(&Action::update(u), |w| {
                    Response::Update(UpdateItemOutput {
                        attributes: match back {
                            Back::None => None,
                            Back::UpdatedNew => Some(w.changed.clone()),
                            Back::AllNew => w.new.clone(),
                        },
                        consumed_capacity: capacity(u.return_consumed_capacity, 1.0),
                    })
                })
            }
            Request::Delete(d) => self.single(&Action::delete(d), |_| {
                Response::Delete(DeleteItemOutput {
                    consumed_capacity: capacity(d.return_consumed_capacity, 1.0),
                })
            }),
            Request::Get(g) => self.get(g),
        }
    }

    /// A `GetItem`: always the latest item (the lock table only takes strongly consistent
    /// reads: lock decisions need them). Projections are not modelled.
    fn get(&self, g: &GetItem) -> Result<Applied, String> {
        let table = self.table(&g.table_name)?;
        let key = key_of(table, &g.key, true)?;
        if table.lock && !g.consistent_read {
            return Err(
                "GetItem without ConsistentRead: lock decisions need strongly consistent reads"
                    .into(),
            );
        }
        if g.projection_expression.is_some() || !g.expression_attribute_names.is_empty() {
            return Err("unsupported GetItem projection".into());
        }
        Ok(Applied {
            outcome: Ok(Response::Get(GetItemOutput {
                item: table.items.get(&key).cloned(),
                consumed_capacity: capacity(
                    g.return_consumed_capacity,
                    if g.consistent_read { 1.0 } else { 0.5 },
                ),
            })),
            effect: Effect::Nothing,
            fence_error: None,
            regression: None,
        })
    }

    /// Applies a `TransactWriteItems` at its arrival, as DynamoDB does: every action's
    /// condition is evaluated against the items as they were before the transaction; if any
    /// is false nothing is applied and the answer is `TransactionCanceledException` with one
    /// reason per action, in order (`ConditionalCheckFailed` with DynamoDB's message, and the
    /// old item when that action asked for `ALL_OLD` and there is one; `None` for the
    /// others); otherwise every action applies, lock items through the ledger.
    ///
    /// Refused (`Err`): no action or more than 100, two actions on one item, an action of the
    /// wrong shape, anything `apply` refuses for the same write alone, and a
    /// `ClientRequestToken` (idempotent retries are not modelled).
    pub fn apply_transact(&mut self, t: &TransactWriteItems) -> Result<TransactApplied, String> {
        if let Some(token) = &t.client_request_token {
            return Err(format!(
                "unsupported ClientRequestToken {token:?} (idempotent retries are not modelled)"
            ));
        }
        let n = t.transact_items.len();
        if n == 0 || n > 100 {
            return Err(format!(
                "ValidationException: {n} transaction actions (1 to 100 allowed)"
            ));
        }
        let actions = t
            .transact_items
            .iter()
            .map(Action::transact)
            .collect::<Result<Vec<_>, _>>()?;
        let mut targets = BTreeSet::new();
        for a in &actions {
            let key = key_of(self.table(a.table)?, a.key, a.kind != Kind::Put)?;
            if !targets.insert((a.table, key)) {
                return Err(format!(
                    "ValidationException: Transaction request cannot include multiple operations on one item (table {:?}, {:?})",
                    a.table, a.key
                ));
            }
        }
        // Nothing is committed before every action is judged: all see the same items.
        let plans = actions
            .iter()
            .map(|a| self.plan(a))
            .collect::<Result<Vec<_>, _>>()?;
        if plans.iter().any(|p| matches!(p, Plan::Failed { .. })) {
            let reasons: Vec<CancellationReason> = plans
                .into_iter()
                .map(|p| match p {
                    Plan::Failed { returned } => CancellationReason {
                        code: Some("ConditionalCheckFailed".into()),
                        item: returned,
                        message: Some(CONDITION_FAILED_MESSAGE.into()),
                    },
                    _ => CancellationReason {
                        code: Some("None".into()),
                        item: None,
                        message: None,
                    },
                })
                .collect();
            let codes: Vec<&str> = reasons
                .iter()
                .map(|r| r.code.as_deref().unwrap_or("None"))
                .collect();
            let message = format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            );
            return Ok(AppliedAll {
                outcome: Err(Error::TransactionCanceled { reasons, message }),
                effects: Vec::new(),
                fence_errors: Vec::new(),
                regressions: Vec::new(),
            });
        }
        // Capacity per table, in the order the actions name them: 2 write units per action
        // (transactional writes of items up to 1 KB).
        let mut per_table: Vec<(&str, f64)> = Vec::new();
        for a in &actions {
            match per_table.iter_mut().find(|(t, _)| *t == a.table) {
                Some((_, u)) => *u += 2.0,
                None => per_table.push((a.table, 2.0)),
            }
        }
        let consumed_capacity = matches!(t.return_consumed_capacity, Some("TOTAL" | "INDEXES"))
            .then(|| {
                per_table
                    .iter()
                    .map(|(_, u)| ConsumedCapacity {
                        capacity_units: Some(*u),
                        write_capacity_units: Some(*u),
                        ..Default::default()
                    })
                    .collect()
            });
        let mut applied = AppliedAll {
            outcome: Ok(TransactWriteItemsOutput { consumed_capacity }),
            effects: Vec::new(),
            fence_errors: Vec::new(),
            regressions: Vec::new(),
        };
        for p in plans {
            match p {
                Plan::Write(w) => {
                    let (effect, fence_error, regression) = self.commit(w);
                    applied.effects.push(effect);
                    applied.fence_errors.extend(fence_error);
                    applied.regressions.extend(regression);
                }
                _ => applied.effects.push(Effect::Nothing),
            }
        }
        Ok(applied)
    }

    /// Applies a request decoded from the wire: `apply` or `apply_transact`.
    pub fn apply_wire(&mut self, op: &WireOp) -> Result<WireApplied, String> {
        Ok(match op {
            WireOp::Core(r) => {
                let a = self.apply(r)?;
                AppliedAll {
                    outcome: a.outcome.map(WireOk::Core),
                    effects: vec![a.effect],
                    fence_errors: a.fence_error.into_iter().collect(),
                    regressions: a.regression.into_iter().collect(),
                }
            }
            WireOp::Transact(t) => {
                let a = self.apply_transact(t)?;
                AppliedAll {
                    outcome: a.outcome.map(WireOk::Transact),
                    effects: a.effects,
                    fence_errors: a.fence_errors,
                    regressions: a.regressions,
                }
            }
        })
    }

    /// DynamoDB's TTL: deletes lock items whose TTL attribute (epoch seconds) is before
    /// `now_secs`. Returns the lock keys and acquisitions whose items went.
    pub fn ttl_sweep(&mut self, now_secs: u64) -> Vec<(LockKey, u64)> {
        let Some(attr) = self.ttl_attr.clone() else {
            return Vec::new();
        };
        let table = self.lock_table_mut();
        let expired: Vec<Key> = table
            .items
            .iter()
            .filter(|(_, i)| {
                i.get(&attr)
                    .and_then(AttributeValue::as_u64)
                    .is_some_and(|e| e < now_secs)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let gone: Vec<(Key, Item)> = expired
            .into_iter()
            .filter_map(|k| table.items.remove(&k).map(|i| (k, i)))
            .collect();
        gone.into_iter()
            .map(|(k, i)| {
                let key = lock_key(&k);
                let acq = self.acq_in(&key, &i);
                (key, acq)
            })
            .collect()
    }
}

/// The key of `item` in `table`: its key attributes, non-empty strings. With `exact`, the
/// item must hold nothing else (a request's `Key`).
fn key_of(table: &Table, item: &Item, exact: bool) -> Result<Key, String> {
    let get = |a: &str| match item.get(a) {
        Some(AttributeValue::S(s)) if !s.is_empty() => Ok(s.clone()),
        other => Err(format!(
            "ValidationException: key attribute {a} must be a non-empty S, found {other:?}"
        )),
    };
    let key = (
        get(&table.pk)?,
        match &table.sk {
            Some(sk) => get(sk)?,
            None => String::new(),
        },
    );
    let len = 1 + usize::from(table.sk.is_some());
    if exact && item.len() != len {
        return Err(format!(
            "ValidationException: Key must hold exactly the key attributes ({}{}): {item:?}",
            table.pk,
            table
                .sk
                .as_ref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ddb_lock::core::Layout;
    use ddb_lock::dynamodb::names;
    use ddb_lock::time::WallTime;

    use super::*;

    const LEASE: Duration = Duration::from_secs(20);

    fn key(id: &str) -> LockKey {
        LockKey {
            group: "g".into(),
            id: id.into(),
        }
    }

    fn table() -> TableOptions {
        TableOptions::new()
            .table_name("locks")
            .ttl_key("ttl")
            .ttl(Duration::from_secs(60))
    }

    fn db() -> Db {
        let mut db = Db::new(&table());
        db.add_table("data", "id", None);
        db.add_table("pairs", "pk", Some("sk"));
        db
    }

    fn layout(id: &str) -> Layout {
        Layout::new(table(), key(id))
    }

    fn wall(ms: u64) -> WallTime {
        WallTime::from_millis(1_700_000_000_000 + ms)
    }

    fn ok(db: &mut Db, r: Request) -> Applied {
        let a = db.apply(&r).unwrap();
        assert!(a.outcome.is_ok(), "{:?}", a.outcome);
        assert_eq!(a.fence_error, None);
        a
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::s(v)
    }

    fn data(id: &str, payload: u64) -> Item {
        [
            ("id".to_owned(), s(id)),
            ("payload".to_owned(), AttributeValue::n(payload)),
        ]
        .into()
    }

    fn put(table: &str, item: Item) -> TransactItem {
        TransactItem::Put(TransactTarget {
            table_name: table.into(),
            item,
            ..Default::default()
        })
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

    fn transact(items: Vec<TransactItem>) -> TransactWriteItems {
        TransactWriteItems {
            transact_items: items,
            client_request_token: None,
            return_consumed_capacity: Some("TOTAL"),
        }
    }

    #[test]
    fn the_ledger_is_per_key() {
        let mut db = db();
        let (a, b) = (layout("a"), layout("b"));
        let e = ok(
            &mut db,
            Request::Put(a.create("alice", "a1", LEASE, &Item::new(), wall(0))),
        )
        .effect;
        assert_eq!(
            e,
            Effect::Acquired {
                key: key("a"),
                acq: 1,
                steal: false,
                prev_owner: None
            }
        );
        let e = ok(
            &mut db,
            Request::Put(b.create("bob", "b1", LEASE, &Item::new(), wall(5))),
        )
        .effect;
        assert!(matches!(e, Effect::Acquired { key: k, acq: 1, .. } if k == key("b")));
        let e = ok(
            &mut db,
            Request::Update(a.steal("a1", "carol", "a2", LEASE, &Item::new(), wall(9))),
        )
        .effect;
        assert_eq!(
            e,
            Effect::Acquired {
                key: key("a"),
                acq: 2,
                steal: true,
                prev_owner: Some("alice".into())
            }
        );
        let e = ok(
            &mut db,
            Request::Update(b.renew(&["b1".into()], "bob", "b2", wall(10))),
        )
        .effect;
        assert_eq!(
            e,
            Effect::Renewed {
                key: key("b"),
                acq: 1
            }
        );
        assert_eq!(
            (db.acquisitions(&key("a")), db.acquisitions(&key("b"))),
            (2, 1)
        );
        assert_eq!(db.acquisitions(&key("never")), 0);
        assert_eq!(db.acq_of("a2"), Some((&key("a"), 2)));
        assert_eq!(db.acq_of("b2"), Some((&key("b"), 1)));
        assert_eq!(db.acq_of("nope"), None);
        let base = ddb_lock::core::fence_base;
        assert_eq!(db.fence_of_acq(&key("a"), 1), Some(base(wall(0))));
        assert_eq!(db.fence_of_acq(&key("a"), 2), Some(base(wall(0)) + 1));
        assert_eq!(db.fence_of_acq(&key("b"), 1), Some(base(wall(5))));
        assert_eq!(db.fence_of_acq(&key("b"), 2), None);
        assert_eq!(db.max_fence(&key("a")), Some(base(wall(0)) + 1));
        assert_eq!(
            db.lock_keys().cloned().collect::<Vec<_>>(),
            [key("a"), key("b")]
        );
        assert_eq!(db.current(&key("b")).unwrap()[RVN], s("b2"));

        // Deleting a's item and re-creating it from an earlier clock: a regression of a only.
        let e = ok(&mut db, Request::Delete(a.release(&["a2".into()], "carol"))).effect;
        assert_eq!(
            e,
            Effect::Deleted {
                key: key("a"),
                acq: 2
            }
        );
        assert_eq!(db.current(&key("a")), None);
        let r = ok(
            &mut db,
            Request::Put(a.create("dave", "a3", LEASE, &Item::new(), wall(0))),
        );
        assert_eq!(
            r.regression,
            Some(Regression {
                key: key("a"),
                new_token: base(wall(0)),
                max_token: base(wall(0)) + 1
            })
        );
        assert!(matches!(r.effect, Effect::Acquired { acq: 3, .. }));

        // TTL takes both items (last written at 0 s and 10 s, TTL 60 s).
        let now = wall(0).as_secs() + 71;
        assert_eq!(db.ttl_sweep(now), vec![(key("a"), 3), (key("b"), 1)]);
        assert_eq!(db.current(&key("b")), None);
    }

    #[test]
    fn fence_rules_are_checked_per_key() {
        let mut db = db();
        let a = layout("a");
        ok(
            &mut db,
            Request::Put(a.create("alice", "a1", LEASE, &Item::new(), wall(0))),
        );
        let mut steal = a.steal("a1", "bob", "a2", LEASE, &Item::new(), wall(1));
        steal.update_expression = steal
            .update_expression
            .replace("if_not_exists(#fence, :base) + :one", ":base");
        steal.expression_attribute_values.remove(":one");
        let r = db.apply(&Request::Update(steal)).unwrap();
        let e = r.fence_error.expect("a takeover that does not add one");
        assert!(e.starts_with("g/a: takeover #2"), "{e}");
    }

    #[test]
    fn a_transaction_applies_all_or_nothing() {
        let mut db = db();
        let a = layout("a");
        ok(
            &mut db,
            Request::Put(a.create("alice", "a1", LEASE, &Item::new(), wall(0))),
        );
        let pair: Item = [("pk".to_owned(), s("p")), ("sk".to_owned(), s("q"))].into();
        let set_payload = |cond: Option<&str>, on_failure| {
            TransactItem::Update(TransactTarget {
                table_name: "pairs".into(),
                key: pair.clone(),
                update_expression: Some("SET #p = if_not_exists(#p, :zero) + :one".into()),
                condition_expression: cond.map(str::to_owned),
                expression_attribute_names: names([("#p", "payload")]),
                expression_attribute_values: [
                    (":zero".to_owned(), AttributeValue::n(0)),
                    (":one".to_owned(), AttributeValue::n(1)),
                ]
                .into(),
                return_values_on_condition_check_failure: on_failure,
                ..Default::default()
            })
        };
        let t = transact(vec![
            a.still_held(&["zz".into(), "a1".into()], "alice"),
            put("data", data("d", 1)),
            set_payload(None, None),
        ]);
        let r = db.apply_transact(&t).unwrap();
        let out = r.outcome.unwrap();
        assert_eq!(r.effects, vec![Effect::Nothing; 3]);
        let units: Vec<_> = out
            .consumed_capacity
            .unwrap()
            .iter()
            .map(|c| c.capacity_units)
            .collect();
        assert_eq!(units, [Some(2.0); 3], "one entry per table, in order");
        let lookup = |db: &Db, t: &str, k: &Item| db.item(t, k).unwrap().cloned();
        let d_key: Item = [("id".to_owned(), s("d"))].into();
        assert_eq!(lookup(&db, "data", &d_key), Some(data("d", 1)));
        let after_first = lookup(&db, "pairs", &pair).unwrap();
        assert_eq!(after_first["payload"], AttributeValue::n(1));

        // The lock check fails (a version that is not stored) and so does the pairs update:
        // both reasons, in order, with the old items asked for; nothing is applied.
        let t = transact(vec![
            a.still_held(&["zz".into()], "alice"),
            put("data", data("d", 2)),
            set_payload(
                Some("attribute_not_exists(#p)"),
                Some(ReturnOnConditionFailure::AllOld),
            ),
            set_payload(None, None),
        ]);
        assert!(
            db.apply_transact(&t)
                .unwrap_err()
                .contains("multiple operations on one item")
        );
        let mut t = t;
        t.transact_items.pop();
        let r = db.apply_transact(&t).unwrap();
        assert!(r.effects.is_empty());
        let Err(Error::TransactionCanceled { reasons, message }) = r.outcome else {
            panic!("{:?}", r.outcome);
        };
        assert_eq!(
            message,
            "Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None, ConditionalCheckFailed]"
        );
        let failed = |item: Option<Item>| CancellationReason {
            code: Some("ConditionalCheckFailed".into()),
            item,
            message: Some(CONDITION_FAILED_MESSAGE.into()),
        };
        let none = CancellationReason {
            code: Some("None".into()),
            item: None,
            message: None,
        };
        assert_eq!(
            reasons,
            vec![
                failed(db.current(&key("a")).cloned()),
                none,
                failed(Some(after_first.clone()))
            ]
        );
        assert_eq!(lookup(&db, "data", &d_key), Some(data("d", 1)));
        assert_eq!(lookup(&db, "pairs", &pair), Some(after_first));

        // Without ALL_OLD a failed action returns no item.
        let t = transact(vec![set_payload(Some("attribute_not_exists(#p)"), None)]);
        let r = db.apply_transact(&t).unwrap();
        assert!(
            matches!(&r.outcome, Err(Error::TransactionCanceled { reasons, .. }) if reasons == &[failed(None)]),
            "{:?}",
            r.outcome
        );

        // Deletes and condition checks on data items.
        let t = transact(vec![
            TransactItem::ConditionCheck(TransactTarget {
                table_name: "pairs".into(),
                key: pair.clone(),
                condition_expression: Some("attribute_exists(#p)".into()),
                expression_attribute_names: names([("#p", "payload")]),
                ..Default::default()
            }),
            TransactItem::Delete(TransactTarget {
                table_name: "data".into(),
                key: d_key.clone(),
                condition_expression: Some("#p = :one".into()),
                expression_attribute_names: names([("#p", "payload")]),
                expression_attribute_values: [(":one".to_owned(), AttributeValue::n(1))].into(),
                ..Default::default()
            }),
        ]);
        assert!(db.apply_transact(&t).unwrap().outcome.is_ok());
        assert_eq!(lookup(&db, "data", &d_key), None);
    }

    #[test]
    fn lock_writes_in_a_transaction_go_through_the_ledger() {
        let mut db = db();
        let (a, b) = (layout("a"), layout("b"));
        ok(
            &mut db,
            Request::Put(a.create("alice", "a1", LEASE, &Item::new(), wall(0))),
        );
        let create_b = b.create("bob", "b1", LEASE, &Item::new(), wall(3));
        let t = transact(vec![
            as_action(a.renew(&["a1".into()], "alice", "a2", wall(1))),
            TransactItem::Put(TransactTarget {
                table_name: create_b.table_name,
                item: create_b.item,
                condition_expression: create_b.condition_expression,
                expression_attribute_names: create_b.expression_attribute_names,
                ..Default::default()
            }),
            put("data", data("d", 1)),
        ]);
        let r = db.apply_wire(&WireOp::Transact(t)).unwrap();
        assert!(matches!(r.outcome, Ok(WireOk::Transact(_))));
        assert_eq!(r.fence_errors, Vec::<String>::new());
        assert_eq!(
            r.effects,
            vec![
                Effect::Renewed {
                    key: key("a"),
                    acq: 1
                },
                Effect::Acquired {
                    key: key("b"),
                    acq: 1,
                    steal: false,
                    prev_owner: None
                },
                Effect::Nothing
            ]
        );
        assert_eq!(db.acq_of("a2"), Some((&key("a"), 1)));
        assert_eq!(db.acq_of("b1"), Some((&key("b"), 1)));

        // A transaction changing the token of a held lock is a fence error, as alone.
        let mut renew = a.renew(&["a2".into()], "alice", "a3", wall(2));
        renew.update_expression.push_str(", #fence = :seven");
        renew
            .expression_attribute_names
            .insert("#fence".into(), FENCE.into());
        renew
            .expression_attribute_values
            .insert(":seven".into(), AttributeValue::n(7));
        let r = db
            .apply_transact(&transact(vec![as_action(renew)]))
            .unwrap();
        assert_eq!(r.fence_errors.len(), 1, "{:?}", r.fence_errors);

        // An unconditional put over a lock item is refused, as alone.
        let mut over = db.current(&key("b")).unwrap().clone();
        over.insert(OWNER.into(), s("mallory"));
        assert!(
            db.apply_transact(&transact(vec![put("locks", over)]))
                .is_err()
        );

        // apply_wire also answers single requests.
        let r = db.apply_wire(&WireOp::Core(Request::Get(b.get()))).unwrap();
        assert!(matches!(
            r.outcome,
            Ok(WireOk::Core(Response::Get(GetItemOutput {
                item: Some(_),
                ..
            })))
        ));
        assert_eq!(r.effects, [Effect::Nothing]);
    }

    #[test]
    fn refuses_what_it_does_not_model() {
        let mut db = db();
        let a = layout("a");
        let d_key: Item = [("id".to_owned(), s("d"))].into();
        let refused = |db: &mut Db, t: TransactWriteItems, needle: &str| {
            let e = db
                .apply_transact(&t)
                .err()
                .unwrap_or_else(|| panic!("accepted {t:?}"));
            assert!(e.contains(needle), "{e:?} does not mention {needle:?}");
        };
        refused(&mut db, transact(vec![]), "0 transaction actions");
        let mut t = transact(vec![put("data", data("d", 1))]);
        t.client_request_token = Some("x".into());
        refused(&mut db, t, "ClientRequestToken");
        refused(
            &mut db,
            transact(vec![put("nope", data("d", 1))]),
            "ResourceNotFoundException",
        );
        refused(
            &mut db,
            transact(vec![TransactItem::Put(TransactTarget {
                table_name: "data".into(),
                key: d_key.clone(),
                item: data("d", 1),
                ..Default::default()
            })]),
            "no Key",
        );
        refused(
            &mut db,
            transact(vec![TransactItem::ConditionCheck(TransactTarget {
                table_name: "data".into(),
                key: d_key.clone(),
                ..Default::default()
            })]),
            "needs a ConditionExpression",
        );
        refused(
            &mut db,
            transact(vec![TransactItem::Delete(TransactTarget {
                table_name: "data".into(),
                key: d_key.clone(),
                condition_expression: Some("attribute_exists(#id) OR attribute_exists(#x)".into()),
                expression_attribute_names: names([("#id", "id"), ("#x", "x")]),
                ..Default::default()
            })]),
            "unsupported",
        );
        refused(
            &mut db,
            transact(vec![
                a.still_held(&["v".into()], "me"),
                TransactItem::Delete(TransactTarget {
                    table_name: "locks".into(),
                    key: a.key_item(),
                    ..Default::default()
                }),
            ]),
            "multiple operations on one item",
        );
        let mut names_unused = put("data", data("d", 1));
        if let TransactItem::Put(t) = &mut names_unused {
            t.expression_attribute_names = names([("#x", "x")]);
        }
        refused(&mut db, transact(vec![names_unused]), "unused");
        // Single requests on data tables are fine; key updates are not.
        let u = UpdateItem {
            table_name: "data".into(),
            key: d_key,
            update_expression: "SET #id = :v".into(),
            expression_attribute_names: names([("#id", "id")]),
            expression_attribute_values: [(":v".to_owned(), s("e"))].into(),
            ..Default::default()
        };
        assert!(
            db.apply(&Request::Update(u))
                .unwrap_err()
                .contains("key attribute")
        );
    }
}
