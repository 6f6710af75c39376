//! The lock item in the TypeScript client's format, and the requests that read and write it.
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | partition key (`lockId`), sort key (`lockGroup`) | S | the lock's id and group |
//! | `ownerName` | S | the holding client's random id |
//! | `recordVersionNumber` | S | random UUID, new on every write |
//! | `leaseDurationInMs` | N | the holder's lease |
//! | `lastUpdatedTimeInMs` | N | the holder's wall clock at its last write |
//! | `additionalAttributes` | M | the caller's attributes |
//! | TTL attribute (optional) | N | epoch seconds, last write + TTL |
//! | `fencingToken` | N | ours only (the TypeScript client ignores it): see [`fence_base`] |

use std::fmt;
use std::time::Duration;

use crate::dynamodb::transact_write_items::{TransactItem, TransactTarget};
use crate::dynamodb::{
    AttributeValue, DeleteItem, GetItem, Item, Names, PutItem, ReturnOnConditionFailure, TOTAL,
    UpdateItem,
};
use crate::options::{TableOptions, attr};
use crate::time::WallTime;

/// A lock's key: group (sort key) and id (partition key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockKey {
    /// The lock group (`lockGroup`).
    pub group: String,
    /// The lock id (`lockId`).
    pub id: String,
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.id)
    }
}

/// What a lock item says: who holds it, with which record version, for how long.
#[derive(Clone, Debug, PartialEq)]
pub struct LockRecord {
    /// The holder's owner name.
    pub owner: String,
    /// The record version number, new on every write.
    pub rvn: String,
    /// The holder's lease.
    pub lease: Duration,
    /// The holder's wall clock at its last write.
    pub last_updated: WallTime,
    /// The caller's additional attributes.
    pub additional: Item,
    /// The fencing token of the acquisition that wrote this record; `None` for records
    /// written by clients that keep none (the TypeScript client).
    pub fence: Option<u64>,
}

/// The fencing token a lock item starts from when it is created (or first taken over from a
/// client that keeps no token): the writer's wall clock in milliseconds times 2^16.
///
/// Every takeover adds one to the stored token in the same conditional write that changes
/// the owner, so while the item exists tokens strictly increase with every acquisition,
/// whatever the clocks do. When the item is deleted (a release in the default mode, TTL, a
/// TypeScript client's release) the count restarts from the next creator's clock: the new
/// token is larger than every earlier one provided the creator's wall clock is ahead of the
/// previous creator's clock at that earlier creation by more than (takeovers since) / 2^16
/// ms — i.e. provided clock skew between clients is smaller than the lifetime of the deleted
/// item — and provided no create sent before the deletion lands after it (a create delayed in
/// the network past its timeout can re-create the item with its older token). With [`LockOptions::keep_item_on_release`](crate::LockOptions::keep_item_on_release)
/// releases keep the item (lease 0), so only TTL deletions, an hour or more after the last
/// write, rely on clocks.
pub fn fence_base(wall: WallTime) -> u64 {
    wall.as_millis().saturating_mul(1 << 16)
}

/// A lock item that does not have the shape of a lock (written by something else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The attribute at fault.
    pub attribute: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lock item attribute {:?}: {}",
            self.attribute, self.reason
        )
    }
}

impl std::error::Error for RecordError {}

impl LockRecord {
    /// Reads a lock item. A missing `additionalAttributes` or `lastUpdatedTimeInMs` is
    /// accepted (empty / epoch); a missing or mistyped owner, version or lease is an error.
    pub fn from_item(item: &Item) -> Result<Self, RecordError> {
        let err = |a: &str, r: &str| RecordError {
            attribute: a.to_owned(),
            reason: r.to_owned(),
        };
        let string = |a: &str| -> Result<String, RecordError> {
            match item.get(a) {
                Some(AttributeValue::S(s)) => Ok(s.clone()),
                Some(v) => Err(err(a, &format!("expected S, found {}", v.type_name()))),
                None => Err(err(a, "missing")),
            }
        };
        let number = |a: &str| -> Result<Option<u64>, RecordError> {
            match item.get(a) {
                Some(v @ AttributeValue::N(_)) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| err(a, "not a non-negative integer")),
                Some(v) => Err(err(a, &format!("expected N, found {}", v.type_name()))),
                None => Ok(None),
            }
        };
        let additional = match item.get(attr::ADDITIONAL) {
            Some(AttributeValue::M(m)) => m.clone(),
            Some(AttributeValue::Null(_)) | None => Item::new(),
            Some(v) => {
                return Err(err(
                    attr::ADDITIONAL,
                    &format!("expected M, found {}", v.type_name()),
                ));
            }
        };
        Ok(LockRecord {
            fence: number(attr::FENCE)?,
            owner: string(attr::OWNER)?,
            rvn: string(attr::RVN)?,
            lease: Duration::from_millis(
                number(attr::LEASE)?.ok_or_else(|| err(attr::LEASE, "missing"))?,
            ),
            last_updated: WallTime::from_millis(number(attr::UPDATED)?.unwrap_or(0)),
            additional,
        })
    }

    /// When the stored lease runs out by the writer's wall clock.
    pub fn stored_expiry(&self) -> WallTime {
        self.last_updated + self.lease
    }
}

