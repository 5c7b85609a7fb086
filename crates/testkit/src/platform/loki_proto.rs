//! Loki's protobuf push, read as Loki reads it: the messages of Loki's
//! `pkg/push/push.proto` (package `logproto`) declared here for `prost`,
//! independently of the shipper's encoder, the snappy block decoding, and
//! the stream selector parser for `StreamAdapter.labels`.

use std::collections::BTreeMap;

use prost::Message;

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    /// The streams.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
    /// `loki` or `otlp` (set by Loki itself; clients leave it empty).
    #[prost(string, tag = "2")]
    pub format: String,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    /// The label set as a stream selector, `{name="value", …}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The entries.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// The stream's hash (Loki computes it when 0).
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    /// `google.protobuf.Timestamp` (not nullable in Loki's proto).
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Structured metadata.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    /// Loki's parsed labels of query answers; clients do not send them.
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPairAdapter {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Decodes a push body: snappy block format, then a `PushRequest` that
/// holds no field the proto lacks (its re-encoding is the body itself).
pub fn decode(body: &[u8]) -> Result<PushRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not a snappy block: {e}"))?;
    let push = PushRequest::decode(&raw[..]).map_err(|e| format!("not a logproto.PushRequest: {e}"))?;
    if push.encode_to_vec() != raw {
        return Err(
            "the PushRequest holds fields push.proto does not have (or is not laid out by field number)".into(),
        );
    }
    Ok(push)
}

/// Parses a stream selector, `{name="value", …}` (values as Go string
/// literals: `\\`, `\"`, `\n`, `\r`, `\t`, `\uXXXX`), refusing invalid
/// label names, repeated names and anything else.
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    let bad = |why: &str| format!("stream selector {text:?}: {why}");
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("not in braces"))?;
    let mut labels = BTreeMap::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if !super::valid_label_name(&name) {
            return Err(bad(&format!("invalid label name {name:?}")));
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return Err(bad("a label without =\"value\""));
        }
        let mut value = String::new();
        loop {
            match chars.next().ok_or_else(|| bad("an unterminated value"))? {
                '"' => break,
                '\\' => match chars.next().ok_or_else(|| bad("an unterminated escape"))? {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| bad("a bad \\u escape"))?;
                        value.push(c);
                    }
                    other => return Err(bad(&format!("an unknown escape \\{other}"))),
                },
                c => value.push(c),
            }
        }
        if labels.insert(name.clone(), value).is_some() {
            return Err(bad(&format!("label {name:?} twice")));
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(other) => return Err(bad(&format!("{other:?} after a value"))),
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_strictly() {
        let l = parse_selector(r#"{app="a\"b", ns="x\\y\nz", e=""}"#).unwrap();
        assert_eq!(l["app"], "a\"b");
        assert_eq!(l["ns"], "x\\y\nz");
        assert_eq!(l["e"], "");
        for bad in [
            r#"app="a""#,
            r#"{9a="x"}"#,
            r#"{a="x",a="y"}"#,
            r#"{a=x}"#,
            r#"{a="x\q"}"#,
            r#"{a="x"}}"#,
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
        assert!(parse_selector("{}").unwrap().is_empty());
    }
}
