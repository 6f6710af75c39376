//! The simulated host's wire: DynamoDB's HTTP form of what the real `LockClient` sends and
//! what it gets back.
//!
//! The client hands its transport signed [`HttpRequest`]s (url, lower-case headers, JSON
//! body) and reads [`HttpResponse`]s (status, body). The simulated table (`db.rs`) works on
//! the crate's typed operations, so the simulated host needs both directions:
//!
//! * [`decode_request`] checks what a signed DynamoDB request must carry (its headers and
//!   SigV4 `authorization`), then parses the body back into the crate's typed structs
//!   ([`WireOp`]). It understands exactly the fields those structs have and refuses anything
//!   else — an unknown operation, field or value, a wrong JSON type, an empty map the crate
//!   never sends — with an error naming it, so a change in what the client sends fails the
//!   simulation instead of being half-understood. It round-trips exactly what
//!   `ddb_lock::dynamodb::encode` produces.
//! * [`encode_response`] turns an outcome ([`WireOk`] or an [`Error`]) into the response
//!   DynamoDB would send, such that `ddb_lock::dynamodb::decode` gives back exactly that
//!   outcome ([`decode_response`] does the decoding per operation). What cannot be encoded
//!   that way is refused: [`Error::Transport`] (a transport failure has no response), errors
//!   whose wire form would decode as another error, success outputs of another operation.

use std::collections::BTreeSet;
use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use ddb_lock::core::{Request, Response};
use ddb_lock::dynamodb::transact_write_items::{
    TransactItem, TransactTarget, TransactWriteItemsOutput,
};
use ddb_lock::dynamodb::{
    self, CancellationReason, ConsumedCapacity, DeleteItem, Error, GetItem, HttpRequest,
    HttpResponse, Item, Names, PutItem, ReturnOnConditionFailure, TransactWriteItems, UpdateItem,
};

/// `x-amz-target` is this followed by the operation name.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// An error's `__type` is this followed by the error name.
pub const ERROR_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";
/// The only content type DynamoDB's JSON protocol (1.0) accepts.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// DynamoDB's message on a failed condition (a `ConditionalCheckFailedException`, or a
/// `ConditionalCheckFailed` cancellation reason).
pub const CONDITION_FAILED_MESSAGE: &str = "The conditional request failed";

/// `ReturnValues` values DynamoDB knows.
const RETURN_VALUES: [&str; 5] = ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"];
/// `ReturnConsumedCapacity` values DynamoDB knows.
const RETURN_CAPACITY: [&str; 3] = ["INDEXES", "TOTAL", "NONE"];

/// A decoded request: one of the lock core's single-item operations, or a transaction
/// (`Lock::write_if_held`).
#[derive(Clone, Debug, PartialEq)]
pub enum WireOp {
    /// `PutItem`, `UpdateItem`, `GetItem` or `DeleteItem`.
    Core(Request),
    /// `TransactWriteItems`.
    Transact(TransactWriteItems),
}

impl WireOp {
    /// The operation's name, as in `x-amz-target` (`"PutItem"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            WireOp::Core(Request::Put(_)) => "PutItem",
            WireOp::Core(Request::Update(_)) => "UpdateItem",
            WireOp::Core(Request::Get(_)) => "GetItem",
            WireOp::Core(Request::Delete(_)) => "DeleteItem",
            WireOp::Transact(_) => "TransactWriteItems",
        }
    }

    /// The tables the operation names, in order of first mention, each once.
    pub fn tables(&self) -> Vec<&str> {
        let named: Vec<&str> = match self {
            WireOp::Core(Request::Put(p)) => vec![&p.table_name],
            WireOp::Core(Request::Update(u)) => vec![&u.table_name],
            WireOp::Core(Request::Get(g)) => vec![&g.table_name],
            WireOp::Core(Request::Delete(d)) => vec![&d.table_name],
            WireOp::Transact(t) => t
                .transact_items
                .iter()
                .map(|i| target(i).table_name.as_str())
                .collect(),
        };
        let mut out: Vec<&str> = Vec::new();
        for t in named {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}

/// The shared part of one transaction action.
pub fn target(item: &TransactItem) -> &TransactTarget {
    match item {
        TransactItem::ConditionCheck(t)
        | TransactItem::Put(t)
        | TransactItem::Update(t)
        | TransactItem::Delete(t) => t,
    }
}

/// A successful answer: a core operation's output, or a transaction's.
#[derive(Clone, Debug, PartialEq)]
pub enum WireOk {
    /// The output of `PutItem`, `UpdateItem`, `GetItem` or `DeleteItem`.
    Core(Response),
    /// The output of `TransactWriteItems`.
    Transact(TransactWriteItemsOutput),
}

// --- requests -----------------------------------------------------------------------------

/// Decodes a signed request the client handed its transport. See the module docs for what
/// is checked and refused.
pub fn decode_request(req: &HttpRequest) -> Result<WireOp, String> {
    let operation = check_headers(req)?;
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| format!("{operation}: the body is not JSON: {e}"))?;
    Ok(match operation {
        "PutItem" => WireOp::Core(Request::Put(put_item(&body)?)),
        "UpdateItem" => WireOp::Core(Request::Update(update_item(&body)?)),
        "GetItem" => WireOp::Core(Request::Get(get_item(&body)?)),
        "DeleteItem" => WireOp::Core(Request::Delete(delete_item(&body)?)),
        "TransactWriteItems" => WireOp::Transact(transact_write_items(&body)?),
        other => return Err(format!("unsupported operation {other:?}")),
    })
}

