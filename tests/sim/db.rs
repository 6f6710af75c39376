//! A simulated DynamoDB table: per-item linearizable conditional writes (requests are applied
//! one at a time, at the instant they arrive), consistent reads, `ALL_OLD` on a failed
//! condition, `UPDATED_NEW`, optional TTL deletion. It implements exactly the requests the
//! lock core sends and rejects anything else (a request DynamoDB would refuse, or an
//! expression shape this model does not know) with an error that fails the run.
//!
//! It also keeps an omniscient ledger the real service does not:
//! * every record version it ever stored maps to the *acquisition* (a create or takeover,
//!   numbered in the order DynamoDB applied them) it belongs to; renewals and releases that
//!   keep the item inherit their acquisition's number;
//! * the fencing token (`fencingToken`) of every write is checked: within one item lifetime a
//!   takeover must add exactly one, other writes must leave it alone; a create after a
//!   deletion restarts from the creator's clock and is reported for the caller to judge
//!   against the documented clock condition.

use std::collections::{BTreeMap, HashMap};

use ddb_lock::TableOptions;
use ddb_lock::core::{Outcome, Request, Response};
use ddb_lock::dynamodb::{
    AttributeValue, ConsumedCapacity, Error, Item, ReturnOnConditionFailure,
    delete_item::DeleteItemOutput, get_item::GetItemOutput, put_item::PutItemOutput,
    update_item::UpdateItemOutput,
};

use super::expr::{Assign, Operand, SetTerm, Term, parse_condition, parse_update, placeholders};

pub const OWNER: &str = "ownerName";
pub const RVN: &str = "recordVersionNumber";
/// The fencing token attribute the core writes (`options::attr::FENCE`).
pub const FENCE: &str = "fencingToken";

/// What a request did to the lock, as the ledger sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Read, failed condition, or nothing changed.
    Nothing,
    /// A create (`steal == false`) or takeover took effect: acquisition number `acq`.
    Acquired {
        acq: u64,
        steal: bool,
        prev_owner: Option<String>,
    },
    /// A renewal (or a release that keeps the item) of acquisition `acq` took effect.
    Renewed { acq: u64 },
    /// The item (of acquisition `acq`) was deleted.
    Deleted { acq: u64 },
}

/// A create whose token is not above every earlier token: allowed by the core's documented
/// clock condition only when the creators' clocks are further apart than the deleted item
/// lived (see `ddb_lock::core::fence_base`).
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    pub new_token: u64,
    pub max_token: u64,
}

pub struct Applied {
    pub outcome: Outcome,
    pub effect: Effect,
    /// A token rule the core must keep was broken (always a violation).
    pub fence_error: Option<String>,
    /// A create restarted the token below the highest so far (judged by the caller).
    pub regression: Option<Regression>,
}

pub struct Db {
    table: String,
    pk: String,
    sk: String,
    ttl_attr: Option<String>,
    items: BTreeMap<(String, String), Item>,
    acq_of: HashMap<String, u64>,
    fence_of_acq: HashMap<u64, Option<u64>>,
    /// Acquisitions applied so far (the newest one's number).
    pub acquisitions: u64,
    max_fence: Option<u64>,
}

