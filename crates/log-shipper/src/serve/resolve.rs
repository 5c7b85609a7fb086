//! Confinement of serve mode: a request path is decoded and checked, then
//! opened beneath the served root so that nothing outside it is ever opened.
//!
//! - [`decode`] percent-decodes the path and refuses what must never reach
//!   the file system: an encoded `/` (`%2F`), a NUL (`%00`), and `..`
//!   components (after decoding, so `%2e%2e` is caught too). Dotfiles are
//!   refused here unless `--serve-hidden` allows them.
//! - [`Root::open`] opens the decoded path relative to a descriptor of the
//!   root. Where the kernel has `openat2(2)` (Linux 5.6) it resolves with
//!   `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: symbolic links are followed
//!   only while they stay beneath the root (an absolute link, or one whose
//!   `..` climbs out, fails with `EXDEV`), and `/proc` magic links are never
//!   followed. Without `openat2` (`ENOSYS`, or a seccomp filter answering
//!   `EPERM`) it walks component by component with `openat(O_NOFOLLOW)` and
//!   refuses every symbolic link.
//! - After opening, `fstat` decides: regular files and directories only
//!   (a FIFO or device is refused; files are opened `O_NONBLOCK` so a FIFO
//!   cannot block the server); a regular file with more than one hard link
//!   is refused unless `--serve-allow-hard-links` (a hard link can make a
//!   file from outside the root appear inside it, and no path check can tell
//!   which name is the "real" one); and paths configured as hidden (the
//!   shipper's own state directory) are refused by their real path, read
//!   back from `/proc/self/fd`, so no symbolic link inside the root can
//!   reach them either.

use std::borrow::Cow;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// Why a request path was refused before touching the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%2F` or `%00` in the path (400).
    #[error("encoded slash or NUL in the path")]
    Encoded,
    /// A `..` component, before or after decoding (400).
    #[error("`..` in the path")]
    DotDot,
    /// A component starting with `.` while dotfiles are hidden (403).
    #[error("hidden file")]
    Hidden,
}

/// Why a path could not be opened beneath the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Nothing there (`ENOENT`, `ENOTDIR`): 404.
    #[error("not found")]
    NotFound,
    /// A symbolic link that leaves the root, or any symbolic link when
    /// `openat2` is unavailable: 403.
    #[error("symbolic link leaves the root")]
    Escape,
    /// The server may not read it (`EACCES`, `EPERM`): 403.
    #[error("permission denied")]
    Denied,
    /// Neither a regular file nor a directory: 403.
    #[error("not a regular file")]
    NotRegular,
    /// A regular file with more than one hard link: 403.
    #[error("file has several hard links")]
    HardLink,
    /// One of the configured hidden paths (the shipper's state): 403.
    #[error("hidden path")]
    Hidden,
    /// Anything else the kernel answered: 500.
    #[error("cannot open: {0}")]
    Other(Errno),
}

/// Any reason a request path does not lead to a served file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Refused before opening.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Refused while or after opening.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// How paths are resolved beneath the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`; symbolic
    /// links that stay beneath the root are followed.
    Beneath,
    /// Component by component with `O_NOFOLLOW`; every symbolic link is
    /// refused.
    Walk,
}

impl Strategy {
    /// A name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Beneath => "openat2-beneath",
            Self::Walk => "openat-nofollow",
        }
    }
}

/// What [`Root::open`] opened: the descriptor and its `fstat`.
#[derive(Debug)]
pub struct Opened {
    /// The open file or directory (read-only).
    pub fd: OwnedFd,
    /// Its status at opening.
    pub stat: Stat,
}

