//! The counting mode of the platform stand-ins
//! ([`super::PlatformServer::counting`]): a request is answered as the
//! strict server answers a valid one, and its entries are counted without
//! decoding it (benchmarks, where the strict decoding would set the pace):
//!
//! - Loki JSON: the value arrays, `["` before a digit (a quote inside a
//!   JSON string is escaped, and one closing a string is never followed by
//!   a digit, so this only opens a `["ns", line, …]` value); protobuf:
//!   the snappy block decompressed, then the `entries` of each stream
//!   (wire format walked, nothing decoded). Answer 204.
//! - Elasticsearch: the NDJSON lines over two; the 200 answer lists an item
//!   per document, byte for byte the strict server's (the action line's
//!   operation and `_index`; a line repeated from the one before is not
//!   parsed again).
//! - OTLP JSON: the key `"observedTimeUnixNano":`, which every log record
//!   carries (a string followed by `:` is a key);
//!   protobuf: `resourceLogs` → `scopeLogs` → `logRecords` walked. Answer
//!   200 `{}` (JSON) or the empty `ExportLogsServiceResponse`.
//!
//! The path, method, content type and content encoding are checked as the
//! strict server checks them, and a body that does not walk (a protobuf
//! field running past its end, an action line without its document) is
//! refused as malformed; what a line or label holds is not checked.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::{Platform, answer};

/// The entries of a request to `platform` and the answer of the strict
/// server to it when valid.
pub(super) fn count(
    platform: Platform,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u64, Response<Full<Bytes>>), String> {
    match platform {
        Platform::Loki => loki(path, content_type, body),
        Platform::Elasticsearch => bulk(path, content_type, body),
        Platform::Otlp => otlp(path, content_type, body),
    }
}

fn loki(path: &str, content_type: &str, body: &[u8]) -> Result<(u64, Response<Full<Bytes>>), String> {
    if path != "/loki/api/v1/push" {
        return Err(format!("Loki serves /loki/api/v1/push, not {path}"));
    }
    let n = if content_type.starts_with("application/json") {
        memchr::memmem::find_iter(body, b"[\"")
            .filter(|&at| body.get(at + 2).is_some_and(u8::is_ascii_digit))
            .count() as u64
    } else if content_type.starts_with("application/x-protobuf") {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| format!("not a snappy block: {e}"))?;
        // PushRequest.streams (1) → StreamAdapter.entries (2).
        nested(&raw, &[1, 2])?
    } else {
        return Err(format!(
            "Content-Type {content_type:?}: Loki reads application/json or (snappy) application/x-protobuf"
        ));
    };
    Ok((n, answer(204, "text/plain", Bytes::new())))
}

fn bulk(path: &str, content_type: &str, body: &[u8]) -> Result<(u64, Response<Full<Bytes>>), String> {
    use std::fmt::Write as _;

    if path != "/_bulk" {
        return Err(format!("this Elasticsearch serves /_bulk, not {path}"));
    }
    if !(content_type.starts_with("application/x-ndjson") || content_type.starts_with("application/json")) {
        return Err(format!("Content-Type header [{content_type}] is not supported"));
    }
    if body.last() != Some(&b'\n') {
        return Err("The bulk request must be terminated by a newline [\\n]".into());
    }
    let mut items = String::with_capacity(body.len() / 2);
    let mut last: (&[u8], String, String) = (&[], String::new(), String::new());
    let mut start = 0;
    let mut lines = memchr::memchr_iter(b'\n', body);
    let mut n = 0u64;
    while let Some(end) = lines.next() {
        let action = &body[start..end];
        start = lines.next().ok_or("an action line without its document")? + 1;
        if action != last.0 {
            let parsed: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
                serde_json::from_slice(action).map_err(|e| format!("action line: {e}"))?;
            let [(op, meta)] = <[_; 1]>::try_from(parsed.into_iter().collect::<Vec<_>>())
                .map_err(|_| "an action line with other than one operation")?;
            let index = meta.get("_index").ok_or("no _index in the action")?;
            // As serde_json writes them (escaped, quoted).
            let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
            last = (action, quote(&op), quote(index));
        }
        n += 1;
        if n > 1 {
            items.push(',');
        }
        // The strict server's item, keys in serde_json's (sorted) order.
        let _ = write!(
            items,
            "{{{}:{{\"_id\":\"{n}\",\"_index\":{},\"_primary_term\":1,\"_seq_no\":{n},\"_version\":1,\
             \"result\":\"created\",\"status\":201}}}}",
            last.1, last.2
        );
    }
    let body = format!("{{\"errors\":false,\"items\":[{items}],\"took\":1}}");
    Ok((n, answer(200, "application/json", body)))
}