/// Checks the url and the headers of a signed request; returns the operation name.
///
/// Required: header names in lower case and each once; no `host` (the client never sets it:
/// the transport derives it from the url, and it is signed as such); `content-type:
/// application/x-amz-json-1.0`; `x-amz-date` (`YYYYMMDDTHHMMSSZ`); `x-amz-target:
/// DynamoDB_20120810.<Operation>`; `authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/
/// <region>/dynamodb/aws4_request, SignedHeaders=<list>, Signature=<64 hex>`, with the
/// credential date that of `x-amz-date`, and `host`, `content-type`, `x-amz-date` and
/// `x-amz-target` among the signed headers, each of which (but `host`) is present.
fn check_headers(req: &HttpRequest) -> Result<&str, String> {
    let authority = req
        .url
        .strip_prefix("https://")
        .or_else(|| req.url.strip_prefix("http://"))
        .ok_or_else(|| format!("url {:?} is not http(s)://host[:port]", req.url))?;
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!("url {:?} is not http(s)://host[:port]", req.url));
    }
    let mut names = BTreeSet::new();
    for (name, _) in &req.headers {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("header name {name:?} is not lower case"));
        }
        if !names.insert(name.as_str()) {
            return Err(format!("header {name:?} appears twice"));
        }
    }
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("no {n} header"))
    };
    if names.contains("host") {
        return Err("a host header: the client never sets one (it comes from the url)".into());
    }
    let content_type = header("content-type")?;
    if content_type != CONTENT_TYPE {
        return Err(format!("content-type {content_type:?}, not {CONTENT_TYPE}"));
    }
    let date = header("x-amz-date")?;
    let b = date.as_bytes();
    let date_ok = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !date_ok {
        return Err(format!("x-amz-date {date:?} is not YYYYMMDDTHHMMSSZ"));
    }
    let auth = header("authorization")?;
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or("authorization does not start with \"AWS4-HMAC-SHA256 Credential=\"")?;
    let parts: Vec<&str> = fields.split(", ").collect();
    let &[credential, signed, signature] = parts.as_slice() else {
        return Err("authorization is not Credential=.., SignedHeaders=.., Signature=..".into());
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let scope_ok = scope.len() == 5
        && !scope[0].is_empty()
        && scope[1] == &date[..8]
        && !scope[2].is_empty()
        && scope[3] == "dynamodb"
        && scope[4] == "aws4_request";
    if !scope_ok {
        return Err(format!(
            "authorization credential scope {:?} is not <key>/{}/<region>/dynamodb/aws4_request",
            scope.get(1..).map(|s| s.join("/")).unwrap_or_default(),
            &date[..8]
        ));
    }
    let signed: Vec<&str> = signed
        .strip_prefix("SignedHeaders=")
        .ok_or("authorization has no SignedHeaders=")?
        .split(';')
        .collect();
    for must in ["content-type", "host", "x-amz-date", "x-amz-target"] {
        if !signed.contains(&must) {
            return Err(format!("{must} is not among the signed headers {signed:?}"));
        }
    }
    if let Some(missing) = signed.iter().find(|&&s| s != "host" && !names.contains(s)) {
        return Err(format!("signed header {missing:?} is not sent"));
    }
    if names.contains("x-amz-security-token") && !signed.contains(&"x-amz-security-token") {
        return Err("x-amz-security-token is sent but not signed".into());
    }
    let hex = signature
        .strip_prefix("Signature=")
        .ok_or("authorization has no Signature=")?;
    if hex.len() != 64 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("signature {hex:?} is not 64 lower-case hex digits"));
    }
    header("x-amz-target")?
        .strip_prefix(TARGET_PREFIX)
        .ok_or_else(|| format!("x-amz-target does not start with {TARGET_PREFIX}"))
}

/// A JSON object read field by field. Every field read is remembered; [`Fields::finish`]
/// refuses the ones never read (unknown to the crate's struct).
struct Fields<'a> {
    what: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn of(v: &'a Value, what: impl Into<String>) -> Result<Self, String> {
        let what = what.into();
        match v {
            Value::Object(map) => Ok(Fields {
                what,
                map,
                known: Vec::new(),
            }),
            other => Err(format!("{what} is not a JSON object: {other}")),
        }
    }

    fn err(&self, field: &str, why: impl Display) -> String {
        format!("{}.{field}: {why}", self.what)
    }

    fn get(&mut self, field: &'static str) -> Option<&'a Value> {
        self.known.push(field);
        self.map.get(field)
    }

    fn parse<T: DeserializeOwned>(&mut self, field: &'static str) -> Result<Option<T>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| self.err(field, e)),
        }
    }

    fn required<T: DeserializeOwned>(&mut self, field: &'static str) -> Result<T, String> {
        self.parse(field)?.ok_or_else(|| self.err(field, "missing"))
    }

    fn string(&mut self, field: &'static str) -> Result<Option<String>, String> {
        self.parse(field)
    }

    fn boolean(&mut self, field: &'static str) -> Result<Option<bool>, String> {
        self.parse(field)
    }

    /// A map the crate leaves out when empty: absent is empty, present and empty is refused
    /// (DynamoDB refuses empty expression maps; the crate never sends one).
    fn map_or_empty<T: DeserializeOwned + Default + IsEmpty>(
        &mut self,
        field: &'static str,
    ) -> Result<T, String> {
        match self.parse::<T>(field)? {
            None => Ok(T::default()),
            Some(m) if m.is_empty() => Err(self.err(field, "empty (the crate never sends one)")),
            Some(m) => Ok(m),
        }
    }

    /// A string field whose value must be one of `allowed`, as the `&'static str` the
    /// crate's structs hold.
    fn choice(
        &mut self,
        field: &'static str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, String> {
        match self.string(field)? {
            None => Ok(None),
            Some(s) => allowed
                .iter()
                .find(|a| **a == s)
                .map(|a| Some(*a))
                .ok_or_else(|| self.err(field, format!("unknown value {s:?}"))),
        }
    }

    fn on_failure(&mut self) -> Result<Option<ReturnOnConditionFailure>, String> {
        let field = "ReturnValuesOnConditionCheckFailure";
        Ok(match self.choice(field, &["ALL_OLD", "NONE"])? {
            None => None,
            Some("ALL_OLD") => Some(ReturnOnConditionFailure::AllOld),
            Some(_) => Some(ReturnOnConditionFailure::None),
        })
    }

    fn finish(self) -> Result<(), String> {
        match self.map.keys().find(|k| !self.known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(format!("{}: unknown field {k:?}", self.what)),
        }
    }
}

/// Maps whose emptiness matters to the decoder.
trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<K, V> IsEmpty for std::collections::BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        std::collections::BTreeMap::is_empty(self)
    }
}

