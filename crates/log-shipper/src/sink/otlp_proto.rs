//! OTLP/HTTP logs, protobuf encoding (`--otlp-encoding protobuf`): the
//! binary `ExportLogsServiceRequest`, `Content-Type: application/x-protobuf`
//! (gzip still optional). It holds what the JSON request holds
//! ([`super::otlp`]): one `ResourceLogs` per label set (Kubernetes labels as
//! their semantic-convention attributes), one `ScopeLogs` (`log-shipper`
//! and its version), and per record `observed_time_unix_nano`,
//! `time_unix_nano` (0, unknown, without an event time), the severity of a
//! parsed level, the body, and the attributes `log.file.path` and the
//! parsed fields (strings, integers, doubles, booleans; objects and arrays
//! as their JSON text).
//!
//! The message structs below are declared by hand for `prost`, with the
//! field numbers of `opentelemetry-proto` (only the fields the shipper
//! writes or reads); each log record is encoded as it comes and
//! [`Groups::close_framed`] frames the resources when the request is sealed.
//!
//! Answers are protobuf too: a 2xx `ExportLogsServiceResponse` whose
//! `partial_success` is counted ([`rejected_records`]), and error statuses
//! with a `google.rpc.Status` whose message is the reason ([`status_message`]).

use crate::record::{Record, TimestampField};

use super::otlp::{LEVEL_KEYS, ValueKind, resource_key, severity_number, value_kind};
use super::platform::{FieldValue, Groups, for_each_field, proto_field_head, push_lossy};

/// `opentelemetry.proto.common.v1.AnyValue` (the scalar kinds).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
    pub value: Option<Value>,
}

/// `AnyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// `string_value`.
    #[prost(string, tag = "1")]
    StringValue(String),
    /// `bool_value`.
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    /// `int_value`.
    #[prost(int64, tag = "3")]
    IntValue(i64),
    /// `double_value`.
    #[prost(double, tag = "4")]
    DoubleValue(f64),
}

/// `opentelemetry.proto.common.v1.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Its attributes.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `opentelemetry.proto.common.v1.InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `opentelemetry.proto.logs.v1.LogRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    /// The event time (0: unknown).
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    /// `SeverityNumber`.
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    /// The level as written.
    #[prost(string, tag = "3")]
    pub severity_text: String,
    /// The line.
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    /// `log.file.path` and the parsed fields.
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    /// The read time.
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
}

/// `opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsServiceResponse {
    /// Set when the collector dropped records.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportLogsPartialSuccess>,
}

/// `opentelemetry.proto.collector.logs.v1.ExportLogsPartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsPartialSuccess {
    /// Records dropped.
    #[prost(int64, tag = "1")]
    pub rejected_log_records: i64,
    /// Why.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`, the body of an OTLP/HTTP protobuf error answer
/// (its `details` skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `ExportLogsServiceRequest.resource_logs`.
const RESOURCE_LOGS: u8 = 1;
/// `ResourceLogs.resource`.
const RESOURCE: u8 = 1;
/// `ResourceLogs.scope_logs`.
const SCOPE_LOGS: u8 = 2;
/// `ScopeLogs.scope`.
const SCOPE: u8 = 1;
/// `ScopeLogs.log_records`.
const LOG_RECORDS: u8 = 2;

/// Encodes records as OTLP `LogRecord`s, grouped by resource.
#[derive(Debug, Clone)]
pub struct OtlpProtoEncoder {
    groups: Groups,
    /// The `scope` field of every `ScopeLogs`.
    scope: Vec<u8>,
    /// The record being encoded, kept to reuse its buffers; its first
    /// attribute is the current group's `log.file.path`.
    record: LogRecord,
}

