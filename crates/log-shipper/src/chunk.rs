//! [`Chunk`]: what a source hands to its sinks. Either a tailer batch as it
//! was read (one record per line, nothing copied: the plain path), or
//! records assembled by [`crate::assemble`] from several lines (multiline
//! records, container log pieces), each with its own event time, in runs
//! that share labels of their own (a pod's, a stream's: stdout and stderr
//! records of one file interleave in one chunk).
//!
//! Its acknowledgement ([`ChunkAck`]) covers exactly the bytes of its
//! records: for assembled records, the parts of the tailer's ack tokens
//! split at record boundaries.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use podkit_tailer::{AckToken, Batch, FileInfo};

/// Labels shared by the records of a chunk.
pub type Labels = Arc<[(String, String)]>;

/// The source's labels with a chunk's own: theirs win on the same key.
pub fn merge_labels(source: &[(String, String)], own: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = source
        .iter()
        .filter(|(k, _)| !own.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    out.extend(own.iter().cloned());
    out
}

/// Records of one file, on their way to every sink.
#[derive(Debug)]
pub enum Chunk {
    /// A tailer batch: each line is a record.
    Lines(Batch),
    /// Assembled records.
    Records(Records),
}

/// Records assembled from lines of one file.
#[derive(Debug)]
pub struct Records<T = AckToken> {
    /// The file they were read from.
    pub file: FileInfo,
    /// Their bytes, one after another.
    pub data: Bytes,
    /// Each record's range in `data` and its event time.
    pub records: Vec<(Range<usize>, Option<Timestamp>)>,
    /// Runs of records with the same labels of their own (the file's pod
    /// labels, the stream), added to the source's: the index of each run's
    /// first record and the labels, in order; the first run starts at 0.
    pub groups: Vec<(usize, Option<Labels>)>,
    /// The acknowledgements of exactly their bytes.
    pub acks: Vec<T>,
}

/// One record of a chunk.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The record's bytes; not necessarily UTF-8.
    pub bytes: &'a [u8],
    /// The event time the container runtime gave it, if any.
    pub time: Option<Timestamp>,
}

impl Chunk {
    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.file().path
    }

    /// The file.
    pub fn file(&self) -> &FileInfo {
        match self {
            Self::Lines(b) => b.file(),
            Self::Records(r) => &r.file,
        }
    }

    /// Runs of records that share labels of their own (added to the
    /// source's): the index of each run's first record and its labels, in
    /// order. A tailer batch is one run without labels of its own.
    pub fn groups(&self) -> impl Iterator<Item = (usize, Option<&Labels>)> + '_ {
        let runs = match self {
            Self::Lines(_) => &[][..],
            Self::Records(r) => &r.groups[..],
        };
        let lines = matches!(self, Self::Lines(_)).then_some((0, None));
        lines
            .into_iter()
            .chain(runs.iter().map(|(start, labels)| (*start, labels.as_ref())))
    }

    /// The furthest file offset its acknowledgement reaches.
    pub fn end(&self) -> u64 {
        match self {
            Self::Lines(b) => b.byte_range().end,
            Self::Records(r) => r.acks.iter().map(|a| a.byte_range().end).max().unwrap_or(0),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        match self {
            Self::Lines(b) => b.len(),
            Self::Records(r) => r.records.len(),
        }
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records, in order.
    pub fn lines(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        let (lines, records) = match self {
            Self::Lines(b) => (Some(b.lines()), None),
            Self::Records(r) => (None, Some(r.records.iter())),
        };
        let lines = lines.into_iter().flatten().map(|l| Entry {
            bytes: l.bytes,
            time: None,
        });
        let data = match self {
            Self::Records(r) => &r.data[..],
            Self::Lines(_) => &[][..],
        };
        let records = records.into_iter().flatten().map(move |(range, time)| Entry {
            bytes: &data[range.clone()],
            time: *time,
        });
        lines.chain(records)
    }

    /// Drops the records and keeps the acknowledgement.
    pub fn into_ack(self) -> ChunkAck {
        match self {
            Self::Lines(b) => ChunkAck(vec![b.into_ack()]),
            Self::Records(r) => ChunkAck(r.acks),
        }
    }

    /// Acknowledges every record.
    pub fn ack(self) {
        self.into_ack().ack();
    }
}

/// The acknowledgement of a [`Chunk`]; dropped without [`ChunkAck::ack`],
/// its bytes stay unacknowledged and are read again after a restart.
#[derive(Debug)]
pub struct ChunkAck(Vec<AckToken>);

impl ChunkAck {
    /// Acknowledges delivery of the chunk's records.
    pub fn ack(self) {
        for token in self.0 {
            token.ack();
        }
    }
}