impl Opened {
    /// Whether it is a directory (else it is a regular file).
    pub fn is_dir(&self) -> bool {
        FileType::from_raw_mode(self.stat.st_mode) == FileType::Directory
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        u64::try_from(self.stat.st_size).unwrap_or(0)
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its `(device, inode)` identity.
    pub fn id(&self) -> (u64, u64) {
        (self.stat.st_dev, self.stat.st_ino)
    }

    /// The descriptor as a `File`, for positioned reads.
    pub fn into_file(self) -> File {
        File::from(self.fd)
    }
}

/// The served directory, held open, and the rules for what beneath it may
/// be opened.
#[derive(Debug)]
pub struct Root {
    /// `O_PATH | O_DIRECTORY` descriptor of the root; every open is relative
    /// to it.
    dir: OwnedFd,
    /// The root's canonical path (for logs and the hidden-path check).
    path: PathBuf,
    strategy: Strategy,
    /// Serve regular files with several hard links.
    allow_hard_links: bool,
    /// Paths relative to the root (canonical) that are never served, nor
    /// anything beneath them.
    hidden: Vec<PathBuf>,
}

impl Root {
    /// Opens `path` as the root, using `openat2` when the kernel has it.
    pub fn open_root(path: &Path) -> std::io::Result<Self> {
        let path = std::fs::canonicalize(path)?;
        let dir = rustix::fs::open(&path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        // Probe openat2 once: ENOSYS on kernels before 5.6, EPERM (or
        // ENOSYS) under seccomp profiles that predate it.
        let strategy = match rustix::fs::openat2(
            &dir,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(_) => Strategy::Beneath,
            Err(Errno::NOSYS | Errno::PERM) => Strategy::Walk,
            Err(err) => return Err(err.into()),
        };
        Ok(Self {
            dir,
            path,
            strategy,
            allow_hard_links: false,
            hidden: Vec::new(),
        })
    }

    /// Forces a resolution strategy (tests drive both).
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Serves regular files that have several hard links.
    pub fn allow_hard_links(mut self, allow: bool) -> Self {
        self.allow_hard_links = allow;
        self
    }

    /// Never serves `path` nor anything beneath it, if it lies under the
    /// root (a path elsewhere is not reachable anyway). A path that does not
    /// exist yet is taken as written (made absolute). Hiding the root itself
    /// would serve nothing: that is refused with a warning, and the caller
    /// should hide the state files one by one instead.
    pub fn hide(mut self, path: &Path) -> Self {
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or_default());
        match absolute.strip_prefix(&self.path) {
            Ok(rel) if rel.as_os_str().is_empty() => tracing::warn!(
                path = %absolute.display(),
                "Serve mode cannot hide its whole root; the state files in it are served."
            ),
            Ok(rel) => self.hidden.push(rel.to_path_buf()),
            Err(_) => {}
        }
        self
    }