/// The table layout and the requests for one lock key.
#[derive(Clone, Debug)]
pub struct Layout {
    pub(crate) table: TableOptions,
    pub(crate) key: LockKey,
}

fn ms(d: Duration) -> AttributeValue {
    AttributeValue::N(d.as_millis().to_string())
}

impl Layout {
    /// The layout of lock `key` in `table`.
    pub fn new(table: TableOptions, key: LockKey) -> Self {
        Layout { table, key }
    }

    /// The item's primary key.
    pub fn key_item(&self) -> Item {
        [
            (
                self.table.partition_key.clone(),
                AttributeValue::s(&self.key.id),
            ),
            (
                self.table.sort_key.clone(),
                AttributeValue::s(&self.key.group),
            ),
        ]
        .into()
    }

    fn ttl_value(&self, wall: WallTime) -> Option<(String, AttributeValue)> {
        self.table.ttl_key.as_ref().map(|k| {
            (
                k.clone(),
                AttributeValue::n((wall + self.table.ttl).as_secs()),
            )
        })
    }

    fn base_names(&self) -> Names {
        let mut n = Names::new();
        n.insert("#pk".into(), self.table.partition_key.clone());
        n.insert("#sk".into(), self.table.sort_key.clone());
        n.insert("#rvn".into(), attr::RVN.into());
        n.insert("#owner".into(), attr::OWNER.into());
        n
    }

    /// A strongly consistent read of the lock item.
    pub fn get(&self) -> GetItem {
        GetItem {
            table_name: self.table.table_name.clone(),
            key: self.key_item(),
            consistent_read: true,
            return_consumed_capacity: Some(TOTAL),
            ..Default::default()
        }
    }

    /// Create the item if there is none: one write, the current item back on failure.
    pub fn create(
        &self,
        owner: &str,
        rvn: &str,
        lease: Duration,
        attrs: &Item,
        wall: WallTime,
    ) -> PutItem {
        let mut item = self.key_item();
        item.insert(attr::OWNER.into(), AttributeValue::s(owner));
        item.insert(attr::RVN.into(), AttributeValue::s(rvn));
        item.insert(attr::LEASE.into(), ms(lease));
        item.insert(attr::UPDATED.into(), AttributeValue::n(wall.as_millis()));
        item.insert(attr::ADDITIONAL.into(), AttributeValue::M(attrs.clone()));
        item.insert(attr::FENCE.into(), AttributeValue::n(fence_base(wall)));
        item.extend(self.ttl_value(wall));
        PutItem {
            table_name: self.table.table_name.clone(),
            item,
            condition_expression: Some(
                "attribute_not_exists(#pk) AND attribute_not_exists(#sk)".into(),
            ),
            expression_attribute_names: crate::dynamodb::names([
                ("#pk", &self.table.partition_key),
                ("#sk", &self.table.sort_key),
            ]),
            return_values_on_condition_check_failure: Some(ReturnOnConditionFailure::AllOld),
            return_consumed_capacity: Some(TOTAL),
            ..Default::default()
        }
    }