impl Default for OtlpProtoEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl OtlpProtoEncoder {
    /// An encoder.
    pub fn new() -> Self {
        let scope = InstrumentationScope {
            name: "log-shipper".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut head = Vec::new();
        proto_field_head(&mut head, SCOPE, prost::Message::encoded_len(&scope));
        prost::Message::encode_raw(&scope, &mut head);
        Self {
            groups: Groups::default(),
            scope: head,
            record: LogRecord {
                body: Some(string_value(String::with_capacity(256))),
                attributes: vec![KeyValue {
                    key: "log.file.path".into(),
                    value: Some(string_value(String::new())),
                }],
                ..LogRecord::default()
            },
        }
    }

    /// Records of `file` with `labels` follow.
    pub fn begin_group(&mut self, file: &str, labels: &[(String, String)]) {
        self.groups.begin(labels, resource_head);
        self.record.attributes[0].value = Some(string_value(file.to_owned()));
    }

    /// Appends one `log_records` field; returns whether invalid UTF-8 was replaced.
    pub fn record(&mut self, rec: &Record<'_>, ts_field: TimestampField<'_>, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let r = &mut self.record;
        r.observed_time_unix_nano = unix_nanos(rec.read_time);
        r.time_unix_nano = rec.time.map_or(0, unix_nanos);
        r.severity_number = 0;
        r.severity_text.clear();
        let mut level_key = None;
        let mut bad = false;
        for_each_field(rec, ts_field, |key, value| {
            if level_key.is_none()
                && let Some(i) = LEVEL_KEYS.iter().position(|k| *k == key)
                && let Some(text) = value.simple_text()
            {
                level_key = Some(i);
                r.severity_number = i32::from(severity_number(text));
                bad |= push_lossy(&mut r.severity_text, text);
            }
        });
        if let Some(AnyValue {
            value: Some(Value::StringValue(body)),
        }) = &mut r.body
        {
            body.clear();
            bad |= push_lossy(body, rec.line);
        }
        let level_key = level_key.map(|i| LEVEL_KEYS[i]);
        r.attributes.truncate(1);
        for_each_field(rec, ts_field, |key, value| {
            if Some(key) == level_key {
                return;
            }
            let (value, replaced) = any_value(&value);
            bad |= replaced;
            r.attributes.push(KeyValue {
                key: key.to_owned(),
                value: Some(AnyValue { value: Some(value) }),
            });
        });
        proto_field_head(out, LOG_RECORDS, prost::Message::encoded_len(&*r));
        prost::Message::encode_raw(&*r, out);
        self.groups.push(0, start, out.len());
        bad
    }

    /// Lays the records out as the request body.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        let scope = &self.scope;
        self.groups.close_framed(out, |body, resource, records_len| {
            let scope_logs = scope.len() + records_len;
            let resource_logs = resource.len() + 1 + prost::length_delimiter_len(scope_logs) + scope_logs;
            proto_field_head(body, RESOURCE_LOGS, resource_logs);
            body.extend_from_slice(resource);
            proto_field_head(body, SCOPE_LOGS, scope_logs);
            body.extend_from_slice(scope);
        });
    }
}

/// A time in Unix nanoseconds (0 before 1970, which OTLP cannot say).
fn unix_nanos(t: jiff::Timestamp) -> u64 {
    u64::try_from(t.as_nanosecond()).unwrap_or(0)
}

fn string_value(text: String) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(text)),
    }
}

/// The `resource` field of a `ResourceLogs`: the labels as attributes.
fn resource_head(labels: &[(String, String)]) -> Vec<u8> {
    let resource = Resource {
        attributes: labels
            .iter()
            .map(|(k, v)| KeyValue {
                key: resource_key(k).to_owned(),
                value: Some(string_value(v.clone())),
            })
            .collect(),
    };
    let mut head = Vec::new();
    proto_field_head(&mut head, RESOURCE, prost::Message::encoded_len(&resource));
    prost::Message::encode_raw(&resource, &mut head);
    head
}

/// The value of a parsed field, typed as the JSON encoding types it, and
/// whether invalid UTF-8 was replaced.
fn any_value(value: &FieldValue<'_>) -> (Value, bool) {
    match value_kind(value) {
        ValueKind::Bool(b) => (Value::BoolValue(b), false),
        ValueKind::Int(_, int) => (Value::IntValue(int), false),
        ValueKind::Double(raw) => match raw.parse::<f64>() {
            Ok(d) => (Value::DoubleValue(d), false),
            Err(_) => (Value::StringValue(raw.to_owned()), false),
        },
        ValueKind::Text => {
            let mut text = String::new();
            let bad = value.push_text(&mut text);
            (Value::StringValue(text), bad)
        }
    }
}

/// Log records a 2xx protobuf answer says the collector dropped, and its message.
pub fn rejected_records(answer: &[u8]) -> (u64, Option<String>) {
    let Ok(ExportLogsServiceResponse {
        partial_success: Some(partial),
    }) = prost::Message::decode(answer)
    else {
        return (0, None);
    };
    let n = u64::try_from(partial.rejected_log_records).unwrap_or(0);
    (n, Some(partial.error_message).filter(|m| !m.is_empty()))
}

