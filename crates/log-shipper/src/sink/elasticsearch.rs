//! Elasticsearch/OpenSearch `_bulk` (`POST /_bulk`, NDJSON): per record an
//! action line and the document, the body ending in a newline:
//!
//! ```text
//! {"create":{"_index":"logs-podkit-2026.12.06"}}
//! {"@timestamp":"2026-12-06T10:00:00.123Z","file":"/var/log/app.log","pod":"web-1","message":"GET /cart 200"}
//! ```
//!
//! The document is the NDJSON record with `@timestamp` (what data streams
//! require) for `timestamp`. The index comes from `--es-index` formatted
//! with the record's time in UTC.
//!
//! A 200 answer can still carry `"errors":true`: then each item's status is
//! read. Items answered 429 or 5xx are sent again, alone (the items that
//! succeeded are not repeated); items refused for good (400 mapping errors
//! and the like) are handed to the `--on-reject` policy with Elasticsearch's
//! reason. Neither a document nor an action line can hold a newline (JSON
//! escapes it), so a body splits into its pairs by lines.

use serde::Deserialize;

use crate::args::EsAction;

use super::platform::{IndexPattern, dead_letter_entry};

/// Writes the action lines.
#[derive(Debug, Clone)]
pub struct BulkEncoder {
    index: IndexPattern,
    action: &'static [u8],
}

impl BulkEncoder {
    /// Actions of kind `action` into indices named by `index`.
    pub fn new(index: IndexPattern, action: EsAction) -> Self {
        let action: &'static [u8] = match action {
            EsAction::Create => b"{\"create\":{\"_index\":",
            EsAction::Index => b"{\"index\":{\"_index\":",
        };
        Self { index, action }
    }

    /// Appends the action line of a record of time `t`.
    pub fn action(&mut self, t: jiff::Timestamp, out: &mut Vec<u8>) {
        out.extend_from_slice(self.action);
        out.extend_from_slice(self.index.name(t));
        out.extend_from_slice(b"}}\n");
    }
}

/// The action/document pairs of a `_bulk` body, each with its two newlines.
pub fn pairs(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let first = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let second = memchr::memchr(b'\n', &rest[first..]).map_or(rest.len(), |i| first + i + 1);
        let (pair, tail) = rest.split_at(second);
        rest = tail;
        Some(pair)
    })
}

/// A dead-letter entry for one pair: `"action"` and `"document"` as JSON.
pub fn dead_letter_item(out: &mut Vec<u8>, sink: &str, reason: &str, pair: &[u8]) {
    let mut lines = pair.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let action = lines.next().unwrap_or(b"null");
    let document = lines.next().unwrap_or(b"null");
    dead_letter_entry(out, sink, reason, &[("action", action), ("document", document)]);
}

/// What the items of a 200 answer said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ItemResults {
    /// Pairs to send again (429/5xx), as one body.
    pub retry: Vec<u8>,
    /// The first retry reason, for logs.
    pub retry_reason: Option<String>,
    /// Pairs refused for good, with the reason.
    pub rejected: Vec<(Vec<u8>, String)>,
}

/// Whether the answer says `"errors":false` (before its items).
pub fn all_succeeded(answer: &[u8]) -> bool {
    let head = memchr::memmem::find(answer, b"\"items\"").map_or(answer, |i| &answer[..i]);
    let compact: Vec<u8> = head.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    memchr::memmem::find(&compact, b"\"errors\":false").is_some() && answer.trim_ascii_end().ends_with(b"}")
}

#[derive(Deserialize)]
struct BulkAnswer {
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Reads a 200 answer to `body`; `Ok(None)` when every item succeeded.
///
/// The common answer, `"errors":false` before the items, is taken without
/// reading the items (one per document: parsing them all cost more than
/// encoding the documents).
pub fn read_answer(body: &[u8], answer: &[u8]) -> Result<Option<ItemResults>, String> {
    if all_succeeded(answer) {
        return Ok(None);
    }
    let parsed: BulkAnswer =
        serde_json::from_slice(answer).map_err(|e| format!("the _bulk answer is not what Elasticsearch sends: {e}"))?;
    if !parsed.errors {
        return Ok(None);
    }
    let sent: Vec<&[u8]> = pairs(body).collect();
    if sent.len() != parsed.items.len() {
        return Err(format!(
            "the _bulk answer has {} items for {} documents",
            parsed.items.len(),
            sent.len()
        ));
    }
    let mut results = ItemResults::default();
    for (pair, item) in sent.into_iter().zip(parsed.items) {
        let Some(item) = item.into_values().next() else {
            return Err("an item of the _bulk answer is empty".into());
        };
        if (200..300).contains(&item.status) {
            continue;
        }
        let reason = describe(item.status, item.error.as_ref());
        if item.status == 429 || item.status >= 500 {
            results.retry.extend_from_slice(pair);
            results.retry_reason.get_or_insert(reason);
        } else {
            results.rejected.push((pair.to_vec(), reason));
        }
    }
    Ok(Some(results))
}

/// `400 mapper_parsing_exception: failed to parse field [n]`.
fn describe(status: u16, error: Option<&serde_json::Value>) -> String {
    let Some(error) = error else {
        return format!("item status {status}");
    };
    let kind = error.get("type").and_then(|v| v.as_str()).unwrap_or("error");
    match error.get("reason").and_then(|v| v.as_str()) {
        Some(reason) => format!("item status {status} {kind}: {reason}"),
        None => format!("item status {status} {kind}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"{\"create\":{\"_index\":\"i\"}}\n{\"n\":1}\n{\"create\":{\"_index\":\"i\"}}\n{\"n\":2}\n\
        {\"create\":{\"_index\":\"i\"}}\n{\"n\":3}\n";

    #[test]
    fn bodies_split_into_pairs() {
        let p: Vec<&[u8]> = pairs(BODY).collect();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], b"{\"create\":{\"_index\":\"i\"}}\n{\"n\":2}\n");
    }

    #[test]
    fn item_errors_split_into_retries_and_rejections() {
        let ok = br#"{"took":3,"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert_eq!(read_answer(BODY, ok), Ok(None));
        let ok = b"{\n  \"errors\" : false,\n  \"took\" : 3,\n  \"items\" : [ ]\n}\n";
        assert_eq!(read_answer(BODY, ok), Ok(None));
        let mixed = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"i","status":201}},
            {"create":{"_index":"i","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n]"}}},
            {"create":{"_index":"i","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}]}"#;
        let r = read_answer(BODY, mixed).unwrap().unwrap();
        assert_eq!(r.retry, b"{\"create\":{\"_index\":\"i\"}}\n{\"n\":3}\n");
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].0, b"{\"create\":{\"_index\":\"i\"}}\n{\"n\":2}\n");
        assert_eq!(
            r.rejected[0].1,
            "item status 400 mapper_parsing_exception: failed to parse field [n]"
        );
        assert!(read_answer(BODY, br#"{"errors":true,"items":[]}"#).is_err());
        assert!(read_answer(BODY, b"<html>").is_err());
        let mut out = Vec::new();
        dead_letter_item(&mut out, "es", "bad", &r.rejected[0].0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["document"]["n"], 2);
        assert_eq!(v["action"]["create"]["_index"], "i");
        assert_eq!(v["reason"], "bad");
    }
}