    /// Take over a lock whose version `observed` was judged expired (or released). The
    /// fencing token goes up by one in the same write, and comes back in the answer.
    pub fn steal(
        &self,
        observed: &str,
        owner: &str,
        rvn: &str,
        lease: Duration,
        attrs: &Item,
        wall: WallTime,
    ) -> UpdateItem {
        let mut names = self.base_names();
        names.insert("#lease".into(), attr::LEASE.into());
        names.insert("#updated".into(), attr::UPDATED.into());
        names.insert("#attrs".into(), attr::ADDITIONAL.into());
        names.insert("#fence".into(), attr::FENCE.into());
        let mut values: Item = [
            (":base".to_owned(), AttributeValue::n(fence_base(wall))),
            (":one".to_owned(), AttributeValue::n(1)),
            (":observed".to_owned(), AttributeValue::s(observed)),
            (":rvn".to_owned(), AttributeValue::s(rvn)),
            (":owner".to_owned(), AttributeValue::s(owner)),
            (":lease".to_owned(), ms(lease)),
            (":updated".to_owned(), AttributeValue::n(wall.as_millis())),
            (":attrs".to_owned(), AttributeValue::M(attrs.clone())),
        ]
        .into();
        let mut update = "SET #rvn = :rvn, #owner = :owner, #lease = :lease, #updated = :updated, #attrs = :attrs, #fence = if_not_exists(#fence, :base) + :one".to_owned();
        if let Some((k, v)) = self.ttl_value(wall) {
            names.insert("#ttl".into(), k);
            values.insert(":ttl".into(), v);
            update.push_str(", #ttl = :ttl");
        }
        UpdateItem {
            table_name: self.table.table_name.clone(),
            key: self.key_item(),
            update_expression: update,
            condition_expression: Some(
                "attribute_exists(#pk) AND attribute_exists(#sk) AND #rvn = :observed".into(),
            ),
            expression_attribute_names: names,
            expression_attribute_values: values,
            return_values: Some("UPDATED_NEW"),
            return_values_on_condition_check_failure: Some(ReturnOnConditionFailure::AllOld),
            return_consumed_capacity: Some(TOTAL),
        }
    }

    /// `#rvn IN (:v0, :v1, ...) AND #owner = :me`, for writes by the holder. More than one
    /// version is possible after a renewal whose outcome is unknown.
    fn held_condition(&self, versions: &[String], owner: &str, values: &mut Item) -> String {
        let mut list = String::new();
        for (i, v) in versions.iter().enumerate() {
            let name = format!(":v{i}");
            if i > 0 {
                list.push_str(", ");
            }
            list.push_str(&name);
            values.insert(name, AttributeValue::s(v));
        }
        values.insert(":me".into(), AttributeValue::s(owner));
        format!("attribute_exists(#pk) AND #rvn IN ({list}) AND #owner = :me")
    }

    /// Renew: a new version and time, if the item is still ours.
    pub fn renew(
        &self,
        versions: &[String],
        owner: &str,
        new_rvn: &str,
        wall: WallTime,
    ) -> UpdateItem {
        self.holder_update(versions, owner, new_rvn, wall, false)
    }

    /// Release without deleting: the item stays with lease 0 (free to anyone at once, the
    /// TypeScript client included) and keeps its fencing token.
    pub fn release_keeping(
        &self,
        versions: &[String],
        owner: &str,
        new_rvn: &str,
        wall: WallTime,
    ) -> UpdateItem {
        self.holder_update(versions, owner, new_rvn, wall, true)
    }

    /// A write by the holder: new version and time (and lease 0 when `release`), if the item
    /// is still ours.
    fn holder_update(
        &self,
        versions: &[String],
        owner: &str,
        new_rvn: &str,
        wall: WallTime,
        release: bool,
    ) -> UpdateItem {
        let mut names = self.base_names();
        names.remove("#sk");
        names.insert("#updated".into(), attr::UPDATED.into());
        let mut values: Item = [
            (":rvn".to_owned(), AttributeValue::s(new_rvn)),
            (":updated".to_owned(), AttributeValue::n(wall.as_millis())),
        ]
        .into();
        let condition = self.held_condition(versions, owner, &mut values);
        let mut update = "SET #rvn = :rvn, ".to_owned();
        if release {
            names.insert("#lease".into(), attr::LEASE.into());
            values.insert(":zero".into(), AttributeValue::n(0));
            update.push_str("#lease = :zero, ");
        }
        update.push_str("#updated = :updated");
        if let Some((k, v)) = self.ttl_value(wall) {
            names.insert("#ttl".into(), k);
            values.insert(":ttl".into(), v);
            update.push_str(", #ttl = :ttl");
        }
        UpdateItem {
            table_name: self.table.table_name.clone(),
            key: self.key_item(),
            update_expression: update,
            condition_expression: Some(condition),
            expression_attribute_names: names,
            expression_attribute_values: values,
            return_values_on_condition_check_failure: Some(ReturnOnConditionFailure::AllOld),
            return_consumed_capacity: Some(TOTAL),
            ..Default::default()
        }
    }

