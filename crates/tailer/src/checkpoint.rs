//! Durable checkpoints: file identity (device, inode and a fingerprint of the
//! first bytes), per-file acknowledged progress, and the versioned on-disk
//! format written atomically (temp file, fsync, rename, fsync of the directory).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TailerError;

/// How many leading bytes of a file its fingerprint covers at most.
pub(crate) const FINGERPRINT_BYTES: usize = 256;

/// A hash of a file's first `len` bytes. Together with (device, inode) it
/// tells the same file from a new one that reuses the inode, and a file that
/// was truncated and rewritten from one that merely grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Fingerprint {
    pub(crate) len: u32,
    pub(crate) hash: u64,
}

/// 64-bit FNV-1a: tiny, stable across versions and platforms (the hash is
/// stored on disk), and plenty for 256 bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Fingerprint {
    /// The fingerprint of the first bytes of `file` (up to [`FINGERPRINT_BYTES`]).
    pub(crate) fn of(file: &File) -> io::Result<Self> {
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let n = read_full_at(file, &mut buf, 0)?;
        Ok(Self {
            len: n as u32,
            hash: fnv1a(&buf[..n]),
        })
    }

    /// Whether `file` still starts with the bytes this fingerprint was taken of.
    pub(crate) fn matches(&self, file: &File) -> io::Result<bool> {
        if self.len == 0 {
            return Ok(true);
        }
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let want = self.len as usize;
        let n = read_full_at(file, &mut buf[..want], 0)?;
        Ok(n == want && fnv1a(&buf[..n]) == self.hash)
    }

    /// Whether it covers fewer bytes than it could.
    pub(crate) fn is_short(&self) -> bool {
        (self.len as usize) < FINGERPRINT_BYTES
    }
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The acknowledged progress of one followed file.
///
/// Batches cover consecutive byte ranges; acks may arrive in any order, and
/// `committed` advances over the longest acknowledged prefix only.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Bumped when the file is truncated: acks of older generations refer to
    /// bytes that are gone and are ignored.
    pub(crate) generation: u64,
    /// Every byte before this offset is delivered and acknowledged.
    pub(crate) committed: u64,
    /// Acknowledged ranges beyond `committed` (start → end).
    done: BTreeMap<u64, u64>,
    /// Batches sent and neither acked nor dropped yet.
    pub(crate) inflight: u64,
}

impl Progress {
    pub(crate) fn new(committed: u64) -> Self {
        Self {
            generation: 0,
            committed,
            done: BTreeMap::new(),
            inflight: 0,
        }
    }

    /// Records that `start..end` (of generation `generation`) is delivered; returns
    /// whether `committed` moved.
    pub(crate) fn ack(&mut self, generation: u64, start: u64, end: u64) -> bool {
        if generation != self.generation || end <= self.committed {
            return false;
        }
        if start > self.committed {
            self.done.insert(start, end);
            return false;
        }
        self.committed = end;
        while let Some(entry) = self.done.first_entry() {
            if *entry.key() > self.committed {
                break;
            }
            let end = entry.remove();
            self.committed = self.committed.max(end);
        }
        true
    }

    /// Starts a new generation at offset 0 (after a truncation).
    pub(crate) fn restart(&mut self) {
        self.generation += 1;
        self.committed = 0;
        self.done.clear();
    }
}

/// One file's entry in the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Number of leading bytes the fingerprint covers.
    pub(crate) fingerprint_len: u32,
    /// FNV-1a 64 of those bytes, as 16 hex digits.
    pub(crate) fingerprint: String,
    /// Every byte before this offset was delivered and acknowledged.
    pub(crate) offset: u64,
    /// Last known path (informational, and used to find a rotated file again
    /// after a restart).
    pub(crate) path: PathBuf,
}

impl Entry {
    pub(crate) fn fingerprint(&self) -> Option<Fingerprint> {
        let hash = u64::from_str_radix(&self.fingerprint, 16).ok()?;
        Some(Fingerprint {
            len: self.fingerprint_len,
            hash,
        })
    }

    pub(crate) fn new(dev: u64, ino: u64, fp: Fingerprint, offset: u64, path: PathBuf) -> Self {
        Self {
            dev,
            ino,
            fingerprint_len: fp.len,
            fingerprint: format!("{:016x}", fp.hash),
            offset,
            path,
        }
    }
}