fn otlp(path: &str, content_type: &str, body: &[u8]) -> Result<(u64, Response<Full<Bytes>>), String> {
    if path != "/v1/logs" {
        return Err(format!("the OTLP logs endpoint is /v1/logs, not {path}"));
    }
    if content_type.starts_with("application/x-protobuf") {
        // ExportLogsServiceRequest.resource_logs (1) → ResourceLogs.scope_logs
        // (2) → ScopeLogs.log_records (2).
        let n = nested(body, &[1, 2, 2])?;
        // The empty ExportLogsServiceResponse encodes to no bytes.
        Ok((n, answer(200, "application/x-protobuf", Bytes::new())))
    } else if content_type.starts_with("application/json") {
        let n = memchr::memmem::find_iter(body, b"\"observedTimeUnixNano\":").count() as u64;
        Ok((n, answer(200, "application/json", "{}")))
    } else {
        Err(format!(
            "Content-Type {content_type:?}: OTLP/HTTP needs application/json or application/x-protobuf"
        ))
    }
}

/// How many messages `path` (field numbers, outermost first) reaches in a
/// protobuf message: the fields of the last number inside those of the
/// ones before.
fn nested(message: &[u8], path: &[u32]) -> Result<u64, String> {
    let Some((&field, rest)) = path.split_first() else {
        return Ok(1);
    };
    let mut n = 0;
    let mut at = message;
    while !at.is_empty() {
        let key = varint(&mut at)?;
        let value = match key & 7 {
            0 => {
                varint(&mut at)?;
                None
            }
            1 => Some(take(&mut at, 8)?),
            2 => {
                let len = usize::try_from(varint(&mut at)?).map_err(|_| "a length past the body")?;
                Some(take(&mut at, len)?)
            }
            5 => Some(take(&mut at, 4)?),
            other => {
                return Err(format!(
                    "protobuf wire type {other}, which no field of these messages has"
                ));
            }
        };
        if key >> 3 == u64::from(field) && key & 7 == 2 {
            n += nested(value.unwrap_or_default(), rest)?;
        }
    }
    Ok(n)
}

fn varint(at: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = at.split_first().ok_or("a protobuf varint past the end of the body")?;
        *at = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a protobuf varint longer than 10 bytes".into())
}