fn put_item(body: &Value) -> Result<PutItem, String> {
    let mut f = Fields::of(body, "PutItem")?;
    let op = PutItem {
        table_name: f.required("TableName")?,
        item: f.required("Item")?,
        condition_expression: f.string("ConditionExpression")?,
        expression_attribute_names: f.map_or_empty::<Names>("ExpressionAttributeNames")?,
        expression_attribute_values: f.map_or_empty::<Item>("ExpressionAttributeValues")?,
        return_values_on_condition_check_failure: f.on_failure()?,
        return_consumed_capacity: f.choice("ReturnConsumedCapacity", &RETURN_CAPACITY)?,
    };
    f.finish()?;
    Ok(op)
}

fn update_item(body: &Value) -> Result<UpdateItem, String> {
    let mut f = Fields::of(body, "UpdateItem")?;
    let op = UpdateItem {
        table_name: f.required("TableName")?,
        key: f.required("Key")?,
        update_expression: f.required("UpdateExpression")?,
        condition_expression: f.string("ConditionExpression")?,
        expression_attribute_names: f.map_or_empty::<Names>("ExpressionAttributeNames")?,
        expression_attribute_values: f.map_or_empty::<Item>("ExpressionAttributeValues")?,
        return_values: f.choice("ReturnValues", &RETURN_VALUES)?,
        return_values_on_condition_check_failure: f.on_failure()?,
        return_consumed_capacity: f.choice("ReturnConsumedCapacity", &RETURN_CAPACITY)?,
    };
    f.finish()?;
    Ok(op)
}

fn get_item(body: &Value) -> Result<GetItem, String> {
    let mut f = Fields::of(body, "GetItem")?;
    let op = GetItem {
        table_name: f.required("TableName")?,
        key: f.required("Key")?,
        consistent_read: f.boolean("ConsistentRead")?.unwrap_or(false),
        projection_expression: f.string("ProjectionExpression")?,
        expression_attribute_names: f.map_or_empty::<Names>("ExpressionAttributeNames")?,
        return_consumed_capacity: f.choice("ReturnConsumedCapacity", &RETURN_CAPACITY)?,
    };
    f.finish()?;
    Ok(op)
}

fn delete_item(body: &Value) -> Result<DeleteItem, String> {
    let mut f = Fields::of(body, "DeleteItem")?;
    let op = DeleteItem {
        table_name: f.required("TableName")?,
        key: f.required("Key")?,
        condition_expression: f.string("ConditionExpression")?,
        expression_attribute_names: f.map_or_empty::<Names>("ExpressionAttributeNames")?,
        expression_attribute_values: f.map_or_empty::<Item>("ExpressionAttributeValues")?,
        return_values_on_condition_check_failure: f.on_failure()?,
        return_consumed_capacity: f.choice("ReturnConsumedCapacity", &RETURN_CAPACITY)?,
    };
    f.finish()?;
    Ok(op)
}

fn transact_write_items(body: &Value) -> Result<TransactWriteItems, String> {
    let mut f = Fields::of(body, "TransactWriteItems")?;
    let items = match f.get("TransactItems") {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(format!(
                "TransactWriteItems.TransactItems is not a list: {other}"
            ));
        }
        None => return Err("TransactWriteItems.TransactItems: missing".into()),
    };
    let transact_items = items
        .iter()
        .enumerate()
        .map(|(i, v)| transact_item(v, i))
        .collect::<Result<Vec<_>, _>>()?;
    let op = TransactWriteItems {
        transact_items,
        client_request_token: f.string("ClientRequestToken")?,
        return_consumed_capacity: f.choice("ReturnConsumedCapacity", &RETURN_CAPACITY)?,
    };
    f.finish()?;
    Ok(op)
}

/// One action: an object with exactly one of `ConditionCheck`, `Put`, `Update`, `Delete`,
/// holding the fields DynamoDB defines for that action (a `Put` has `Item` and no `Key`,
/// only an `Update` has `UpdateExpression`, a `ConditionCheck` needs its condition).
fn transact_item(v: &Value, index: usize) -> Result<TransactItem, String> {
    let what = format!("TransactItems[{index}]");
    let map = match v {
        Value::Object(m) if m.len() == 1 => m,
        other => {
            return Err(format!(
                "{what} is not an object with exactly one action: {other}"
            ));
        }
    };
    let (kind, body) = map.iter().next().expect("one entry");
    if !["ConditionCheck", "Put", "Update", "Delete"].contains(&kind.as_str()) {
        return Err(format!("{what}: unknown action {kind:?}"));
    }
    let mut f = Fields::of(body, format!("{what}.{kind}"))?;
    let mut t = TransactTarget {
        table_name: f.required("TableName")?,
        ..Default::default()
    };
    if kind == "Put" {
        t.item = f.map_or_empty::<Item>("Item")?;
        if t.item.is_empty() {
            return Err(f.err("Item", "missing"));
        }
    } else {
        t.key = f.map_or_empty::<Item>("Key")?;
        if t.key.is_empty() {
            return Err(f.err("Key", "missing"));
        }
    }
    if kind == "Update" {
        t.update_expression = Some(f.required("UpdateExpression")?);
    }
    t.condition_expression = if kind == "ConditionCheck" {
        Some(f.required("ConditionExpression")?)
    } else {
        f.string("ConditionExpression")?
    };
    t.expression_attribute_names = f.map_or_empty::<Names>("ExpressionAttributeNames")?;
    t.expression_attribute_values = f.map_or_empty::<Item>("ExpressionAttributeValues")?;
    t.return_values_on_condition_check_failure = f.on_failure()?;
    f.finish()?;
    Ok(match kind.as_str() {
        "ConditionCheck" => TransactItem::ConditionCheck(t),
        "Put" => TransactItem::Put(t),
        "Update" => TransactItem::Update(t),
        _ => TransactItem::Delete(t),
    })
}

// --- responses ----------------------------------------------------------------------------