    /// A transaction action that holds only while the lock is still ours.
    pub fn still_held(&self, versions: &[String], owner: &str) -> TransactItem {
        let mut names = self.base_names();
        names.remove("#sk");
        let mut values = Item::new();
        let condition = self.held_condition(versions, owner, &mut values);
        TransactItem::ConditionCheck(TransactTarget {
            table_name: self.table.table_name.clone(),
            key: self.key_item(),
            condition_expression: Some(condition),
            expression_attribute_names: names,
            expression_attribute_values: values,
            return_values_on_condition_check_failure: Some(ReturnOnConditionFailure::AllOld),
            ..Default::default()
        })
    }

    /// Release: delete the item if it is still ours.
    pub fn release(&self, versions: &[String], owner: &str) -> DeleteItem {
        let mut names = self.base_names();
        names.remove("#sk");
        let mut values = Item::new();
        let condition = self.held_condition(versions, owner, &mut values);
        DeleteItem {
            table_name: self.table.table_name.clone(),
            key: self.key_item(),
            condition_expression: Some(condition),
            expression_attribute_names: names,
            expression_attribute_values: values,
            return_values_on_condition_check_failure: Some(ReturnOnConditionFailure::AllOld),
            return_consumed_capacity: Some(TOTAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Item {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn reads_the_typescript_format() {
        let r = LockRecord::from_item(&item(
            r#"{"lockId":{"S":"a"},"lockGroup":{"S":"g"},"ownerName":{"S":"o"},"recordVersionNumber":{"S":"v"},"leaseDurationInMs":{"N":"500"},"lastUpdatedTimeInMs":{"N":"1700000000000"},"additionalAttributes":{"M":{"x":{"S":"y"}}}}"#,
        ))
        .unwrap();
        assert_eq!((r.owner.as_str(), r.rvn.as_str()), ("o", "v"));
        assert_eq!(r.lease, Duration::from_millis(500));
        assert_eq!(r.stored_expiry().as_millis(), 1_700_000_000_500);
        assert_eq!(r.additional["x"].as_s(), Some("y"));
    }

    #[test]
    fn foreign_items_are_typed_errors() {
        let bad = [
            (
                r#"{"recordVersionNumber":{"S":"v"},"leaseDurationInMs":{"N":"5"}}"#,
                "ownerName",
            ),
            (
                r#"{"ownerName":{"N":"1"},"recordVersionNumber":{"S":"v"},"leaseDurationInMs":{"N":"5"}}"#,
                "ownerName",
            ),
            (
                r#"{"ownerName":{"S":"o"},"recordVersionNumber":{"S":"v"}}"#,
                "leaseDurationInMs",
            ),
            (
                r#"{"ownerName":{"S":"o"},"recordVersionNumber":{"S":"v"},"leaseDurationInMs":{"N":"-5"}}"#,
                "leaseDurationInMs",
            ),
            (
                r#"{"ownerName":{"S":"o"},"recordVersionNumber":{"S":"v"},"leaseDurationInMs":{"S":"5"}}"#,
                "leaseDurationInMs",
            ),
            (
                r#"{"ownerName":{"S":"o"},"recordVersionNumber":{"S":"v"},"leaseDurationInMs":{"N":"5"},"additionalAttributes":{"S":"x"}}"#,
                "additionalAttributes",
            ),
        ];
        for (json, attribute) in bad {
            assert_eq!(
                LockRecord::from_item(&item(json)).unwrap_err().attribute,
                attribute,
                "{json}"
            );
        }
    }

    #[test]
    fn requests_use_the_configured_names() {
        let l = Layout::new(
            TableOptions::new()
                .table_name("locks")
                .partition_key("pk")
                .sort_key("sk")
                .ttl_key("ttl"),
            LockKey {
                group: "g".into(),
                id: "i".into(),
            },
        );
        let wall = WallTime::from_millis(10_000);
        let put = l.create("me", "r1", Duration::from_millis(500), &Item::new(), wall);
        assert_eq!(put.item["pk"].as_s(), Some("i"));
        assert_eq!(put.item["sk"].as_s(), Some("g"));
        assert_eq!(put.item["ttl"].as_u64(), Some(10 + 3600));
        let renew = l.renew(&["a".into(), "b".into()], "me", "c", wall);
        assert_eq!(
            renew.condition_expression.as_deref(),
            Some("attribute_exists(#pk) AND #rvn IN (:v0, :v1) AND #owner = :me")
        );
        assert_eq!(
            renew.update_expression,
            "SET #rvn = :rvn, #updated = :updated, #ttl = :ttl"
        );
        let del = l.release(&["a".into()], "me");
        assert_eq!(del.expression_attribute_values[":v0"].as_s(), Some("a"));
    }
}