fn take<'a>(at: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if at.len() < len {
        return Err("a protobuf field running past the end of the body".into());
    }
    let (value, rest) = at.split_at(len);
    *at = rest;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use prost::Message as _;

    use super::super::{State, bulk as strict_bulk, loki as strict_loki, loki_proto, otlp as strict_otlp};
    use super::*;

    /// Status, content type and body of an answer.
    fn parts(r: Response<Full<Bytes>>) -> (u16, String, Vec<u8>) {
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = collect(r.into_body());
        (status, ct, body)
    }

    fn collect(body: Full<Bytes>) -> Vec<u8> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(body.collect())
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default()
    }

    type Strict = fn(&mut State, &str, &str, &[u8]) -> Result<Response<Full<Bytes>>, String>;

    /// The counting server counts what the strict one stores and answers
    /// it the same, status, type and bytes.
    fn same(platform: Platform, strict: Strict, path: &str, content_type: &str, body: &[u8], want: usize) {
        let mut state = State::default();
        let strict_answer = parts(strict(&mut state, path, content_type, body).expect("strict"));
        assert_eq!(state.entries.len(), want, "{platform:?} {content_type}: strict count");
        let (n, fast) = count(platform, path, content_type, body).expect("counting");
        assert_eq!(n, want as u64, "{platform:?} {content_type}: fast count");
        assert_eq!(parts(fast), strict_answer, "{platform:?} {content_type}: the answer");
    }

    #[test]
    fn counts_and_answers_match_the_strict_servers() {
        // Lines holding what the counters look for, escaped as senders do.
        let loki_json = br#"{"streams":[{"stream":{"app":"a","pod":"p"},"values":[["1","x [\"y\"] [",{"file":"f"}],["2","[[\"observedTimeUnixNano\"]"]]},{"stream":{"app":"b"},"values":[["3","z"]]}]}"#;
        same(
            Platform::Loki,
            strict_loki,
            "/loki/api/v1/push",
            "application/json",
            loki_json,
            3,
        );

        let entry = |s: i64, line: &str| loki_proto::EntryAdapter {
            timestamp: Some(loki_proto::Timestamp { seconds: s, nanos: 5 }),
            line: line.into(),
            structured_metadata: vec![loki_proto::LabelPairAdapter {
                name: "file".into(),
                value: "/var/log/x.log".into(),
            }],
            parsed: vec![],
        };
        let push = loki_proto::PushRequest {
            streams: vec![
                loki_proto::StreamAdapter {
                    labels: r#"{app="a"}"#.into(),
                    entries: vec![entry(1, "one"), entry(2, &"long ".repeat(100))],
                    hash: 0,
                },
                loki_proto::StreamAdapter {
                    labels: r#"{app="b", pod="p"}"#.into(),
                    entries: vec![entry(3, "three")],
                    hash: 0,
                },
            ],
            format: String::new(),
        };
        let snappy = snap::raw::Encoder::new()
            .compress_vec(&push.encode_to_vec())
            .expect("snappy");
        same(
            Platform::Loki,
            strict_loki,
            "/loki/api/v1/push",
            "application/x-protobuf",
            &snappy,
            3,
        );

        let es = b"{\"create\":{\"_index\":\"logs-app-default\"}}\n{\"message\":\"a\\n{\\\"create\\\":1}\",\"@timestamp\":\"2026-12-06T00:00:00Z\"}\n\
            {\"create\":{\"_index\":\"logs-app-default\"}}\n{\"message\":\"b\",\"n\":2}\n\
            {\"index\":{\"_index\":\"app-2026.12.06\"}}\n{\"message\":\"c\"}\n";
        same(
            Platform::Elasticsearch,
            strict_bulk,
            "/_bulk",
            "application/x-ndjson",
            es,
            3,
        );

        let otlp_json = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.pod.name","value":{"stringValue":"p"}}]},
            "scopeLogs":[{"scope":{"name":"log-shipper"},"logRecords":[{"observedTimeUnixNano":"6","timeUnixNano":"5",
            "severityNumber":9,"severityText":"info","body":{"stringValue":"\"observedTimeUnixNano\""}},
            {"observedTimeUnixNano":"7","body":{"stringValue":"no time"},
            "attributes":[{"key":"observedTimeUnixNano","value":{"stringValue":"observedTimeUnixNano"}}]}]}]},
            {"scopeLogs":[{"scope":{"name":"log-shipper"},"logRecords":[{"observedTimeUnixNano":"8","body":{"stringValue":"x"}}]}]}]}"#;
        same(
            Platform::Otlp,
            strict_otlp,
            "/v1/logs",
            "application/json",
            otlp_json,
            3,
        );

        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        let record = |t: u64, line: &str| LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t + 1,
            severity_number: 9,
            severity_text: "info".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(line.into())),
            }),
            ..LogRecord::default()
        };
        let scope = |records| ScopeLogs {
            scope: Some(InstrumentationScope {
                name: "log-shipper".into(),
                ..InstrumentationScope::default()
            }),
            log_records: records,
            schema_url: String::new(),
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![
                ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "k8s.pod.name".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("p".into())),
                            }),
                            ..KeyValue::default()
                        }],
                        ..Resource::default()
                    }),
                    scope_logs: vec![scope(vec![record(1, "a"), record(2, &"b".repeat(300))])],
                    schema_url: String::new(),
                },
                ResourceLogs {
                    resource: None,
                    scope_logs: vec![scope(vec![record(3, "c")])],
                    schema_url: String::new(),
                },
            ],
        };
        same(
            Platform::Otlp,
            strict_otlp,
            "/v1/logs",
            "application/x-protobuf",
            &request.encode_to_vec(),
            3,
        );
    }

    #[test]
    fn bodies_that_do_not_walk_are_refused() {
        assert!(
            count(
                Platform::Elasticsearch,
                "/_bulk",
                "application/x-ndjson",
                b"{\"create\":{\"_index\":\"i\"}}\n"
            )
            .is_err()
        );
        assert!(count(Platform::Elasticsearch, "/_bulk", "application/x-ndjson", b"{}\n{}").is_err());
        assert!(
            count(
                Platform::Otlp,
                "/v1/logs",
                "application/x-protobuf",
                &[0x0a, 0x05, 0x12]
            )
            .is_err()
        );
        assert!(
            count(
                Platform::Loki,
                "/loki/api/v1/push",
                "application/x-protobuf",
                b"not snappy"
            )
            .is_err()
        );
        assert!(count(Platform::Otlp, "/v1/logs", "text/plain", b"{}").is_err());
    }
}