fn capacity(asked: Option<&'static str>) -> Option<ConsumedCapacity> {
    asked.map(|_| ConsumedCapacity {
        capacity_units: Some(1.0),
        ..Default::default()
    })
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

/// Evaluates a condition of the lock core (e.g. `Held::still_held`'s) against `item`, as
/// DynamoDB would for a `ConditionCheck`.
pub fn check_condition(
    condition: &str,
    names: &BTreeMap<String, String>,
    values: &Item,
    item: Option<&Item>,
) -> Result<bool, String> {
    let terms = parse_condition(condition)?;
    check_placeholders(&terms, &[], names, values)?;
    Ctx { names, values }.eval(&terms, item)
}

impl Db {
    pub fn new(table: &TableOptions) -> Self {
        Db {
            table: table.name().to_owned(),
            pk: table.partition_key_name().to_owned(),
            sk: table.sort_key_name().to_owned(),
            ttl_attr: table.ttl_key_name().map(str::to_owned),
            items: BTreeMap::new(),
            acq_of: HashMap::new(),
            fence_of_acq: HashMap::new(),
            acquisitions: 0,
            max_fence: None,
        }
    }

    /// The acquisition record version `rvn` belongs to, if DynamoDB ever stored it.
    pub fn acq_of(&self, rvn: &str) -> Option<u64> {
        self.acq_of.get(rvn).copied()
    }

    /// The token acquisition `acq` wrote.
    pub fn fence_of_acq(&self, acq: u64) -> Option<u64> {
        self.fence_of_acq.get(&acq).copied().flatten()
    }

    /// Replaces (or removes) the item at `key` behind the clients' backs: another writer, an
    /// operator, TTL. Used by the adversarial progress test.
    pub fn force(&mut self, key: (String, String), item: Option<Item>) {
        match item {
            Some(i) => self.items.insert(key, i),
            None => self.items.remove(&key),
        };
    }

    /// The one lock item of the simulation (the table holds a single key).
    pub fn current(&self) -> Option<&Item> {
        self.items.values().next()
    }

    fn check_table(&self, name: &str) -> Result<(), String> {
        if name == self.table {
            Ok(())
        } else {
            Err(format!("ResourceNotFoundException: table {name:?}"))
        }
    }

    fn key_of(&self, item: &Item, exact: bool) -> Result<(String, String), String> {
        let get = |a: &str| match item.get(a) {
            Some(AttributeValue::S(s)) if !s.is_empty() => Ok(s.clone()),
            other => Err(format!(
                "ValidationException: key attribute {a} must be a non-empty S, found {other:?}"
            )),
        };
        let key = (get(&self.pk)?, get(&self.sk)?);
        if exact && item.len() != 2 {
            return Err(format!(
                "ValidationException: Key must hold exactly {} and {}: {item:?}",
                self.pk, self.sk
            ));
        }
        Ok(key)
    }

    fn ccf(&self, old: Option<&Item>, rv: Option<ReturnOnConditionFailure>) -> Applied {
        let item = match rv {
            Some(ReturnOnConditionFailure::AllOld) => old.cloned(),
            _ => None,
        };
        Applied {
            outcome: Err(Error::ConditionalCheckFailed { item }),
            effect: Effect::Nothing,
            fence_error: None,
            regression: None,
        }
    }

    fn condition(&self, c: &Option<String>) -> Result<Vec<Term>, String> {
        match c {
            Some(c) => parse_condition(c),
            None => Ok(Vec::new()),
        }
    }

    /// Ledger bookkeeping for a write that replaced `old` by `new`.
    fn record_write(
        &mut self,
        old: Option<&Item>,
        new: &Item,
        acquisition: bool,
    ) -> (Effect, Option<String>, Option<Regression>) {
        let mut fence_error = None;
        let mut regression = None;
        let new_fence = fence_of(new).unwrap_or_else(|e| {
            fence_error = Some(e);
            None
        });
        let old_fence = old.and_then(|o| fence_of(o).ok().flatten());
        let effect = if acquisition {
            self.acquisitions += 1;
            match (old, old_fence, new_fence) {
                // A takeover within the item's lifetime: exactly one more.
                (Some(_), Some(o), n) if n != Some(o + 1) => {
                    fence_error = Some(format!(
                        "takeover #{} wrote {FENCE}={n:?} over {o} (must be exactly one more)",
                        self.acquisitions
                    ));
                }
                // A create restarts from the creator's clock.
                (None, _, Some(n)) if self.max_fence.is_some_and(|m| n <= m) => {
                    regression = Some(Regression {
                        new_token: n,
                        max_token: self.max_fence.unwrap(),
                    });
                }
                _ => {}
            }

            if let Some(n) = new_fence {
                self.max_fence = Some(self.max_fence.map_or(n, |m| m.max(n)));
            }
            self.fence_of_acq.insert(self.acquisitions, new_fence);
            Effect::Acquired {
                acq: self.acquisitions,
                steal: old.is_some(),
                prev_owner: old.and_then(owner_of),
            }
        } else {
            if old_fence != new_fence {
                fence_error = Some(format!(
                    "a write by the holder changed {FENCE} from {old_fence:?} to {new_fence:?}"
                ));
            }
            Effect::Renewed {
                acq: old.and_then(|o| self.acq_of(rvn_of(o))).unwrap_or(0),
            }
        };
        let acq = match &effect {
            Effect::Acquired { acq, .. } | Effect::Renewed { acq } => *acq,
            _ => 0,
        };
        self.acq_of.insert(rvn_of(new).to_owned(), acq);
        (effect, fence_error, regression)
    }

    fn deleted(&self, old: &Item) -> u64 {
        self.acq_of(rvn_of(old)).unwrap_or(0)
    }

    /// Applies one request at its arrival.
    pub fn apply(&mut self, req: &Request) -> Result<Applied, String> {
        match req {
            Request::Put(p) => {
                self.check_table(&p.table_name)?;
                let key = self.key_of(&p.item, false)?;
                let terms = self.condition(&p.condition_expression)?;
                check_placeholders(
                    &terms,
                    &[],
                    &p.expression_attribute_names,
                    &p.expression_attribute_values,
                )?;
                let ctx = Ctx {
                    names: &p.expression_attribute_names,
                    values: &p.expression_attribute_values,
                };
                let old = self.items.get(&key).cloned();
                if !ctx.eval(&terms, old.as_ref())? {
                    return Ok(self.ccf(old.as_ref(), p.return_values_on_condition_check_failure));
                }
                if old.is_some() {
                    return Err("an unconditional PutItem replaced a lock item".into());
                }
                let (effect, fence_error, regression) =
                    self.record_write(old.as_ref(), &p.item, true);
                self.items.insert(key, p.item.clone());
                Ok(Applied {
                    outcome: Ok(Response::Put(PutItemOutput {
                        consumed_capacity: capacity(p.return_consumed_capacity),
                    })),
                    effect,
                    fence_error,
                    regression,
                })
            }
            Request::Update(u) => {
                self.check_table(&u.table_name)?;
                let key = self.key_of(&u.key, true)?;
                let terms = self.condition(&u.condition_expression)?;
                let sets = parse_update(&u.update_expression)?;
                check_placeholders(
                    &terms,
                    &sets,
                    &u.expression_attribute_names,
                    &u.expression_attribute_values,
                )?;
                let updated_new = match u.return_values {
                    None | Some("NONE") => false,
                    Some("UPDATED_NEW") => true,
                    Some(rv) => return Err(format!("unsupported ReturnValues {rv:?}")),
                };
                let ctx = Ctx {
                    names: &u.expression_attribute_names,
                    values: &u.expression_attribute_values,
                };
                let old = self.items.get(&key).cloned();
                if !ctx.eval(&terms, old.as_ref())? {
                    return Ok(self.ccf(old.as_ref(), u.return_values_on_condition_check_failure));
                }
                let mut new = old.clone().unwrap_or_else(|| u.key.clone());
                let mut changed = Item::new();
                let mut sets_owner = false;
                for a in &sets {
                    let attr = ctx.name(&a.name)?.to_owned();
                    if attr == self.pk || attr == self.sk {
                        return Err(format!(
                            "ValidationException: cannot update key attribute {attr}"
                        ));
                    }
                    if changed.contains_key(&attr) {
                        return Err(format!("ValidationException: {attr} set twice"));
                    }
                    sets_owner |= attr == OWNER;
                    // Every value is computed from the item as it was before the update.
                    changed.insert(attr, ctx.assign(a, old.as_ref())?);
                }
                new.extend(changed.clone());
                if old.is_none() && !sets_owner {
                    return Err(format!(
                        "a holder-shaped UpdateItem created an item: {}",
                        u.update_expression
                    ));
                }
                // A write that sets the owner is a takeover (a new acquisition); one that
                // only moves the version, time or lease is the holder's (renewal, release
                // keeping the item) and extends the acquisition it belongs to.
                let (effect, fence_error, regression) =
                    self.record_write(old.as_ref(), &new, sets_owner);
                self.items.insert(key, new);
                Ok(Applied {
                    outcome: Ok(Response::Update(UpdateItemOutput {
                        attributes: updated_new.then_some(changed),
                        consumed_capacity: capacity(u.return_consumed_capacity),
                    })),
                    effect,
                    fence_error,
                    regression,
                })
            }
            Request::Get(g) => {
                self.check_table(&g.table_name)?;
                let key = self.key_of(&g.key, true)?;
                if !g.consistent_read {
                    return Err("GetItem without ConsistentRead: lock decisions need strongly consistent reads".into());
                }
                if g.projection_expression.is_some() || !g.expression_attribute_names.is_empty() {
                    return Err("unsupported GetItem projection".into());
                }
                Ok(Applied {
                    outcome: Ok(Response::Get(GetItemOutput {
                        item: self.items.get(&key).cloned(),
                        consumed_capacity: capacity(g.return_consumed_capacity),
                    })),
                    effect: Effect::Nothing,
                    fence_error: None,
                    regression: None,
                })
            }
            Request::Delete(d) => {
                self.check_table(&d.table_name)?;
                let key = self.key_of(&d.key, true)?;
                let terms = self.condition(&d.condition_expression)?;
                check_placeholders(
                    &terms,
                    &[],
                    &d.expression_attribute_names,
                    &d.expression_attribute_values,
                )?;
                let ctx = Ctx {
                    names: &d.expression_attribute_names,
                    values: &d.expression_attribute_values,
                };
                let old = self.items.get(&key).cloned();
                if !ctx.eval(&terms, old.as_ref())? {
                    return Ok(self.ccf(old.as_ref(), d.return_values_on_condition_check_failure));
                }
                let effect = match self.items.remove(&key) {
                    Some(old) => Effect::Deleted {
                        acq: self.deleted(&old),
                    },
                    None => Effect::Nothing,
                };
                Ok(Applied {
                    outcome: Ok(Response::Delete(DeleteItemOutput {
                        consumed_capacity: capacity(d.return_consumed_capacity),
                    })),
                    effect,
                    fence_error: None,
                    regression: None,
                })
            }
        }
    }

    /// DynamoDB's TTL: deletes items whose TTL attribute (epoch seconds) is before `now_secs`.
    /// Returns the acquisitions whose items went.
    pub fn ttl_sweep(&mut self, now_secs: u64) -> Vec<u64> {
        let Some(attr) = &self.ttl_attr else {
            return Vec::new();
        };
        let expired: Vec<_> = self
            .items
            .iter()
            .filter(|(_, i)| {
                i.get(attr)
                    .and_then(AttributeValue::as_u64)
                    .is_some_and(|e| e < now_secs)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut gone = Vec::new();
        for k in expired {
            if let Some(i) = self.items.remove(&k) {
                gone.push(self.deleted(&i));
            }
        }
        gone
    }
}
