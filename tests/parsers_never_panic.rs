//! Bad input never panics: arbitrary bytes and wrong-typed items fed to every parser give
//! typed errors (or values), never a panic.

use ddb_lock::LockRecord;
use ddb_lock::dynamodb::{
    self, AttributeValue, CreateTable, DeleteItem, DescribeTable, GetItem, HttpResponse, Item,
    PutItem, Query, Scan, TransactWriteItems, UpdateItem, UpdateTimeToLive,
};
use proptest::prelude::*;

fn decode_all(status: u16, body: &[u8]) {
    let r = HttpResponse {
        status,
        body: body.to_vec(),
    };
    let _ = dynamodb::decode::<PutItem>(&r);
    let _ = dynamodb::decode::<UpdateItem>(&r);
    let _ = dynamodb::decode::<DeleteItem>(&r);
    let _ = dynamodb::decode::<GetItem>(&r);
    let _ = dynamodb::decode::<CreateTable>(&r);
    let _ = dynamodb::decode::<DescribeTable>(&r);
    let _ = dynamodb::decode::<UpdateTimeToLive>(&r);
    let _ = dynamodb::decode::<Query>(&r);
    let _ = dynamodb::decode::<Scan>(&r);
    let _ = dynamodb::decode::<TransactWriteItems>(&r);
    if let Ok(out) = dynamodb::decode::<GetItem>(&r)
        && let Some(item) = out.item
    {
        let _ = LockRecord::from_item(&item);
    }
}

/// Values of every type, nested a few levels, with lock-ish names likely to collide.
fn value() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        ".{0,12}".prop_map(AttributeValue::S),
        "-?[0-9]{0,25}(\\.[0-9]{0,3})?".prop_map(AttributeValue::N),
        "[A-Za-z0-9+/=]{0,8}".prop_map(AttributeValue::B),
        any::<bool>().prop_map(AttributeValue::Bool),
        any::<bool>().prop_map(AttributeValue::Null),
        prop::collection::vec(".{0,4}", 0..3).prop_map(AttributeValue::SS),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
            prop::collection::btree_map(name(), inner, 0..4).prop_map(AttributeValue::M),
        ]
    })
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ownerName".to_owned()),
        Just("recordVersionNumber".to_owned()),
        Just("leaseDurationInMs".to_owned()),
        Just("lastUpdatedTimeInMs".to_owned()),
        Just("additionalAttributes".to_owned()),
        Just("lockId".to_owned()),
        "[a-z]{1,6}",
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop::collection::btree_map(name(), value(), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(status in prop_oneof![Just(200u16), Just(400), Just(500), any::<u16>()],
                       body in prop::collection::vec(any::<u8>(), 0..300)) {
        decode_all(status, &body);
    }

    #[test]
    fn arbitrary_json_shapes(status in prop_oneof![Just(200u16), Just(400), Just(503)],
                             item in item(),
                             kind in prop_oneof![
                                 Just("ConditionalCheckFailedException"), Just("ThrottlingException"),
                                 Just("TransactionCanceledException"), Just("Nonsense"), Just("")],
                             truncate in any::<prop::sample::Index>()) {
        let item_json = serde_json::to_string(&item).unwrap();
        for body in [
            format!(r#"{{"Item":{item_json},"__type":"x#{kind}","message":"m"}}"#),
            format!(r#"{{"Attributes":{item_json},"Items":[{item_json}],"Table":{{"KeySchema":{item_json}}}}}"#),
            format!(r#"{{"__type":"x#{kind}","CancellationReasons":[{{"Code":"C","Item":{item_json}}},{item_json}]}}"#),
        ] {
            decode_all(status, body.as_bytes());
            let cut = truncate.index(body.len() + 1);
            decode_all(status, &body.as_bytes()[..cut]);
        }
    }

    #[test]
    fn wrong_typed_lock_items_are_typed_errors(item in item()) {
        match LockRecord::from_item(&item) {
            Ok(r) => {
                prop_assert_eq!(Some(r.owner.as_str()), item.get("ownerName").and_then(AttributeValue::as_s));
                prop_assert_eq!(Some(r.rvn.as_str()), item.get("recordVersionNumber").and_then(AttributeValue::as_s));
            }
            Err(e) => prop_assert!(!e.attribute.is_empty() && !e.to_string().is_empty()),
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        r#"{{"Item":{{"a":{}{}}}}}"#,
        r#"{"L":["#.repeat(10_000),
        "]}".repeat(10_000)
    );
    decode_all(200, deep.as_bytes());
    let r = HttpResponse {
        status: 200,
        body: deep.into_bytes(),
    };
    assert!(matches!(
        dynamodb::decode::<GetItem>(&r),
        Err(dynamodb::Error::Malformed { .. })
    ));
}
