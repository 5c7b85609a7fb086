//! Where output lines go: stdout, or a file with size-based rotation (tail-rewrite
//! `--output`, the log-shipper `file://` sink).
//!
//! The callers batch lines in a buffer and hand whole buffers to
//! [`Output::write`], so there is one `write(2)` per batch, not per line.
//! For a file:
//! - it is opened for appending (a restart continues the same file);
//! - with a maximum size, it rotates *at line boundaries* before a write
//!   would take it past the limit: `out.log` → `out.log.1` → … →
//!   `out.log.N` (the oldest is deleted), so at most N + 1 files exist. A
//!   single line longer than the limit gets a file of its own.
//! - when something else renames or deletes the file (an external
//!   logrotate), [`Output::reopen_if_moved`] notices and opens a new one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// A file, optionally rotated by size.
    File {
        /// The file's path.
        path: PathBuf,
        /// Rotate before the file would exceed this many bytes.
        max_size: Option<u64>,
        /// Rotated files to keep (`path.1` … `path.N`).
        keep: usize,
    },
}

/// An open output.
#[derive(Debug)]
pub struct Output {
    target: Target,
    file: Option<File>,
    /// (device, inode) of the open file, to notice external rotation.
    identity: Option<(u64, u64)>,
    /// Bytes in the current file.
    size: u64,
    /// Bytes written since start.
    pub bytes_written: u64,
    /// Rotations done since start.
    pub rotations: u64,
}

impl Output {
    /// Opens the target (creating the file if needed).
    pub fn open(target: Target) -> io::Result<Self> {
        let mut out = Self {
            target,
            file: None,
            identity: None,
            size: 0,
            bytes_written: 0,
            rotations: 0,
        };
        out.open_file()?;
        Ok(out)
    }

    fn open_file(&mut self) -> io::Result<()> {
        if let Target::File { path, .. } = &self.target {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let meta = file.metadata()?;
            self.size = meta.len();
            self.identity = Some((meta.dev(), meta.ino()));
            self.file = Some(file);
        }
        Ok(())
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Writes a buffer of whole lines, rotating between lines as needed.
    pub fn write(&mut self, mut buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let Target::File { max_size, .. } = &self.target else {
            let mut stdout = io::stdout().lock();
            stdout.write_all(buf)?;
            stdout.flush()?;
            self.bytes_written += buf.len() as u64;
            return Ok(());
        };
        let max_size = *max_size;
        while !buf.is_empty() {
            if let Some(max) = max_size {
                let room = max.saturating_sub(self.size);
                if buf.len() as u64 > room {
                    let fits = buf[..room as usize].iter().rposition(|&b| b == b'\n').map(|p| p + 1);
                    let cut = match fits {
                        Some(cut) => Some(cut),
                        // A line longer than the limit goes alone into a fresh file.
                        None if self.size == 0 => Some(memchr::memchr(b'\n', buf).map_or(buf.len(), |p| p + 1)),
                        None => None,
                    };
                    if let Some(cut) = cut {
                        self.write_file(&buf[..cut])?;
                        buf = &buf[cut..];
                    }
                    if !buf.is_empty() || self.size >= max {
                        self.rotate()?;
                    }
                    continue;
                }
            }
            self.write_file(buf)?;
            break;
        }
        Ok(())
    }

    fn write_file(&mut self, buf: &[u8]) -> io::Result<()> {
        let file = self.file.as_mut().expect("a file target has an open file");
        file.write_all(buf)?;
        self.size += buf.len() as u64;
        self.bytes_written += buf.len() as u64;
        Ok(())
    }

    /// Rotates now: `path.{N-1}` → `path.N`, …, `path` → `path.1`, and opens
    /// a fresh `path`.
    pub fn rotate(&mut self) -> io::Result<()> {
        let Target::File { path, keep, .. } = &self.target else {
            return Ok(());
        };
        let (path, keep) = (path.clone(), *keep);
        self.file = None;
        if keep == 0 {
            remove_if_exists(&path)?;
        } else {
            for n in (1..keep).rev() {
                rename_if_exists(&numbered(&path, n), &numbered(&path, n + 1))?;
            }
            rename_if_exists(&path, &numbered(&path, 1))?;
        }
        self.rotations += 1;
        tracing::debug!(path = %path.display(), keep, "Output rotated.");
        self.open_file()
    }

    /// Reopens the file when its path no longer names the open file (it was
    /// renamed or deleted by someone else). Returns whether it reopened.
    pub fn reopen_if_moved(&mut self) -> io::Result<bool> {
        let Target::File { path, .. } = &self.target else {
            return Ok(false);
        };
        let current = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        if current.is_some() && current == self.identity {
            return Ok(false);
        }
        tracing::info!(path = %path.display(), "Output file was moved or deleted; reopening.");
        self.open_file()?;
        Ok(true)
    }
}

/// `path.N`.
pub fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_at_line_boundaries_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut out = Output::open(Target::File {
            path: path.clone(),
            max_size: Some(10),
            keep: 2,
        })
        .unwrap();
        out.write(b"aaaa\nbbbb\ncccc\n").unwrap();
        assert_eq!(read(&path), "cccc\n");
        assert_eq!(read(&numbered(&path, 1)), "aaaa\nbbbb\n");
        out.write(b"dddd\neeee\n").unwrap();
        assert_eq!(read(&path), "eeee\n");
        assert_eq!(read(&numbered(&path, 1)), "cccc\ndddd\n");
        assert_eq!(read(&numbered(&path, 2)), "aaaa\nbbbb\n");
        out.write(b"ffff\ngggg\n").unwrap();
        assert_eq!(read(&numbered(&path, 2)), "cccc\ndddd\n", "the oldest was dropped");
        assert!(!numbered(&path, 3).exists());
        // A line longer than the limit gets a file of its own.
        out.write(b"0123456789ABCDEF\nh\n").unwrap();
        assert_eq!(read(&path), "h\n");
        assert_eq!(read(&numbered(&path, 1)), "0123456789ABCDEF\n");
        for f in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            let text = read(&f);
            assert!(text.len() <= 10 || text.lines().count() == 1, "{f:?}: {text:?}");
        }
    }

    #[test]
    fn appends_across_restarts_and_reopens_when_moved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let target = Target::File {
            path: path.clone(),
            max_size: None,
            keep: 0,
        };
        Output::open(target.clone()).unwrap().write(b"one\n").unwrap();
        let mut out = Output::open(target).unwrap();
        out.write(b"two\n").unwrap();
        assert_eq!(read(&path), "one\ntwo\n");
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        assert!(out.reopen_if_moved().unwrap());
        out.write(b"three\n").unwrap();
        assert_eq!(read(&path), "three\n");
        assert!(!out.reopen_if_moved().unwrap());
    }

    #[test]
    fn keep_zero_truncates_by_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut out = Output::open(Target::File {
            path: path.clone(),
            max_size: Some(4),
            keep: 0,
        })
        .unwrap();
        out.write(b"ab\ncd\n").unwrap();
        assert_eq!(read(&path), "cd\n");
        assert!(!numbered(&path, 1).exists());
    }
}
