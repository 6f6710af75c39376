//! Client CPU per lock request: encode a lock `PutItem`, sign it (SigV4), decode the answer.
//!
//! ```text
//! cargo bench --bench sign                 # all (about 22 s once built)
//! cargo bench --bench sign -- cycle        # only the full cycles
//! ```
//!
//! Target: one full cycle (encode + sign + decode) <= 10 µs. `encode_sign/*` and
//! `decode/*` are the cycle's parts; `parts/*` split encode+sign further (JSON encoding
//! alone, signing a ready body alone) to show where the time goes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ddb_lock::dynamodb::{
    AttributeValue, Credentials, Endpoint, Error, HttpResponse, Item, PutItem,
    ReturnOnConditionFailure, decode, encode, names, signed_request,
};
use ddb_lock::time::WallTime;

/// 2023-11-14T22:13:20.123Z
const NOW_MS: u64 = 1_700_000_000_123;

/// The lock item a client writes to take a free lock, as `Layout::create` builds it:
/// key, owner, a fresh record version (UUID), lease, wall time, the caller's attributes.
fn lock_item(now_ms: u64) -> Item {
    let additional: Item = [
        (
            "host".to_owned(),
            AttributeValue::s("ip-10-0-12-34.ec2.internal"),
        ),
        ("pid".to_owned(), AttributeValue::n(48_213)),
        ("purpose".to_owned(), AttributeValue::s("nightly-report")),
    ]
    .into();
    [
        (
            "lockId".to_owned(),
            AttributeValue::s("reports/nightly/2023-11-14"),
        ),
        ("lockGroup".to_owned(), AttributeValue::s("batch-jobs")),
        (
            "ownerName".to_owned(),
            AttributeValue::s("c1b6a0f2-3c4d-4e8a-9b7f-2d1e0a9c8b7a"),
        ),
        (
            "recordVersionNumber".to_owned(),
            AttributeValue::s("9b2d6c1e-5a4f-4e21-8d3b-0c7e2a9f1b64"),
        ),
        ("leaseDurationInMs".to_owned(), AttributeValue::n(20_000)),
        ("lastUpdatedTimeInMs".to_owned(), AttributeValue::n(now_ms)),
        (
            "additionalAttributes".to_owned(),
            AttributeValue::M(additional),
        ),
    ]
    .into()
}

fn lock_put() -> PutItem {
    PutItem {
        table_name: "lockTable".into(),
        item: lock_item(NOW_MS),
        condition_expression: Some(
            "attribute_not_exists(#pk) AND attribute_not_exists(#sk)".into(),
        ),
        expression_attribute_names: names([("#pk", "lockId"), ("#sk", "lockGroup")]),
        return_values_on_condition_check_failure: Some(ReturnOnConditionFailure::AllOld),
        return_consumed_capacity: Some("TOTAL"),
        ..Default::default()
    }
}

/// Temporary credentials, as on Lambda/ECS/EC2 roles: the session token is signed too.
fn credentials() -> Credentials {
    Credentials::new(
        "ASIAQXAMPLE7TOKEN0001",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        Some(format!(
            "IQoJb3JpZ2luX2VjEH0aCXVzLWVhc3QtMSJHMEUCIQD{}==",
            "x".repeat(700)
        )),
    )
}

/// DynamoDB's answer to a successful conditional put with `ReturnConsumedCapacity: TOTAL`.
fn ok_response() -> HttpResponse {
    HttpResponse {
        status: 200,
        body: br#"{"ConsumedCapacity":{"CapacityUnits":1.0,"TableName":"lockTable"}}"#.to_vec(),
    }
}

/// DynamoDB's answer when the lock is held: the failed condition with the holder's item
/// (`ReturnValuesOnConditionCheckFailure: ALL_OLD`).
fn held_response() -> HttpResponse {
    let item = serde_json::to_string(&lock_item(NOW_MS - 7_000)).unwrap();
    HttpResponse {
        status: 400,
        body: format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","Item":{item},"message":"The conditional request failed"}}"#
        )
        .into_bytes(),
    }
}

fn benches(c: &mut Criterion) {
    let endpoint = Endpoint::for_region("us-east-1").unwrap();
    let creds = credentials();
    let op = lock_put();
    let wall = WallTime::from_millis(NOW_MS);
    let ok = ok_response();
    let held = held_response();

    let sample = encode(&op, &endpoint, &creds, wall).unwrap();
    let item_json = serde_json::to_vec(&op.item).unwrap().len();
    let item_size = AttributeValue::M(op.item.clone()).size_estimate() - 3;
    println!(
        "lock PutItem: item ~{item_size} B (DynamoDB's count), {item_json} B as JSON; \
         request body {} B; responses: ok {} B, held {} B",
        sample.body.len(),
        ok.body.len(),
        held.body.len()
    );
    assert!(matches!(
        decode::<PutItem>(&held),
        Err(Error::ConditionalCheckFailed { item: Some(_) })
    ));
    assert!(decode::<PutItem>(&ok).is_ok());

    let mut g = c.benchmark_group("encode_sign");
    g.throughput(Throughput::Elements(1));
    g.bench_function("lock_put", |b| {
        b.iter(|| encode(black_box(&op), &endpoint, &creds, black_box(wall)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("parts");
    g.bench_function("json_encode_lock_put", |b| {
        b.iter(|| serde_json::to_vec(black_box(&op)).unwrap())
    });
    let body = sample.body.clone();
    g.bench_function("sign_ready_body", |b| {
        b.iter(|| {
            signed_request(&endpoint, &creds, "PutItem", black_box(body.clone()), wall).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.bench_function("ok_consumed_capacity", |b| {
        b.iter(|| decode::<PutItem>(black_box(&ok)).unwrap())
    });
    g.bench_function("conditional_check_failed_with_item", |b| {
        b.iter(|| decode::<PutItem>(black_box(&held)).unwrap_err())
    });
    g.finish();

    let mut g = c.benchmark_group("cycle");
    g.throughput(Throughput::Elements(1));
    g.bench_function("lock_put_acquired", |b| {
        b.iter(|| {
            let req = encode(black_box(&op), &endpoint, &creds, black_box(wall)).unwrap();
            black_box(&req);
            decode::<PutItem>(black_box(&ok)).unwrap()
        })
    });
    g.bench_function("lock_put_held", |b| {
        b.iter(|| {
            let req = encode(black_box(&op), &endpoint, &creds, black_box(wall)).unwrap();
            black_box(&req);
            decode::<PutItem>(black_box(&held)).unwrap_err()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // 7 benchmarks x (1 s warm-up + 2 s measuring) keeps the whole run near 22 s.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = sign;
    config = config();
    targets = benches
}
criterion_main!(sign);