/// Encodes `outcome`, the answer to `op`, as DynamoDB sends it:
///
/// * success: HTTP 200; `ConsumedCapacity` (`{"TableName":..,"CapacityUnits":..}`, a list per
///   table for a transaction, in the order `op` names the tables) when the output has it,
///   `UpdateItem`'s `Attributes`, `GetItem`'s `Item` (absent when there is none); a
///   transaction without capacity is `{}`;
/// * errors: HTTP 400 (or the status of `Server` / `Service`) and
///   `{"__type":"com.amazonaws.dynamodb.v20120810#<Name>","message":..}`, with the `Item`
///   of a failed condition, and `CancellationReasons` (and `Message`, as DynamoDB spells it
///   there) of a cancelled transaction. `Server` with no code has no `__type`;
/// * [`Error::Malformed`]: status 200 with a truncated JSON body (or, for a 4xx status, an
///   HTML page). Its `reason` is the decoder's own and cannot be chosen.
///
/// Refused (`Err`): [`Error::Transport`] (no response exists: the transport must fail the
/// request itself), an error whose wire form would decode as another one (a `Throttled`
/// whose code is not a throttling code, a `Server` below 500, ...), a `Malformed` with a
/// 5xx status (it decodes as `Server`), an output of another operation than `op`, a
/// capacity that is not a finite number, or a transaction capacity list that does not have
/// one entry per table.
pub fn encode_response(
    op: &WireOp,
    outcome: &Result<WireOk, Error>,
) -> Result<HttpResponse, String> {
    match outcome {
        Ok(ok) => Ok(HttpResponse {
            status: 200,
            body: success_body(op, ok)?.to_string().into_bytes(),
        }),
        Err(Error::Transport(e)) => Err(format!(
            "a transport failure ({e}) has no response to encode: fail the request instead"
        )),
        Err(Error::Malformed { status, .. }) => malformed(op, *status),
        Err(e) => {
            let (status, body) = error_body(e)?;
            let resp = HttpResponse {
                status,
                body: body.to_string().into_bytes(),
            };
            // The mapping above is meant to be exact; refuse what would decode otherwise.
            let back = Error::from_response(resp.status, &resp.body);
            if back != *e {
                return Err(format!(
                    "{e:?} cannot be encoded: its wire form decodes as {back:?}"
                ));
            }
            Ok(resp)
        }
    }
}

/// Decodes `resp` as the answer to `op`, exactly as the client does
/// (`ddb_lock::dynamodb::decode::<Op>`).
pub fn decode_response(op: &WireOp, resp: &HttpResponse) -> Result<WireOk, Error> {
    use dynamodb::decode;
    match op {
        WireOp::Core(Request::Put(_)) => {
            decode::<PutItem>(resp).map(|o| WireOk::Core(Response::Put(o)))
        }
        WireOp::Core(Request::Update(_)) => {
            decode::<UpdateItem>(resp).map(|o| WireOk::Core(Response::Update(o)))
        }
        WireOp::Core(Request::Get(_)) => {
            decode::<GetItem>(resp).map(|o| WireOk::Core(Response::Get(o)))
        }
        WireOp::Core(Request::Delete(_)) => {
            decode::<DeleteItem>(resp).map(|o| WireOk::Core(Response::Delete(o)))
        }
        WireOp::Transact(_) => decode::<TransactWriteItems>(resp).map(WireOk::Transact),
    }
}

fn number(x: f64, what: &str) -> Result<Value, String> {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| format!("{what} {x} is not a finite number"))
}

fn capacity_json(table: &str, c: &ConsumedCapacity) -> Result<Value, String> {
    let mut m = Map::new();
    m.insert("TableName".into(), json!(table));
    for (k, v) in [
        ("CapacityUnits", c.capacity_units),
        ("ReadCapacityUnits", c.read_capacity_units),
        ("WriteCapacityUnits", c.write_capacity_units),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), number(v, k)?);
        }
    }
    Ok(Value::Object(m))
}

fn item_json(item: &Item) -> Value {
    serde_json::to_value(item).expect("items always encode")
}

fn put_capacity(
    m: &mut Map<String, Value>,
    table: &str,
    c: &Option<ConsumedCapacity>,
) -> Result<(), String> {
    if let Some(c) = c {
        m.insert("ConsumedCapacity".into(), capacity_json(table, c)?);
    }
    Ok(())
}

fn success_body(op: &WireOp, ok: &WireOk) -> Result<Value, String> {
    let mut m = Map::new();
    match (op, ok) {
        (WireOp::Core(Request::Put(p)), WireOk::Core(Response::Put(o))) => {
            put_capacity(&mut m, &p.table_name, &o.consumed_capacity)?
        }
        (WireOp::Core(Request::Delete(d)), WireOk::Core(Response::Delete(o))) => {
            put_capacity(&mut m, &d.table_name, &o.consumed_capacity)?
        }
        (WireOp::Core(Request::Update(u)), WireOk::Core(Response::Update(o))) => {
            put_capacity(&mut m, &u.table_name, &o.consumed_capacity)?;
            if let Some(a) = &o.attributes {
                m.insert("Attributes".into(), item_json(a));
            }
        }
        (WireOp::Core(Request::Get(g)), WireOk::Core(Response::Get(o))) => {
            put_capacity(&mut m, &g.table_name, &o.consumed_capacity)?;
            if let Some(i) = &o.item {
                m.insert("Item".into(), item_json(i));
            }
        }
        (WireOp::Transact(_), WireOk::Transact(o)) => {
            if let Some(list) = &o.consumed_capacity {
                let tables = op.tables();
                if list.len() != tables.len() {
                    return Err(format!(
                        "{} capacity entries for the {} tables {tables:?}",
                        list.len(),
                        tables.len()
                    ));
                }
                let list = tables
                    .iter()
                    .zip(list)
                    .map(|(t, c)| capacity_json(t, c))
                    .collect::<Result<Vec<_>, _>>()?;
                m.insert("ConsumedCapacity".into(), Value::Array(list));
            }
        }
        (op, ok) => return Err(format!("{ok:?} is not an answer to {}", op.name())),
    }
    Ok(Value::Object(m))
}