/// The message of a protobuf error answer (`google.rpc.Status`), if it is one.
pub fn status_message(answer: &[u8]) -> Option<String> {
    let status: Status = prost::Message::decode(answer).ok()?;
    Some(status.message).filter(|m| !m.is_empty() && !m.contains(char::is_control))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Fields;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use prost::Message as _;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    #[test]
    fn requests_decode_into_the_otlp_types() {
        let labels = vec![
            ("pod".to_owned(), "web-1".to_owned()),
            ("namespace".to_owned(), "shop".to_owned()),
            ("team".to_owned(), "a".to_owned()),
        ];
        let line = br#"{"level":"WARN","n":7,"x":1.5,"big":18446744073709551616,"ok":true,"o":{"a":1},"s":"t\"u"}"#;
        let members: Vec<(Cow<'_, str>, &RawValue)> =
            serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(line)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), v))
                .collect();
        let rec = Record {
            line,
            file: "/var/log/app.log",
            read_time: "2026-12-06T00:00:01Z".parse().unwrap(),
            time: Some("2026-12-06T00:00:00Z".parse().unwrap()),
            labels: &labels,
            fields: Fields::Json(&members),
        };
        let plain = Record {
            line: b"plain \xff",
            time: None,
            fields: Fields::Message,
            ..rec
        };
        let mut e = OtlpProtoEncoder::new();
        let mut out = Vec::new();
        e.begin_group(rec.file, &labels);
        assert!(!e.record(&rec, TimestampField::None, &mut out));
        e.begin_group("/var/log/b.log", &[]);
        assert!(e.record(&plain, TimestampField::None, &mut out));
        e.close(&mut out);
        let request = ExportLogsServiceRequest::decode(&out[..]).unwrap();
        assert_eq!(
            request.encode_to_vec(),
            out,
            "no field the types lack, laid out canonically"
        );
        assert_eq!(request.resource_logs.len(), 2);
        let rl = &request.resource_logs[0];
        let keys: Vec<&str> = rl
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(keys, ["k8s.pod.name", "k8s.namespace.name", "team"]);
        let scope = rl.scope_logs[0].scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("log-shipper", env!("CARGO_PKG_VERSION"))
        );
        let r = &rl.scope_logs[0].log_records[0];
        assert_eq!(r.time_unix_nano, 1_796_515_200_000_000_000);
        assert_eq!(r.observed_time_unix_nano, 1_796_515_201_000_000_000);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (13, "WARN"));
        let text =
            |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| v.as_ref().unwrap().value.clone().unwrap();
        assert_eq!(text(&r.body), V::StringValue(std::str::from_utf8(line).unwrap().into()));
        let get = |k: &str| text(&r.attributes.iter().find(|a| a.key == k).unwrap().value);
        assert_eq!(get("log.file.path"), V::StringValue("/var/log/app.log".into()));
        assert_eq!(get("n"), V::IntValue(7));
        assert_eq!(get("x"), V::DoubleValue(1.5));
        assert_eq!(get("big"), V::DoubleValue(18_446_744_073_709_551_616.0));
        assert_eq!(get("ok"), V::BoolValue(true));
        assert_eq!(get("o"), V::StringValue(r#"{"a":1}"#.into()));
        assert_eq!(get("s"), V::StringValue("t\"u".into()));
        assert!(
            r.attributes.iter().all(|a| a.key != "level"),
            "the level is the severity"
        );
        let r = &request.resource_logs[1].scope_logs[0].log_records[0];
        assert_eq!(r.time_unix_nano, 0, "no event time: unknown");
        assert_eq!((r.severity_number, r.severity_text.as_str()), (0, ""));
        assert_eq!(text(&r.body), V::StringValue("plain \u{FFFD}".into()));
        assert_eq!(r.attributes.len(), 1);
        assert_eq!(text(&r.attributes[0].value), V::StringValue("/var/log/b.log".into()));
    }

    #[test]
    fn answers_read_partial_success_and_status_messages() {
        use opentelemetry_proto::tonic::collector::logs::v1 as otlp;
        let answer = otlp::ExportLogsServiceResponse {
            partial_success: Some(otlp::ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "too big".into(),
            }),
        };
        assert_eq!(rejected_records(&answer.encode_to_vec()), (3, Some("too big".into())));
        assert_eq!(rejected_records(&[]), (0, None));
        assert_eq!(rejected_records(b"not protobuf {"), (0, None));
        let status = Status {
            code: 3,
            message: "bad record".into(),
        };
        assert_eq!(status_message(&status.encode_to_vec()).as_deref(), Some("bad record"));
        assert_eq!(status_message(b"scripted failure 503"), None);
    }
}
