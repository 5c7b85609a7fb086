//! `?tail=N`: where the last N lines of a file start, found by reading
//! backwards from the end in fixed chunks (never the whole file into memory).
//!
//! Lines are counted like `tail -n`: a final line without a newline counts
//! as a line, and the newline that ends the file does not start another.
//! The scan reads at most [`MAX_SCAN`] bytes back from the end (the reads
//! happen on a runtime thread): when N lines reach further back, the answer
//! starts at the first line that begins within that window.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes read per step backwards.
const CHUNK: usize = 64 * 1024;

/// Most bytes read backwards for one request.
pub const MAX_SCAN: u64 = 16 << 20;

/// The offset where the last `n` lines of the first `len` bytes of `file`
/// start (0 when it has `n` lines or fewer; `len` when `n` is 0).
pub fn start_of_last_lines(file: &File, len: u64, n: u64) -> std::io::Result<u64> {
    start_within(file, len, n, MAX_SCAN)
}

fn start_within(file: &File, len: u64, n: u64, max_scan: u64) -> std::io::Result<u64> {
    if n == 0 || len == 0 {
        return Ok(len);
    }
    let floor = len.saturating_sub(max_scan);
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let mut pos = len;
    let mut seen = 0u64;
    let mut first_line_in_window = None;
    while pos > floor {
        let start = pos.saturating_sub(buf.len() as u64).max(floor);
        let want = usize::try_from(pos - start).unwrap_or(buf.len());
        let chunk = &mut buf[..want];
        file.read_exact_at(chunk, start)?;
        for at in memchr::memrchr_iter(b'\n', chunk) {
            let abs = start + at as u64;
            if abs + 1 == len {
                // The newline ending the file ends the last line.
                continue;
            }
            seen += 1;
            first_line_in_window = Some(abs + 1);
            if seen == n {
                return Ok(abs + 1);
            }
        }
        pos = start;
    }
    if floor == 0 {
        return Ok(0);
    }
    // The window ended first: start at the first whole line within it.
    Ok(first_line_in_window.unwrap_or(floor))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn tail(content: &[u8], n: u64) -> String {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        let at = start_of_last_lines(&f, content.len() as u64, n).unwrap();
        String::from_utf8(content[at as usize..].to_vec()).unwrap()
    }

    #[test]
    fn counts_lines_like_tail_n() {
        assert_eq!(tail(b"a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 3), "a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), "c", "a last line without newline counts");
        assert_eq!(tail(b"a\nb\nc", 2), "b\nc");
        assert_eq!(tail(b"a\nb\n", 0), "");
        assert_eq!(tail(b"", 5), "");
        assert_eq!(tail(b"\n\n\n", 2), "\n\n");
    }

    #[test]
    fn crosses_chunk_boundaries() {
        let mut content = Vec::new();
        for i in 0..40_000 {
            writeln!(content, "line {i:05}").unwrap();
        }
        let got = tail(&content, 30_000);
        assert!(got.starts_with("line 10000\n"), "{}", &got[..20]);
        assert_eq!(got.lines().count(), 30_000);
        let long = [vec![b'x'; 200_000], b"\nend\n".to_vec()].concat();
        assert_eq!(tail(&long, 1), "end\n");
        assert_eq!(tail(&long, 2).len(), 200_005);
    }

    #[test]
    fn reads_back_at_most_the_window() {
        let content = b"aaaa\nbbbb\ncccc\ndddd\n";
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        let len = content.len() as u64;
        // 12 bytes back reach into `bbbb`: the answer starts at `cccc`.
        assert_eq!(start_within(&f, len, 10, 12).unwrap(), 10);
        assert_eq!(start_within(&f, len, 1, 12).unwrap(), 15);
        assert_eq!(start_within(&f, len, 10, 100).unwrap(), 0);
        // No line starts in the window: from the window's start.
        assert_eq!(start_within(&f, len, 10, 3).unwrap(), len - 3);
    }
}