/// `(status, body)` of an error other than `Transport` and `Malformed`.
fn error_body(e: &Error) -> Result<(u16, Value), String> {
    let typed = |code: &str, message: &str| {
        let kind = format!("{ERROR_PREFIX}{code}");
        json!({ "__type": kind, "message": message })
    };
    Ok(match e {
        Error::ConditionalCheckFailed { item } => {
            let mut body = typed(e.code(), CONDITION_FAILED_MESSAGE);
            if let Some(item) = item {
                body["Item"] = item_json(item);
            }
            (400, body)
        }
        Error::TransactionCanceled { reasons, message } => {
            let reasons: Vec<Value> = reasons.iter().map(reason_json).collect();
            (
                400,
                json!({
                    "__type": format!("{ERROR_PREFIX}TransactionCanceledException"),
                    "CancellationReasons": reasons,
                    "Message": message,
                }),
            )
        }
        Error::Throttled { code, message } | Error::Access { code, message } => {
            (400, typed(code, message))
        }
        Error::TransactionConflict { message }
        | Error::NotFound { message }
        | Error::Validation { message } => (400, typed(e.code(), message)),
        Error::Server {
            status,
            code,
            message,
        } if code.is_empty() => (*status, json!({ "message": message })),
        Error::Server {
            status,
            code,
            message,
        }
        | Error::Service {
            status,
            code,
            message,
        } => (*status, typed(code, message)),
        other => return Err(format!("{other:?} has no wire form here")),
    })
}

fn reason_json(r: &CancellationReason) -> Value {
    let mut m = Map::new();
    if let Some(c) = &r.code {
        m.insert("Code".into(), json!(c));
    }
    if let Some(i) = &r.item {
        m.insert("Item".into(), item_json(i));
    }
    if let Some(msg) = &r.message {
        m.insert("Message".into(), json!(msg));
    }
    Value::Object(m)
}

