//! `Content-Type` by file extension: a small table of what a log directory
//! and a static page hold.
//!
//! It follows nginx's `mime.types` except where log files want otherwise:
//! nginx has no entry for `.log`, so it sends `application/octet-stream`
//! and browsers download the file; here `.log`, `.out`, `.err` and rotated
//! copies (`app.log.1`) are `text/plain; charset=utf-8`, so a browser shows
//! them. Text types carry `charset=utf-8` (nginx's `charset` is off by
//! default). Anything unknown is `application/octet-stream`, as in nginx.

const TEXT: &str = "text/plain; charset=utf-8";

/// The content type for a file name (the last path component, as bytes).
pub fn content_type(name: &[u8]) -> &'static str {
    let name = match memchr::memrchr(b'/', name) {
        Some(at) => &name[at + 1..],
        None => name,
    };
    let mut stem = name;
    // `app.log.1`, `app.log.2026-12-05`: a rotation suffix of digits (and
    // dashes) hides the real extension.
    loop {
        let Some(dot) = memchr::memrchr(b'.', stem) else {
            return DEFAULT;
        };
        if dot == 0 {
            return DEFAULT;
        }
        let ext = &stem[dot + 1..];
        if !ext.is_empty() && ext.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
            stem = &stem[..dot];
            continue;
        }
        return by_extension(ext);
    }
}

/// What unknown extensions get.
pub const DEFAULT: &str = "application/octet-stream";

fn by_extension(ext: &[u8]) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("txt", TEXT),
        ("log", TEXT),
        ("out", TEXT),
        ("err", TEXT),
        ("text", TEXT),
        ("md", "text/markdown; charset=utf-8"),
        ("csv", "text/csv; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("mjs", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("ndjson", "application/x-ndjson"),
        ("jsonl", "application/x-ndjson"),
        ("xml", "text/xml; charset=utf-8"),
        ("yaml", "application/yaml"),
        ("yml", "application/yaml"),
        ("toml", "application/toml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("svg", "image/svg+xml"),
        ("ico", "image/x-icon"),
        ("pdf", "application/pdf"),
        ("wasm", "application/wasm"),
        ("gz", "application/gzip"),
        ("tgz", "application/gzip"),
        ("zst", "application/zstd"),
        ("xz", "application/x-xz"),
        ("bz2", "application/x-bzip2"),
        ("tar", "application/x-tar"),
        ("zip", "application/zip"),
        ("woff", "font/woff"),
        ("woff2", "font/woff2"),
    ];
    TABLE
        .iter()
        .find(|(e, _)| e.as_bytes().eq_ignore_ascii_case(ext))
        .map_or(DEFAULT, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        let check = |name: &str, want: &str| assert_eq!(content_type(name.as_bytes()), want, "{name}");
        check("index.html", "text/html; charset=utf-8");
        check("/var/log/INDEX.HTM", "text/html; charset=utf-8");
        check("app.log", TEXT);
        check("app.log.1", TEXT);
        check("app.log.2026-12-05", TEXT);
        check("app.log.2.gz", "application/gzip");
        check("events.ndjson", "application/x-ndjson");
        check("data.json", "application/json");
        check("notes.txt", TEXT);
        check("logo.png", "image/png");
        check("messages", DEFAULT);
        check("archive.bin", DEFAULT);
        check("dir.d/noext", DEFAULT);
        check(".bashrc", DEFAULT);
        check("123", DEFAULT);
    }
}
