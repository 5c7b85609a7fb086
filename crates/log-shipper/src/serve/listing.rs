//! Directory listings (what nginx's `autoindex` would give, on by default
//! here): an HTML table (name, size, modification time) for a browser that
//! accepts `text/html`, and plain text for curl and scripts: one name per
//! line, directories with a trailing `/`, control characters
//! percent-encoded so each line is also a usable URL path.
//!
//! A listing shows only what a request for the entry would serve: dotfiles
//! only with `--serve-hidden`, no hidden state paths, no FIFOs or devices,
//! no files with several hard links unless allowed, and a symbolic link
//! only when it resolves beneath the root (its target's size and time are
//! shown). Directories come first, then files, each sorted by name.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_encode};
use rustix::fs::{AtFlags, Dir, FileType, Stat};

use super::resolve::{Opened, Root};

/// Bytes escaped in an `href` (everything but RFC 3986 unreserved).
const HREF: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Bytes escaped in a plain-text listing line.
const TEXT_LINE: &AsciiSet = &CONTROLS.add(b'%');

/// Largest number of entries listed; a bigger directory is cut (and says so).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
struct Entry {
    name: Vec<u8>,
    is_dir: bool,
    size: u64,
    mtime: SystemTime,
}

/// What a listing needs to know besides the directory.
#[derive(Debug, Clone, Copy)]
pub struct ListingRules {
    /// Show dotfiles.
    pub hidden_ok: bool,
}

/// Lists the directory `dir`, found at the decoded request path `rel`
/// (ending in `/`), as HTML or text.
pub fn render(root: &Root, dir: Opened, rel: &[u8], rules: ListingRules, html: bool) -> std::io::Result<String> {
    let real_rel = if root.has_hidden() { real_rel(root, &dir) } else { None };
    let mut dir = Dir::new(dir.fd)?;
    let mut entries = Vec::new();
    let mut cut = false;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." || (name.starts_with(b".") && !rules.hidden_ok) {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            cut = true;
            break;
        }
        if let Some(real_rel) = &real_rel
            && root.is_hidden_rel(&real_rel.join(std::ffi::OsStr::from_bytes(name)))
        {
            continue;
        }
        let Ok(fd) = dir.fd() else { continue };
        let Ok(stat) = rustix::fs::statat(fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let stat = match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                // Shown only where a request for it would be served.
                let mut path = rel.to_vec();
                path.extend_from_slice(name);
                match root.open(&path) {
                    Ok(target) => target.stat,
                    Err(_) => continue,
                }
            }
            FileType::RegularFile if stat.st_nlink > 1 && !root.hard_links_allowed() => continue,
            FileType::RegularFile | FileType::Directory => stat,
            _ => continue,
        };
        entries.push(Entry {
            name: name.to_vec(),
            is_dir: FileType::from_raw_mode(stat.st_mode) == FileType::Directory,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: mtime(&stat),
        });
    }
    entries.sort_unstable_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    Ok(if html {
        render_html(&entries, rel, cut)
    } else {
        render_text(&entries)
    })
}

/// The modification time of a `stat`.
pub fn mtime(stat: &Stat) -> SystemTime {
    let secs = u64::try_from(stat.st_mtime).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, stat.st_mtime_nsec.min(999_999_999) as u32)
}

/// The directory's path relative to the root, read back from the kernel.
fn real_rel(root: &Root, dir: &Opened) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", dir.fd.as_raw_fd())).ok()?;
    real.strip_prefix(root.path()).ok().map(Path::to_path_buf)
}

fn render_text(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(entries.len() * 24);
    for e in entries {
        let _ = write!(out, "{}", percent_encode(&e.name, TEXT_LINE));
        if e.is_dir {
            out.push('/');
        }
        out.push('\n');
    }
    out
}

fn render_html(entries: &[Entry], rel: &[u8], cut: bool) -> String {
    let title = String::from_utf8_lossy(rel);
    let mut out = String::with_capacity(512 + entries.len() * 160);
    out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    escape(&mut out, &title);
    out.push_str(
        "</title>\n<style>body{font-family:monospace}td{padding:0 1em 0 0}td.n{text-align:right}</style>\n\
         </head><body>\n<h1>Index of ",
    );
    escape(&mut out, &title);
    out.push_str(
        "</h1>\n<table>\n<tr><th align=\"left\">Name</th><th>Size</th><th align=\"left\">Modified</th></tr>\n",
    );
    if rel.iter().any(|&b| b != b'/') {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        let name = String::from_utf8_lossy(&e.name);
        out.push_str("<tr><td><a href=\"");
        let _ = write!(out, "{}", percent_encode(&e.name, HREF));
        if e.is_dir {
            out.push('/');
        }
        out.push_str("\">");
        escape(&mut out, &name);
        if e.is_dir {
            out.push('/');
        }
        out.push_str("</a></td><td class=\"n\">");
        if e.is_dir {
            out.push('-');
        } else {
            let _ = write!(out, "{}", e.size);
        }
        let _ = writeln!(out, "</td><td>{}</td></tr>", httpdate::HttpDate::from(e.mtime));
    }
    out.push_str("</table>\n");
    if cut {
        let _ = writeln!(out, "<p>Only the first {MAX_ENTRIES} entries are listed.</p>");
    }
    out.push_str("</body></html>\n");
    out
}

/// Appends `text` with HTML's special characters escaped.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, is_dir: bool, size: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            is_dir,
            size,
            mtime: UNIX_EPOCH + Duration::from_secs(1_796_000_000),
        }
    }

    #[test]
    fn text_is_one_name_per_line() {
        let got = render_text(&[
            entry("logs", true, 0),
            entry("a b.log", false, 3),
            entry("x\ny", false, 1),
        ]);
        assert_eq!(got, "logs/\na b.log\nx%0Ay\n");
    }

    #[test]
    fn html_escapes_names_and_links() {
        let got = render_html(
            &[entry("<b>&.log", false, 42), entry("sub dir", true, 0)],
            b"/a/",
            false,
        );
        assert!(got.contains("<title>Index of /a/</title>"), "{got}");
        assert!(
            got.contains("<a href=\"%3Cb%3E%26.log\">&lt;b&gt;&amp;.log</a></td><td class=\"n\">42</td>"),
            "{got}"
        );
        assert!(got.contains("<a href=\"sub%20dir/\">sub dir/</a>"), "{got}");
        assert!(got.contains("<a href=\"../\">"), "{got}");
        assert!(
            !render_html(&[], b"/", false).contains("../"),
            "no parent link at the root"
        );
    }
}