/// A response the client cannot read: for 200 the start of the body DynamoDB would have
/// sent (cut in the middle, so never valid JSON), for other statuses below 500 an HTML page.
fn malformed(op: &WireOp, status: u16) -> Result<HttpResponse, String> {
    let body = match status {
        200 => {
            let table = op.tables().first().copied().unwrap_or_default();
            let mut full = json!({"ConsumedCapacity": {"TableName": table, "CapacityUnits": 1.0}})
                .to_string()
                .into_bytes();
            full.truncate(full.len() / 2);
            full
        }
        100..=499 => b"<html><body>Bad Gateway</body></html>".to_vec(),
        _ => {
            return Err(format!(
                "Malformed with status {status} cannot be encoded (5xx garbage decodes as Server)"
            ));
        }
    };
    Ok(HttpResponse { status, body })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ddb_lock::TableOptions;
    use ddb_lock::core::{Layout, LockKey, Rng};
    use ddb_lock::dynamodb::{
        AttributeValue, Credentials, Endpoint, delete_item::DeleteItemOutput,
        get_item::GetItemOutput, put_item::PutItemOutput, update_item::UpdateItemOutput,
    };
    use ddb_lock::time::WallTime;

    use super::*;

    fn layouts() -> Vec<Layout> {
        let key = LockKey {
            group: "grüppe ✓".into(),
            id: "the \"lock\"".into(),
        };
        vec![
            Layout::new(TableOptions::new().table_name("locks"), key.clone()),
            Layout::new(
                TableOptions::new()
                    .table_name("custom")
                    .partition_key("pk")
                    .sort_key("sk")
                    .ttl_key("expiresAt")
                    .ttl(Duration::from_secs(60)),
                key,
            ),
        ]
    }

    /// Every request the core and `write_if_held` send, built by `Layout`.
    fn requests() -> Vec<WireOp> {
        let wall = WallTime::from_millis(1_700_000_000_123);
        let lease = Duration::from_millis(20_000);
        let attrs: Item = [
            ("s".to_owned(), AttributeValue::s("x")),
            (
                "m".to_owned(),
                AttributeValue::M([("n".to_owned(), AttributeValue::N("-1.5".into()))].into()),
            ),
        ]
        .into();
        let versions = vec!["v1".to_owned(), "v2".to_owned(), "v3".to_owned()];
        let mut out = Vec::new();
        for l in layouts() {
            let data = TransactItem::Put(TransactTarget {
                table_name: "data".into(),
                item: [("id".to_owned(), AttributeValue::s("d"))].into(),
                ..Default::default()
            });
            out.extend([
                WireOp::Core(Request::Put(l.create("me", "r1", lease, &attrs, wall))),
                WireOp::Core(Request::Put(l.create(
                    "me",
                    "r1",
                    lease,
                    &Item::new(),
                    wall,
                ))),
                WireOp::Core(Request::Update(
                    l.steal("r0", "me", "r1", lease, &attrs, wall),
                )),
                WireOp::Core(Request::Update(l.renew(&versions, "me", "r4", wall))),
                WireOp::Core(Request::Update(l.release_keeping(
                    &versions[..1],
                    "me",
                    "r4",
                    wall,
                ))),
                WireOp::Core(Request::Delete(l.release(&versions, "me"))),
                WireOp::Core(Request::Get(l.get())),
                WireOp::Transact(TransactWriteItems {
                    transact_items: vec![l.still_held(&versions, "me"), data.clone()],
                    client_request_token: None,
                    return_consumed_capacity: Some("TOTAL"),
                }),
                WireOp::Transact(TransactWriteItems {
                    transact_items: vec![
                        l.still_held(&versions[1..], "me"),
                        TransactItem::Update(TransactTarget {
                            table_name: "data".into(),
                            key: [("id".to_owned(), AttributeValue::s("d"))].into(),
                            update_expression: Some("SET #p = :p".into()),
                            condition_expression: Some("attribute_exists(#p)".into()),
                            expression_attribute_names: ddb_lock::dynamodb::names([("#p", "p")]),
                            expression_attribute_values: [(":p".to_owned(), AttributeValue::n(3))]
                                .into(),
                            return_values_on_condition_check_failure: Some(
                                ReturnOnConditionFailure::None,
                            ),
                            ..Default::default()
                        }),
                        TransactItem::Delete(TransactTarget {
                            table_name: "data".into(),
                            key: [("id".to_owned(), AttributeValue::s("e"))].into(),
                            ..Default::default()
                        }),
                    ],
                    client_request_token: Some("token-1".into()),
                    return_consumed_capacity: None,
                }),
            ]);
        }
        out
    }

    fn encode(op: &WireOp, session: bool) -> HttpRequest {
        let ep = Endpoint::custom("http://127.0.0.1:8000", "us-east-1", false).unwrap();
        let creds = Credentials::new("AKID", "secret", session.then(|| "tok".to_owned()));
        let now = WallTime::from_millis(1_700_000_000_000);
        match op {
            WireOp::Core(Request::Put(o)) => dynamodb::encode(o, &ep, &creds, now),
            WireOp::Core(Request::Update(o)) => dynamodb::encode(o, &ep, &creds, now),
            WireOp::Core(Request::Get(o)) => dynamodb::encode(o, &ep, &creds, now),
            WireOp::Core(Request::Delete(o)) => dynamodb::encode(o, &ep, &creds, now),
            WireOp::Transact(o) => dynamodb::encode(o, &ep, &creds, now),
        }
        .unwrap()
    }

    #[test]
    fn decodes_what_the_crate_encodes() {
        for op in requests() {
            for session in [false, true] {
                let req = encode(&op, session);
                assert_eq!(decode_request(&req).as_ref(), Ok(&op), "{req:?}");
            }
        }
    }

    fn with_body(req: &HttpRequest, edit: impl FnOnce(&mut Value)) -> HttpRequest {
        let mut v: Value = serde_json::from_slice(&req.body).unwrap();
        edit(&mut v);
        HttpRequest {
            body: v.to_string().into_bytes(),
            ..req.clone()
        }
    }

    fn refused(req: &HttpRequest, needle: &str) {
        match decode_request(req) {
            Ok(op) => panic!("accepted {op:?}"),
            Err(e) => assert!(e.contains(needle), "{e:?} does not mention {needle:?}"),
        }
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let ops = requests();
        let renew = encode(&ops[3], false);
        let get = encode(&ops[6], false);
        let transact = encode(&ops[7], false);
        refused(
            &with_body(&renew, |v| v["Expected"] = json!({})),
            "unknown field \"Expected\"",
        );
        refused(
            &with_body(&renew, |v| v["ReturnValues"] = json!("SOME_NEW")),
            "ReturnValues: unknown value",
        );
        refused(
            &with_body(&renew, |v| v["ReturnConsumedCapacity"] = json!(1)),
            "ReturnConsumedCapacity",
        );
        refused(
            &with_body(&renew, |v| {
                v["ReturnValuesOnConditionCheckFailure"] = json!("ALL_NEW")
            }),
            "ReturnValuesOnConditionCheckFailure: unknown value",
        );
        refused(
            &with_body(&get, |v| v["ConsistentRead"] = json!("true")),
            "ConsistentRead",
        );
        refused(
            &with_body(&get, |v| v["Key"]["lockId"] = json!({"S": 1})),
            "Key",
        );
        refused(
            &with_body(&get, |v| v["Key"]["lockId"] = json!({"Z": "1"})),
            "Key",
        );
        refused(
            &with_body(&renew, |v| v["ExpressionAttributeNames"] = json!({})),
            "ExpressionAttributeNames: empty",
        );
        refused(
            &with_body(&renew, |v| {
                v.as_object_mut().unwrap().remove("UpdateExpression");
            }),
            "UpdateExpression: missing",
        );
        refused(
            &with_body(&transact, |v| {
                v["TransactItems"][1]["Put"]["Key"] = json!({"id": {"S": "d"}})
            }),
            "TransactItems[1].Put: unknown field \"Key\"",
        );
        refused(
            &with_body(&transact, |v| {
                v["TransactItems"][0]["ConditionCheck"]["UpdateExpression"] = json!("SET a = :a")
            }),
            "unknown field \"UpdateExpression\"",
        );
        refused(
            &with_body(&transact, |v| {
                v["TransactItems"][1] =
                    json!({"Put": v["TransactItems"][1]["Put"].clone(), "Delete": {}})
            }),
            "exactly one action",
        );
        refused(
            &with_body(&transact, |v| {
                v["TransactItems"][1] = json!({"Get": {"TableName": "d", "Key": {"a": {"S": "b"}}}})
            }),
            "unknown action \"Get\"",
        );
        refused(
            &with_body(&transact, |v| {
                v["TransactItems"][0]["ConditionCheck"]
                    .as_object_mut()
                    .unwrap()
                    .remove("ConditionExpression");
            }),
            "ConditionExpression: missing",
        );
        refused(
            &HttpRequest {
                body: b"{\"TableName\":".to_vec(),
                ..get.clone()
            },
            "not JSON",
        );

        // Headers.
        let header = |req: &HttpRequest, name: &str, value: Option<&str>| {
            let mut r = req.clone();
            r.headers.retain(|(k, _)| k != name);
            if let Some(v) = value {
                r.headers.push((name.to_owned(), v.to_owned()));
            }
            r
        };
        refused(&header(&get, "host", Some("127.0.0.1:8000")), "host header");
        refused(
            &header(&get, "content-type", Some("application/json")),
            "content-type",
        );
        refused(&header(&get, "content-type", None), "no content-type");
        refused(&header(&get, "x-amz-date", None), "no x-amz-date");
        refused(
            &header(&get, "x-amz-date", Some("2023-11-14")),
            "x-amz-date",
        );
        refused(&header(&get, "authorization", None), "no authorization");
        refused(
            &header(&get, "authorization", Some("Bearer abc")),
            "AWS4-HMAC-SHA256 Credential=",
        );
        refused(
            &header(&get, "x-amz-target", Some("DynamoDB_20120810.Scan")),
            "unsupported operation \"Scan\"",
        );
        refused(
            &header(&get, "x-amz-target", Some("Other.GetItem")),
            "x-amz-target",
        );
        refused(
            &header(&get, "x-amz-security-token", Some("tok")),
            "not signed",
        );
        let signed_with_token = encode(&ops[6], true);
        refused(
            &header(&signed_with_token, "x-amz-security-token", None),
            "signed header \"x-amz-security-token\" is not sent",
        );
        let mut upper = get.clone();
        upper.headers[0].0 = upper.headers[0].0.to_ascii_uppercase();
        refused(&upper, "lower case");
        let mut twice = get.clone();
        twice.headers.push(get.headers[0].clone());
        refused(&twice, "twice");
        refused(
            &HttpRequest {
                url: "http://127.0.0.1:8000/path".into(),
                ..get.clone()
            },
            "url",
        );
    }

    // --- responses: every kind of outcome survives the wire ------------------------------

    fn value(rng: &mut Rng, depth: u32) -> AttributeValue {
        let text = |rng: &mut Rng| {
            ["", "x", "ü ✓", "quote \" and \\ backslash", "\n\t", "{}"][rng.below(6) as usize]
                .to_owned()
                + &rng.below(1000).to_string()
        };
        match rng.below(if depth > 2 { 9 } else { 11 }) {
            0 => AttributeValue::S(text(rng)),
            1 => AttributeValue::n(rng.next_u64()),
            2 => AttributeValue::N(
                ["-12.5", "0", "1e3", "99999999999999999999999"][rng.below(4) as usize].into(),
            ),
            3 => AttributeValue::B("AAEC/w==".into()),
            4 => AttributeValue::Bool(rng.below(2) == 0),
            5 => AttributeValue::Null(true),
            6 => AttributeValue::SS(vec![text(rng), "b".into()]),
            7 => AttributeValue::NS(vec!["1".into(), "-2".into()]),
            8 => AttributeValue::BS(vec!["AA==".into()]),
            9 => AttributeValue::L((0..rng.below(3)).map(|_| value(rng, depth + 1)).collect()),
            _ => AttributeValue::M(item(rng, depth + 1)),
        }
    }

    fn item(rng: &mut Rng, depth: u32) -> Item {
        (0..rng.below(4))
            .map(|i| (format!("a{i}"), value(rng, depth)))
            .collect()
    }

    fn maybe<T>(rng: &mut Rng, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        (rng.below(2) == 0).then(|| f(rng))
    }

    /// Capacities as DynamoDB reports them (multiples of 0.5 and finer binary fractions):
    /// numbers whose shortest decimal form parses back exactly.
    fn units(rng: &mut Rng) -> f64 {
        rng.below(80_000) as f64 / 16.0
    }

    fn capacity(rng: &mut Rng) -> ConsumedCapacity {
        ConsumedCapacity {
            capacity_units: maybe(rng, units),
            read_capacity_units: maybe(rng, units),
            write_capacity_units: maybe(rng, units),
        }
    }

    fn message(rng: &mut Rng) -> String {
        const MESSAGES: [&str; 4] = [
            "",
            "slow down",
            "ü \"quoted\" ✓",
            "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]",
        ];
        MESSAGES[rng.below(4) as usize].to_owned()
    }

    fn success(rng: &mut Rng, op: &WireOp) -> WireOk {
        match op {
            WireOp::Core(Request::Put(_)) => WireOk::Core(Response::Put(PutItemOutput {
                consumed_capacity: maybe(rng, capacity),
            })),
            WireOp::Core(Request::Delete(_)) => WireOk::Core(Response::Delete(DeleteItemOutput {
                consumed_capacity: maybe(rng, capacity),
            })),
            WireOp::Core(Request::Update(_)) => WireOk::Core(Response::Update(UpdateItemOutput {
                attributes: maybe(rng, |r| item(r, 0)),
                consumed_capacity: maybe(rng, capacity),
            })),
            WireOp::Core(Request::Get(_)) => WireOk::Core(Response::Get(GetItemOutput {
                item: maybe(rng, |r| item(r, 0)),
                consumed_capacity: maybe(rng, capacity),
            })),
            WireOp::Transact(_) => {
                let n = op.tables().len();
                WireOk::Transact(TransactWriteItemsOutput {
                    consumed_capacity: maybe(rng, |r| (0..n).map(|_| capacity(r)).collect()),
                })
            }
        }
    }

    /// A random error of kind `kind` (0..=12), all of which have a wire form.
    fn error(rng: &mut Rng, kind: u64) -> Error {
        let pick = |rng: &mut Rng, xs: &[&str]| xs[rng.below(xs.len() as u64) as usize].to_owned();
        match kind {
            0 => Error::ConditionalCheckFailed {
                item: maybe(rng, |r| item(r, 0)),
            },
            1 => Error::TransactionCanceled {
                reasons: (0..rng.below(4))
                    .map(|_| CancellationReason {
                        code: maybe(rng, |r| {
                            pick(
                                r,
                                &[
                                    "None",
                                    "ConditionalCheckFailed",
                                    "TransactionConflict",
                                    "ThrottlingError",
                                ],
                            )
                        }),
                        item: maybe(rng, |r| item(r, 0)),
                        message: maybe(rng, message),
                    })
                    .collect(),
                message: message(rng),
            },
            2 => Error::Throttled {
                code: pick(
                    rng,
                    &[
                        "ProvisionedThroughputExceededException",
                        "ThrottlingException",
                        "RequestLimitExceeded",
                    ],
                ),
                message: message(rng),
            },
            3 => Error::TransactionConflict {
                message: message(rng),
            },
            4 => Error::NotFound {
                message: message(rng),
            },
            5 => Error::Validation {
                message: message(rng),
            },
            6 => Error::Access {
                code: pick(
                    rng,
                    &[
                        "UnrecognizedClientException",
                        "InvalidSignatureException",
                        "AccessDeniedException",
                        "ExpiredTokenException",
                    ],
                ),
                message: message(rng),
            },
            7 => Error::Server {
                status: 500,
                code: "InternalServerError".into(),
                message: message(rng),
            },
            8 => Error::Server {
                status: 503,
                code: "ServiceUnavailable".into(),
                message: message(rng),
            },
            9 => Error::Server {
                status: [500, 502, 504][rng.below(3) as usize],
                code: String::new(),
                message: message(rng),
            },
            10 => Error::Service {
                status: 400,
                code: pick(
                    rng,
                    &[
                        "ResourceInUseException",
                        "LimitExceededException",
                        "ItemCollectionSizeLimitExceededException",
                    ],
                ),
                message: message(rng),
            },
            11 => Error::Malformed {
                status: 200,
                reason: String::new(),
            },
            _ => Error::Malformed {
                status: [400, 403, 404][rng.below(3) as usize],
                reason: String::new(),
            },
        }
    }

    #[test]
    fn responses_decode_to_the_outcome_encoded() {
        let ops = requests();
        let mut rng = Rng::seeded(7);
        let mut seen = [0u32; 14];
        for case in 0..4000 {
            let op = &ops[rng.below(ops.len() as u64) as usize];
            let kind = rng.below(14);
            seen[kind as usize] += 1;
            let outcome = if kind == 13 {
                Ok(success(&mut rng, op))
            } else {
                Err(error(&mut rng, kind))
            };
            let resp = encode_response(op, &outcome)
                .unwrap_or_else(|e| panic!("case {case}: {outcome:?} not encoded: {e}"));
            let back = decode_response(op, &resp);
            match (&outcome, &back) {
                // The reason is the decoder's own; only the kind and status can be chosen.
                (
                    Err(Error::Malformed { status, .. }),
                    Err(Error::Malformed { status: s, reason }),
                ) => {
                    assert_eq!(status, s, "case {case}");
                    assert!(!reason.is_empty());
                }
                _ => assert_eq!(
                    back,
                    outcome,
                    "case {case}: {} answered {}",
                    op.name(),
                    String::from_utf8_lossy(&resp.body)
                ),
            }
        }
        assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    }

    #[test]
    fn bodies_are_dynamodbs() {
        let ops = requests();
        let raw = |op: &WireOp, o: Result<WireOk, Error>| encode_response(op, &o).unwrap();
        let body = |op: &WireOp, o: Result<WireOk, Error>| {
            let r = raw(op, o);
            (r.status, serde_json::from_slice::<Value>(&r.body).unwrap())
        };
        let put = &ops[0];
        let one = ConsumedCapacity {
            capacity_units: Some(1.0),
            ..Default::default()
        };
        let r = raw(
            put,
            Ok(WireOk::Core(Response::Put(PutItemOutput {
                consumed_capacity: Some(one.clone()),
            }))),
        );
        assert_eq!(r.status, 200);
        assert!(
            String::from_utf8_lossy(&r.body).contains(r#""CapacityUnits":1.0"#),
            "a float, as DynamoDB writes it"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).unwrap(),
            json!({"ConsumedCapacity": {"TableName": "locks", "CapacityUnits": 1.0}})
        );
        assert_eq!(
            body(
                &ops[3],
                Ok(WireOk::Core(Response::Update(UpdateItemOutput {
                    attributes: Some([("fencingToken".to_owned(), AttributeValue::n(7))].into()),
                    consumed_capacity: Some(one.clone()),
                })))
            ),
            (
                200,
                json!({"Attributes": {"fencingToken": {"N": "7"}},
                       "ConsumedCapacity": {"TableName": "locks", "CapacityUnits": 1.0}})
            )
        );
        assert_eq!(
            body(
                &ops[6],
                Ok(WireOk::Core(Response::Get(GetItemOutput::default())))
            ),
            (200, json!({}))
        );
        assert_eq!(
            body(
                &ops[7],
                Ok(WireOk::Transact(TransactWriteItemsOutput::default()))
            ),
            (200, json!({}))
        );
        assert_eq!(
            body(
                &ops[7],
                Ok(WireOk::Transact(TransactWriteItemsOutput {
                    consumed_capacity: Some(vec![one.clone(), one]),
                }))
            ),
            (
                200,
                json!({"ConsumedCapacity": [{"TableName": "locks", "CapacityUnits": 1.0},
                                            {"TableName": "data", "CapacityUnits": 1.0}]})
            )
        );
        let item: Item = [("k".to_owned(), AttributeValue::s("v"))].into();
        assert_eq!(
            body(
                put,
                Err(Error::ConditionalCheckFailed {
                    item: Some(item.clone())
                })
            ),
            (
                400,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                       "message": "The conditional request failed",
                       "Item": {"k": {"S": "v"}}})
            )
        );
        let cancelled = Error::TransactionCanceled {
            reasons: vec![
                CancellationReason {
                    code: Some("None".into()),
                    item: None,
                    message: None,
                },
                CancellationReason {
                    code: Some("ConditionalCheckFailed".into()),
                    item: Some(item),
                    message: Some(CONDITION_FAILED_MESSAGE.into()),
                },
            ],
            message: "Transaction cancelled".into(),
        };
        assert_eq!(
            body(&ops[7], Err(cancelled)),
            (
                400,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                       "Message": "Transaction cancelled",
                       "CancellationReasons": [
                           {"Code": "None"},
                           {"Code": "ConditionalCheckFailed", "Item": {"k": {"S": "v"}},
                            "Message": "The conditional request failed"}]})
            )
        );
        assert_eq!(
            body(
                put,
                Err(Error::Throttled {
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "m".into()
                })
            ),
            (
                400,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                       "message": "m"})
            )
        );
        assert_eq!(
            body(
                put,
                Err(Error::Server {
                    status: 503,
                    code: "ServiceUnavailable".into(),
                    message: "m".into(),
                })
            ),
            (
                503,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable", "message": "m"})
            )
        );
        let r = raw(
            put,
            Err(Error::Malformed {
                status: 200,
                reason: String::new(),
            }),
        );
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with(b"{\"ConsumedCapacity\""), "{r:?}");
        assert!(serde_json::from_slice::<Value>(&r.body).is_err(), "{r:?}");
    }

    #[test]
    fn refuses_what_has_no_faithful_wire_form() {
        let ops = requests();
        let put = &ops[0];
        let refused = |op: &WireOp, o: Result<WireOk, Error>| {
            assert!(encode_response(op, &o).is_err(), "{o:?} encoded");
        };
        refused(
            put,
            Err(Error::Transport(
                ddb_lock::dynamodb::TransportError::timeout(),
            )),
        );
        refused(
            put,
            Err(Error::Throttled {
                code: "SlowDown".into(),
                message: String::new(),
            }),
        );
        refused(
            put,
            Err(Error::Server {
                status: 400,
                code: "InternalServerError2".into(),
                message: String::new(),
            }),
        );
        refused(
            put,
            Err(Error::Malformed {
                status: 500,
                reason: String::new(),
            }),
        );
        refused(
            put,
            Ok(WireOk::Core(Response::Get(GetItemOutput::default()))),
        );
        refused(
            &ops[7],
            Ok(WireOk::Transact(TransactWriteItemsOutput {
                consumed_capacity: Some(vec![ConsumedCapacity::default()]),
            })),
        );
        refused(
            put,
            Ok(WireOk::Core(Response::Put(PutItemOutput {
                consumed_capacity: Some(ConsumedCapacity {
                    capacity_units: Some(f64::NAN),
                    ..Default::default()
                }),
            }))),
        );
    }
}
