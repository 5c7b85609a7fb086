//! Line framing: turns the bytes read from a file into line ranges.
//!
//! Pure and synchronous, so it is tested on its own. Lines end with `\n`; a
//! `\r` right before it is stripped too. Bytes are never decoded: invalid
//! UTF-8 passes through untouched. Lines longer than `max_line_bytes` are
//! split into pieces (default) or truncated, and counted either way. NUL
//! bytes at the start of a line are skipped: they are the sparse padding a
//! copytruncate leaves behind when the app writes without `O_APPEND`, never
//! log text.

use memchr::memchr;

use crate::{LineKind, LongLines};

/// One line found in a buffer: `buf[start..end]`, without its terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineMeta {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: LineKind,
}

/// Counters the framer accumulates; the caller turns them into events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameStats {
    /// Lines longer than the limit (each counted once, however it was cut).
    pub(crate) too_long: u64,
    /// NUL padding bytes skipped at line starts.
    pub(crate) nul_skipped: u64,
}

/// The framing state of one file, carried between reads.
#[derive(Debug)]
pub(crate) struct Framer {
    max: usize,
    mode: LongLines,
    /// Truncate mode: the rest of an over-long line is being dropped up to its `\n`.
    discarding: bool,
    /// Split mode: a piece of the current line was already emitted (and counted).
    continuing: bool,
    pub(crate) stats: FrameStats,
}

impl Framer {
    pub(crate) fn new(max: usize, mode: LongLines) -> Self {
        Self {
            max,
            mode,
            discarding: false,
            continuing: false,
            stats: FrameStats::default(),
        }
    }

    /// Forgets any line in progress (after a truncation).
    pub(crate) fn reset(&mut self) {
        self.discarding = false;
        self.continuing = false;
    }

    /// Frames `buf`, appending lines to `out`. Returns how many bytes of
    /// `buf` are consumed; the rest is an incomplete line (at most `max`
    /// bytes) to be passed again, with more bytes after it, next time.
    pub(crate) fn frame(&mut self, buf: &[u8], out: &mut Vec<LineMeta>) -> usize {
        let len = buf.len();
        let mut pos = 0;
        if self.discarding {
            match memchr(b'\n', buf) {
                Some(i) => {
                    pos = i + 1;
                    self.discarding = false;
                }
                None => return len,
            }
        }
        loop {
            if pos < len && buf[pos] == 0 && !self.continuing {
                let n = buf[pos..].iter().position(|&b| b != 0).unwrap_or(len - pos);
                self.stats.nul_skipped += n as u64;
                pos += n;
            }
            let Some(i) = memchr(b'\n', &buf[pos..]) else { break };
            let nl = pos + i;
            let end = if nl > pos && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
            self.line(pos, end, out);
            pos = nl + 1;
        }
        // The remainder is an incomplete line: cut it if it is already too long.
        if len - pos > self.max {
            if !self.continuing {
                self.stats.too_long += 1;
            }
            match self.mode {
                LongLines::Split => {
                    while len - pos > self.max {
                        out.push(LineMeta {
                            start: pos,
                            end: pos + self.max,
                            kind: LineKind::Split,
                        });
                        pos += self.max;
                    }
                    self.continuing = true;
                }
                LongLines::Truncate => {
                    out.push(LineMeta {
                        start: pos,
                        end: pos + self.max,
                        kind: LineKind::Truncated,
                    });
                    self.discarding = true;
                    self.continuing = false;
                    pos = len;
                }
            }
        }
        pos
    }

    /// Emits the incomplete line `buf` (everything `frame` left) as a
    /// [`LineKind::Partial`] line. Returns the bytes consumed (all of them).
    pub(crate) fn flush(&mut self, buf: &[u8], out: &mut Vec<LineMeta>) -> usize {
        let start = if self.continuing {
            0
        } else {
            buf.iter().position(|&b| b != 0).unwrap_or(buf.len())
        };
        self.stats.nul_skipped += start as u64;
        if start < buf.len() {
            out.push(LineMeta {
                start,
                end: buf.len(),
                kind: LineKind::Partial,
            });
        }
        self.continuing = false;
        buf.len()
    }

