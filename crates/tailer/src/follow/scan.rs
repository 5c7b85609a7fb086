//! Discovery: inotify watches on the pattern directories, the scan that
//! matches paths to open files, and what a scan finds (new files, rotations
//! by rename, deletions, a replaced file at a followed path).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tracing::{debug, warn};

use super::{Book, Engine, Reach, TAIL_LOOKBACK, Tracked};
use crate::batch::FileInfo;
use crate::checkpoint::{Fingerprint, Progress};
use crate::framing::Framer;
use crate::paths::Key;

impl Engine {
    pub(super) fn notify_failed(&mut self, reason: &str) {
        warn!(reason, "Cannot use inotify; polling only.");
        self.events.notify_unavailable(reason);
        self.watcher = None;
    }

    /// Watches the pattern directories that exist and are not watched yet
    /// (again, if one was replaced). Subdirectories of `**` patterns are
    /// found by polling only.
    pub(super) fn refresh_watches(&mut self) {
        if self.watcher.is_none() {
            return;
        }
        for dir in self.patterns.watch_dirs() {
            let ino = std::fs::metadata(&dir).ok().filter(|m| m.is_dir()).map(|m| m.ino());
            if ino.is_some() && self.watched.get(&dir).map(|w| w.0) == ino {
                continue;
            }
            let Some(w) = self.watcher.as_mut() else { return };
            if let Some((_, wd)) = self.watched.remove(&dir) {
                w.unwatch(wd);
            }
            let Some(ino) = ino else { continue };
            match w.watch(&dir) {
                Ok(wd) => {
                    self.watched.insert(dir, (ino, wd));
                }
                Err(e) if e.raw_os_error() == Some(28) => {
                    // ENOSPC: out of inotify watches (fs.inotify.max_user_watches).
                    self.notify_failed(&format!("cannot watch {}: {e}", dir.display()));
                    return;
                }
                Err(e) => debug!(dir = %dir.display(), error = %e, "Cannot watch directory."),
            }
        }
    }

    /// Reconciles the open files with what the patterns name now.
    pub(super) fn scan(&mut self, first: bool) {
        self.refresh_watches();
        let found = self.patterns.scan();
        // Files we follow: renamed within the followed paths, rotated away, or deleted.
        for i in 0..self.files.len() {
            let key = self.files[i].key;
            match found.get(&key) {
                Some(path) => {
                    let t = &mut self.files[i];
                    if t.reach != Reach::Followed {
                        t.reach = Reach::Followed;
                    }
                    let book = self.books.get_mut(&t.id).expect("every open file has a book");
                    if *path != book.path && !resolves_to(&book.path, key) {
                        debug!(from = %book.path.display(), to = %path.display(), "File renamed.");
                        self.events.file_rotated(&t.info, Some(path));
                        let info = Arc::new(FileInfo {
                            path: path.clone(),
                            dev: key.0,
                            ino: key.1,
                        });
                        t.info = info.clone();
                        book.info = info;
                        book.path = path.clone();
                        self.dirty = true;
                    }
                }
                None if self.files[i].reach == Reach::Followed => self.mark_gone(i),
                None if self.files[i].reach == Reach::Rotated => self.locate_rotated(i),
                None => {}
            }
        }
        // New files.
        let mut new: Vec<(Key, PathBuf)> = found
            .into_iter()
            .filter(|(k, _)| !self.by_key.contains_key(k))
            .collect();
        new.sort_by(|a, b| a.1.cmp(&b.1));
        for (_, path) in new {
            self.open(&path, first, Reach::Followed);
        }
        if first {
            // Rotated files recorded in the checkpoint but no longer named by a pattern.
            let rotated: Vec<(Key, PathBuf)> = self
                .entries
                .iter()
                .filter(|e| resolves_to(&e.path, (e.dev, e.ino)))
                .map(|e| ((e.dev, e.ino), e.path.clone()))
                .collect();
            if !rotated.is_empty() {
                // A file may have appeared under a followed name since the
                // scan above (an entry's old path reused by a new file with a
                // reused inode): that one is followed, not rotated.
                let found = self.patterns.scan();
                for (key, path) in rotated {
                    match found.get(&key) {
                        Some(path) => self.open(path, true, Reach::Followed),
                        None => self.open(&path, true, Reach::Rotated),
                    }
                }
            }
        } else if !self.entries.is_empty() && Instant::now() >= self.entries_until {
            debug!(
                entries = self.entries.len(),
                "Dropping checkpoint entries that matched no file."
            );
            self.entries.clear();
            self.dirty = true;
        }
    }