/// The on-disk format. New versions add variants; old ones stay readable.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum State {
    #[serde(rename = "1")]
    V1 { files: Vec<Entry> },
}

/// The checkpoint file of one follower, locked for its lifetime.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    /// Held open (and locked) so a second process with the same name fails at start.
    _lock: File,
}

impl Store {
    /// Creates `dir` if needed, takes the lock, and loads the entries. The
    /// entries are written back at once, so an unwritable directory is
    /// reported here, at start, rather than at the first checkpoint.
    pub(crate) fn open(dir: &Path, name: &str) -> Result<(Self, Vec<Entry>), TailerError> {
        let state_err = |source: io::Error| TailerError::StateDir {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(state_err)?;
        let path = dir.join(format!("{name}.checkpoint.json"));
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(state_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(TailerError::StateLocked {
                    checkpoint: path,
                    lock: lock_path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(state_err(e)),
        }
        let entries = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(State::V1 { files }) => files,
                Err(e) => {
                    return Err(TailerError::Checkpoint {
                        path,
                        reason: e.to_string(),
                    });
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(TailerError::Checkpoint {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let tmp = dir.join(format!(".{name}.checkpoint.json.tmp"));
        let store = Self {
            dir: dir.to_owned(),
            path,
            tmp,
            _lock: lock,
        };
        store.write(&entries).map_err(state_err)?;
        Ok((store, entries))
    }

    /// The checkpoint file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the checkpoint atomically: a crash leaves the old or the new
    /// file, never a mix.
    pub(crate) fn write(&self, entries: &[Entry]) -> io::Result<()> {
        let state = State::V1 {
            files: entries.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&state).map_err(io::Error::other)?;
        let mut f = File::create(&self.tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acks_advance_over_the_acknowledged_prefix() {
        let mut p = Progress::new(0);
        assert!(!p.ack(0, 10, 20));
        assert!(!p.ack(0, 30, 40));
        assert_eq!(p.committed, 0);
        assert!(p.ack(0, 0, 10));
        assert_eq!(p.committed, 20);
        assert!(p.ack(0, 20, 30));
        assert_eq!(p.committed, 40);
        // A stale generation is ignored.
        p.restart();
        assert!(!p.ack(0, 0, 50));
        assert_eq!(p.committed, 0);
        assert!(p.ack(1, 0, 5));
        assert_eq!(p.committed, 5);
    }

    #[test]
    fn checkpoint_round_trips_and_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let (store, entries) = Store::open(dir.path(), "t").unwrap();
        assert!(entries.is_empty());
        let e = Entry::new(1, 2, Fingerprint { len: 3, hash: 0xabc }, 42, "/x/y.log".into());
        store.write(std::slice::from_ref(&e)).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("\"version\": \"1\""), "{text}");
        drop(store);
        let (_store, entries) = Store::open(dir.path(), "t").unwrap();
        assert_eq!(entries, vec![e]);
    }

    #[test]
    fn a_second_follower_with_the_same_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_a, _) = Store::open(dir.path(), "t").unwrap();
        let err = Store::open(dir.path(), "t").unwrap_err();
        assert!(matches!(err, TailerError::StateLocked { .. }), "{err}");
        Store::open(dir.path(), "other").unwrap();
    }

    #[test]
    fn a_corrupt_or_unknown_checkpoint_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("t.checkpoint.json"), r#"{"version":"9","files":[]}"#).unwrap();
        let err = Store::open(dir.path(), "t").unwrap_err();
        assert!(matches!(err, TailerError::Checkpoint { .. }), "{err}");
        assert!(err.to_string().contains("t.checkpoint.json"), "{err}");
    }

    #[test]
    fn fingerprint_tells_rewritten_files_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"first line\nsecond\n").unwrap();
        let fp = Fingerprint::of(&File::open(&p).unwrap()).unwrap();
        assert_eq!(fp.len, 18);
        fs::write(&p, b"first line\nsecond\nmore\n").unwrap();
        assert!(fp.matches(&File::open(&p).unwrap()).unwrap());
        fs::write(&p, b"other line\nsecond\n").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()).unwrap());
        fs::write(&p, b"first").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()).unwrap());
    }
}