    fn line(&mut self, mut start: usize, end: usize, out: &mut Vec<LineMeta>) {
        let continuing = std::mem::take(&mut self.continuing);
        if end - start <= self.max {
            out.push(LineMeta {
                start,
                end,
                kind: LineKind::Complete,
            });
            return;
        }
        if !continuing {
            self.stats.too_long += 1;
        }
        match self.mode {
            LongLines::Split => {
                while end - start > self.max {
                    out.push(LineMeta {
                        start,
                        end: start + self.max,
                        kind: LineKind::Split,
                    });
                    start += self.max;
                }
                out.push(LineMeta {
                    start,
                    end,
                    kind: LineKind::Complete,
                });
            }
            LongLines::Truncate => {
                out.push(LineMeta {
                    start,
                    end: start + self.max,
                    kind: LineKind::Truncated,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Frames `chunks` fed one after another (as successive reads would),
    /// then flushes; returns each line with its kind.
    fn frame_all(max: usize, mode: LongLines, chunks: &[&[u8]], flush: bool) -> (Vec<(Vec<u8>, LineKind)>, FrameStats) {
        let mut f = Framer::new(max, mode);
        let mut buf: Vec<u8> = Vec::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            let mut out = Vec::new();
            let used = f.frame(&buf, &mut out);
            lines.extend(out.iter().map(|m| (buf[m.start..m.end].to_vec(), m.kind)));
            buf.drain(..used);
        }
        if flush {
            let mut out = Vec::new();
            f.flush(&buf, &mut out);
            lines.extend(out.iter().map(|m| (buf[m.start..m.end].to_vec(), m.kind)));
        }
        (lines, f.stats)
    }

    fn complete(s: &str) -> (Vec<u8>, LineKind) {
        (s.as_bytes().to_vec(), LineKind::Complete)
    }

    #[test]
    fn lf_and_crlf_lines_and_empty_lines() {
        let (lines, _) = frame_all(100, LongLines::Split, &[b"a\r\nbb\n\n\r\nccc\n"], false);
        assert_eq!(
            lines,
            vec![
                complete("a"),
                complete("bb"),
                complete(""),
                complete(""),
                complete("ccc")
            ]
        );
    }

    #[test]
    fn a_line_split_across_reads_is_joined() {
        let (lines, _) = frame_all(100, LongLines::Split, &[b"hel", b"lo\nwor", b"ld\r", b"\n"], false);
        assert_eq!(lines, vec![complete("hello"), complete("world")]);
    }

    #[test]
    fn partial_last_line_is_held_until_flushed() {
        let (lines, _) = frame_all(100, LongLines::Split, &[b"one\ntw"], false);
        assert_eq!(lines, vec![complete("one")]);
        let (lines, _) = frame_all(100, LongLines::Split, &[b"one\ntw"], true);
        assert_eq!(lines, vec![complete("one"), (b"tw".to_vec(), LineKind::Partial)]);
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let (lines, _) = frame_all(100, LongLines::Split, &[b"\xff\xfe ok \xc3\x28\n"], false);
        assert_eq!(lines, vec![(b"\xff\xfe ok \xc3\x28".to_vec(), LineKind::Complete)]);
    }

    #[test]
    fn long_lines_are_split_and_counted_once() {
        let (lines, stats) = frame_all(4, LongLines::Split, &[b"abcdefghij\nxy\n"], false);
        assert_eq!(
            lines,
            vec![
                (b"abcd".to_vec(), LineKind::Split),
                (b"efgh".to_vec(), LineKind::Split),
                complete("ij"),
                complete("xy")
            ]
        );
        assert_eq!(stats.too_long, 1);
    }

    #[test]
    fn long_lines_without_newline_never_stall() {
        // Nothing but one endless line: pieces come out as the bytes arrive.
        let (lines, stats) = frame_all(4, LongLines::Split, &[b"abcdef", b"ghijkl", b"mn\n"], false);
        let joined: Vec<u8> = lines.iter().flat_map(|(l, _)| l.clone()).collect();
        assert_eq!(joined, b"abcdefghijklmn");
        assert!(
            lines[..lines.len() - 1]
                .iter()
                .all(|(l, k)| *k == LineKind::Split && l.len() == 4)
        );
        assert_eq!(lines.last().unwrap().1, LineKind::Complete);
        assert_eq!(stats.too_long, 1);
    }

    #[test]
    fn truncate_mode_keeps_the_head_and_drops_the_rest() {
        let (lines, stats) = frame_all(
            4,
            LongLines::Truncate,
            &[b"abcdefgh", b"ijkl", b"mn\nok\nabcdefg\n"],
            false,
        );
        assert_eq!(
            lines,
            vec![
                (b"abcd".to_vec(), LineKind::Truncated),
                complete("ok"),
                (b"abcd".to_vec(), LineKind::Truncated)
            ]
        );
        assert_eq!(stats.too_long, 2);
    }

    #[test]
    fn nul_padding_is_skipped() {
        let (lines, stats) = frame_all(100, LongLines::Split, &[b"\0\0\0\0", b"\0\0line\n\0\0", b"\0"], true);
        assert_eq!(lines, vec![complete("line")]);
        assert_eq!(stats.nul_skipped, 9);
    }

    proptest! {
        /// However the input is cut into reads, the framed lines are the
        /// input's lines (pieces joined), and nothing is lost or invented.
        #[test]
        fn framing_is_independent_of_read_boundaries(
            lines in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 0..30),
            cuts in proptest::collection::vec(0usize..2000, 0..10),
            crlf in any::<bool>(),
        ) {
            let sep: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let lines: Vec<Vec<u8>> = lines
                .into_iter()
                .map(|l| l.into_iter().filter(|&b| b != b'\n' && b != b'\r').collect())
                .collect();
            let mut input = Vec::new();
            for l in &lines {
                input.extend_from_slice(l);
                input.extend_from_slice(sep);
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([input.len()]) {
                chunks.push(&input[last..c]);
                last = c;
            }
            let (got, _) = frame_all(16, LongLines::Split, &chunks, true);
            let mut rebuilt: Vec<Vec<u8>> = Vec::new();
            let mut cur = Vec::new();
            for (bytes, kind) in got {
                cur.extend_from_slice(&bytes);
                if kind != LineKind::Split {
                    rebuilt.push(std::mem::take(&mut cur));
                }
            }
            prop_assert_eq!(rebuilt, lines);
        }
    }
}