    /// A followed file no longer has a followed name: rotated or deleted.
    pub(super) fn mark_gone(&mut self, i: usize) {
        let t = &mut self.files[i];
        let deleted = t.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true);
        let book = self.books.get_mut(&t.id).expect("every open file has a book");
        if deleted {
            t.reach = Reach::Deleted;
            debug!(path = %t.info.path.display(), "File deleted.");
            self.events.file_deleted(&t.info);
        } else {
            t.reach = Reach::Rotated;
            let to = current_path(&t.file);
            debug!(path = %t.info.path.display(), to = ?to, "File rotated.");
            self.events.file_rotated(&t.info, to.as_deref());
            if let Some(to) = to {
                book.path = to;
                self.dirty = true;
            }
        }
    }

    /// A rotated file may be renamed again (`app.log.1` → `app.log.2`):
    /// keeps its book's path current, because after a restart the checkpoint
    /// finds a rotated file by that path alone.
    pub(super) fn locate_rotated(&mut self, i: usize) {
        let t = &mut self.files[i];
        let Some(now) = current_path(&t.file) else {
            if t.file.metadata().is_ok_and(|m| m.nlink() == 0) {
                t.reach = Reach::Deleted;
                debug!(path = %t.info.path.display(), "Rotated file deleted.");
                self.events.file_deleted(&t.info);
            }
            return;
        };
        let book = self.books.get_mut(&t.id).expect("every open file has a book");
        if book.path != now {
            debug!(path = %t.info.path.display(), from = %book.path.display(), to = %now.display(), "Rotated file renamed.");
            self.events.file_rotated(&t.info, Some(&now));
            book.path = now;
            self.dirty = true;
        }
    }

    /// Opens `path` and starts following it.
    pub(super) fn open(&mut self, path: &Path, first: bool, reach: Reach) {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.path_error(path, &e),
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return,
            Err(e) => return self.path_error(path, &e),
        };
        self.failing_paths.remove(path);
        let key = (meta.dev(), meta.ino());
        if self.by_key.contains_key(&key) {
            return; // Replaced between scan and open by a file we already follow.
        }
        let fp = match Fingerprint::of(&file) {
            Ok(fp) => fp,
            Err(e) => return self.path_error(path, &e),
        };
        let size = meta.len();
        let saved = self
            .entries
            .iter()
            .position(|e| (e.dev, e.ino) == key)
            .map(|i| self.entries.swap_remove(i));
        let resume = saved.as_ref().and_then(|e| {
            let efp = e.fingerprint()?;
            (e.offset <= size && efp.matches(&file).ok()?).then_some(e.offset)
        });
        let offset = match resume {
            Some(o) => o,
            None if first && self.tail_first => tail_offset(&file, size),
            None => 0,
        };
        let id = self.next_id;
        self.next_id += 1;
        let info = Arc::new(FileInfo {
            path: path.to_owned(),
            dev: key.0,
            ino: key.1,
        });
        debug!(path = %path.display(), offset, resumed = resume.is_some(), "Following file.");
        self.events.file_added(&info, offset, resume.is_some());
        self.books.insert(
            id,
            Book {
                progress: Progress::new(offset),
                dev: key.0,
                ino: key.1,
                fp,
                path: path.to_owned(),
                info: info.clone(),
                released: false,
                keep_unacked: false,
                end: 0,
            },
        );
        self.by_key.insert(key, id);
        self.files.push(Tracked {
            id,
            key,
            file,
            info,
            read_pos: offset,
            size,
            buf: BytesMut::new(),
            framer: Framer::new(self.cfg.max_line_bytes, self.cfg.long_lines),
            fp,
            reach,
            last_growth: Instant::now(),
            partial_since: None,
            at_eof: false,
            failing: false,
        });
        if reach == Reach::Rotated {
            self.events
                .file_rotated(&self.files.last().expect("just pushed").info, None);
        }
        self.dirty = true;
    }

    pub(super) fn path_error(&mut self, path: &Path, e: &io::Error) {
        if e.kind() == io::ErrorKind::NotFound {
            return; // Gone between scan and open: nothing to follow.
        }
        if self.failing_paths.insert(path.to_owned()) {
            warn!(path = %path.display(), error = %e, "Cannot open file; will retry.");
            self.events.file_error(path, e);
        }
    }
}

/// Whether `path` names the file `key` right now.
fn resolves_to(path: &Path, key: Key) -> bool {
    std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == key)
}

/// Where an open file lives now, from `/proc/self/fd` (Linux); `None` when
/// unknown or deleted.
fn current_path(file: &File) -> Option<PathBuf> {
    let p = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    (!p.to_string_lossy().ends_with(" (deleted)")).then_some(p)
}

/// The offset after the last `\n` near the end of the file (so the first
/// line read is whole), 0 for a short file without one.
fn tail_offset(file: &File, size: u64) -> u64 {
    let from = size.saturating_sub(TAIL_LOOKBACK);
    let mut buf = vec![0u8; (size - from) as usize];
    let n = file.read_at(&mut buf, from).unwrap_or(0);
    match memchr::memrchr(b'\n', &buf[..n]) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    }
}