    /// The canonical root path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether regular files with several hard links are served.
    pub fn hard_links_allowed(&self) -> bool {
        self.allow_hard_links
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Whether `rel` (relative to the root, as in a listing) is hidden.
    pub fn is_hidden_rel(&self, rel: &Path) -> bool {
        self.hidden.iter().any(|h| rel.starts_with(h))
    }

    /// Whether any hidden path lies under the root (then every open is
    /// checked against its real path).
    pub fn has_hidden(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// Decodes, checks and opens a request path: what a request for it
    /// would read.
    pub fn lookup(&self, raw_path: &str, hidden_ok: bool) -> Result<Opened, LookupError> {
        let rel = decode(raw_path, hidden_ok)?;
        Ok(self.open(&rel)?)
    }

    /// Opens `rel` (a decoded, checked path; a leading `/` is ignored)
    /// read-only beneath the root and checks what it is.
    pub fn open(&self, rel: &[u8]) -> Result<Opened, OpenError> {
        let fd = self.open_fd(rel, false)?;
        let stat = rustix::fs::fstat(&fd).map_err(errno)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {
                if stat.st_nlink > 1 && !self.allow_hard_links {
                    return Err(OpenError::HardLink);
                }
            }
            FileType::Directory => {}
            _ => return Err(OpenError::NotRegular),
        }
        if self.has_hidden() && self.is_hidden_fd(fd.as_fd()) {
            return Err(OpenError::Hidden);
        }
        Ok(Opened { fd, stat })
    }

    /// The `(device, inode)` a path leads to now, without opening it for
    /// reading (`O_PATH`): how a follow stream notices rotation.
    pub fn identity(&self, rel: &[u8]) -> Result<(u64, u64), OpenError> {
        let fd = self.open_fd(rel, true)?;
        let stat = rustix::fs::fstat(&fd).map_err(errno)?;
        Ok((stat.st_dev, stat.st_ino))
    }

    fn open_fd(&self, rel: &[u8], path_only: bool) -> Result<OwnedFd, OpenError> {
        let mut rel = rel;
        while let [b'/', rest @ ..] = rel {
            rel = rest;
        }
        let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
        let flags = if path_only {
            OFlags::PATH | OFlags::CLOEXEC
        } else {
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
        };
        match self.strategy {
            Strategy::Beneath => {
                // EAGAIN: a concurrent rename made the kernel unsure a `..`
                // stayed beneath; trying again is what the man page advises.
                let mut tries = 0;
                loop {
                    match rustix::fs::openat2(
                        &self.dir,
                        rel,
                        flags,
                        Mode::empty(),
                        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                    ) {
                        Err(Errno::AGAIN) if tries < 8 => tries += 1,
                        Err(Errno::XDEV | Errno::LOOP) => return Err(OpenError::Escape),
                        other => return other.map_err(errno),
                    }
                }
            }
            Strategy::Walk => self.walk(rel, flags),
        }
    }

    /// Opens `rel` one component at a time, refusing symbolic links.
    fn walk(&self, rel: &[u8], last_flags: OFlags) -> Result<OwnedFd, OpenError> {
        let mut parts = rel
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .peekable();
        let mut current: Option<OwnedFd> = None;
        if parts.peek().is_none() {
            return rustix::fs::openat(&self.dir, ".", last_flags | OFlags::DIRECTORY, Mode::empty()).map_err(errno);
        }
        while let Some(part) = parts.next() {
            if part == b".." {
                // `decode` refuses these; a caller that skipped it gets the
                // same answer.
                return Err(OpenError::Escape);
            }
            let dir: BorrowedFd<'_> = current.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
            let last = parts.peek().is_none();
            let flags = if last && (rel.ends_with(b"/") || rel.ends_with(b"/.")) {
                // `file/` names a directory, as the kernel has it.
                last_flags | OFlags::NOFOLLOW | OFlags::DIRECTORY
            } else if last {
                last_flags | OFlags::NOFOLLOW
            } else {
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
            };
            let opened = rustix::fs::openat(dir, part, flags, Mode::empty());
            let fd = match opened {
                Ok(fd) => fd,
                Err(err) => {
                    // A symbolic link shows as ELOOP (last component) or
                    // ENOTDIR (a directory expected): say which it was.
                    let is_link = rustix::fs::statat(dir, part, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                    return Err(if is_link { OpenError::Escape } else { errno(err) });
                }
            };
            if last && last_flags.contains(OFlags::PATH) {
                // O_PATH | O_NOFOLLOW opens a symbolic link itself.
                let st = rustix::fs::fstat(&fd).map_err(errno)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    return Err(OpenError::Escape);
                }
            }
            current = Some(fd);
        }
        current.ok_or(OpenError::NotFound)
    }

    fn is_hidden_fd(&self, fd: BorrowedFd<'_>) -> bool {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match std::fs::read_link(link) {
            Ok(real) => real.strip_prefix(&self.path).is_ok_and(|rel| self.is_hidden_rel(rel)),
            // Cannot tell: refuse rather than risk serving state.
            Err(_) => true,
        }
    }
}

fn errno(err: Errno) -> OpenError {
    match err {
        Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG => OpenError::NotFound,
        Errno::ACCESS | Errno::PERM => OpenError::Denied,
        Errno::LOOP | Errno::XDEV => OpenError::Escape,
        other => OpenError::Other(other),
    }
}

/// Percent-decodes a request path and checks its components.
///
/// Refuses `%2F` and `%00` (an encoded separator or NUL could only be an
/// attempt to confuse the check), `..` components (decoded or not), and,
/// unless `hidden_ok`, components starting with `.`. Empty and `.`
/// components are left for the kernel, which ignores them. Borrows the
/// input when it holds no `%`.
pub fn decode(raw: &str, hidden_ok: bool) -> Result<Cow<'_, [u8]>, PathError> {
    let bytes = raw.as_bytes();
    if memchr::memchr(b'%', bytes).is_some() {
        let mut i = 0;
        while let Some(at) = memchr::memchr(b'%', &bytes[i..]) {
            let at = i + at;
            let escape = bytes.get(at + 1..at + 3);
            if let Some([a, b]) = escape {
                let code = [a.to_ascii_lowercase(), b.to_ascii_lowercase()];
                if code == *b"2f" || code == *b"00" {
                    return Err(PathError::Encoded);
                }
            }
            i = at + 1;
        }
    }
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(bytes).into();
    for part in decoded.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(PathError::DotDot),
            [b'.', ..] if !hidden_ok => return Err(PathError::Hidden),
            _ => {}
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_refuses_what_could_escape() {
        let ok = |raw: &str| decode(raw, false).map(|c| String::from_utf8(c.into_owned()).unwrap());
        assert_eq!(ok("/a/b.log"), Ok("/a/b.log".to_owned()));
        assert_eq!(ok("/a%20b"), Ok("/a b".to_owned()));
        assert_eq!(ok("/caf%C3%A9"), Ok("/café".to_owned()));
        assert_eq!(
            ok("//a/./b"),
            Ok("//a/./b".to_owned()),
            "the kernel skips empty and . parts"
        );
        assert_eq!(ok("/../etc/passwd"), Err(PathError::DotDot));
        assert_eq!(ok("/a/.."), Err(PathError::DotDot));
        assert_eq!(ok("/%2e%2e/etc"), Err(PathError::DotDot));
        assert_eq!(ok("/%2E./etc"), Err(PathError::DotDot));
        assert_eq!(ok("/..%2fetc"), Err(PathError::Encoded));
        assert_eq!(ok("/a%2Fb"), Err(PathError::Encoded));
        assert_eq!(ok("/a%00"), Err(PathError::Encoded));
        assert_eq!(ok("/.env"), Err(PathError::Hidden));
        assert_eq!(ok("/%2eenv"), Err(PathError::Hidden));
        assert_eq!(ok("/a/.git/config"), Err(PathError::Hidden));
        assert_eq!(decode("/.env", true).as_deref(), Ok(&b"/.env"[..]));
        assert_eq!(
            decode("/...", true).as_deref(),
            Ok(&b"/..."[..]),
            "not a parent reference"
        );
        assert!(
            matches!(decode("/plain", false), Ok(Cow::Borrowed(_))),
            "no allocation without %"
        );
    }
}
