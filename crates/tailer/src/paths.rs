//! Include/exclude patterns and the directory scan that finds the files they
//! name. The scan (stat and readdir) is the source of truth for which files
//! exist; inotify only says when to look.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::TailerError;

/// How deep a `**` pattern descends at most.
const MAX_DEPTH: usize = 32;

#[derive(Debug)]
enum Include {
    Literal(PathBuf),
    Glob {
        base: PathBuf,
        depth: usize,
        matcher: GlobMatcher,
    },
}

#[derive(Debug)]
struct Exclude {
    matcher: GlobMatcher,
    /// Without a `/`, the pattern is matched against the file name.
    name_only: bool,
}

/// The compiled include and exclude patterns.
#[derive(Debug)]
pub(crate) struct Patterns {
    includes: Vec<Include>,
    excludes: Vec<Exclude>,
}

/// (device, inode): what a path resolves to right now.
pub(crate) type Key = (u64, u64);

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

fn glob(pattern: &str) -> Result<GlobMatcher, TailerError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| TailerError::Pattern {
            pattern: pattern.to_owned(),
            reason: e.kind().to_string(),
        })
}

impl Patterns {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, TailerError> {
        let cwd = std::env::current_dir().map_err(TailerError::Io)?;
        let mut includes = Vec::new();
        for raw in include {
            if raw.trim().is_empty() {
                return Err(TailerError::Pattern {
                    pattern: raw.clone(),
                    reason: "empty path".into(),
                });
            }
            let abs = cwd.join(raw);
            let text = abs.to_str().ok_or_else(|| TailerError::Pattern {
                pattern: raw.clone(),
                reason: "path is not valid UTF-8".into(),
            })?;
            if !is_glob(text) {
                includes.push(Include::Literal(abs));
                continue;
            }
            let matcher = glob(text)?;
            let mut base = PathBuf::new();
            let mut rest = Vec::new();
            for c in abs.components() {
                let s = c.as_os_str().to_string_lossy();
                if rest.is_empty() && !is_glob(&s) {
                    base.push(c);
                } else {
                    rest.push(s.into_owned());
                }
            }
            if rest.iter().any(|c| c == "..") || abs.components().any(|c| c == Component::ParentDir) {
                return Err(TailerError::Pattern {
                    pattern: raw.clone(),
                    reason: "'..' is not supported".into(),
                });
            }
            let depth = if rest.iter().any(|c| c.contains("**")) {
                MAX_DEPTH
            } else {
                rest.len()
            };
            includes.push(Include::Glob { base, depth, matcher });
        }
        let excludes = exclude
            .iter()
            .map(|p| {
                Ok(Exclude {
                    matcher: glob(p)?,
                    name_only: !p.contains('/'),
                })
            })
            .collect::<Result<_, TailerError>>()?;
        Ok(Self { includes, excludes })
    }

    /// The directories whose changes may reveal new or rotated files, and
    /// whether to watch them recursively.
    pub(crate) fn watch_dirs(&self) -> Vec<(PathBuf, bool)> {
        let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
        for inc in &self.includes {
            let entry = match inc {
                Include::Literal(p) => (p.parent().unwrap_or(Path::new("/")).to_owned(), false),
                Include::Glob { base, depth, .. } => (base.clone(), *depth > 1),
            };
            if !dirs.contains(&entry) {
                dirs.push(entry);
            }
        }
        dirs
    }

    fn excluded(&self, path: &Path) -> bool {
        self.excludes.iter().any(|e| {
            if e.name_only {
                path.file_name().is_some_and(|n| e.matcher.is_match(n))
            } else {
                e.matcher.is_match(path)
            }
        })
    }

    /// Every regular file the patterns name right now, with what it resolves
    /// to (symlinks followed). The first path found for a file wins.
    pub(crate) fn scan(&self) -> HashMap<Key, PathBuf> {
        let mut found = HashMap::new();
        let add = |path: PathBuf, found: &mut HashMap<Key, PathBuf>| {
            if self.excluded(&path) {
                return;
            }
            if let Ok(meta) = fs::metadata(&path)
                && meta.is_file()
            {
                found.entry((meta.dev(), meta.ino())).or_insert(path);
            }
        };
        for inc in &self.includes {
            match inc {
                Include::Literal(p) => add(p.clone(), &mut found),
                Include::Glob { base, depth, matcher } => {
                    let mut stack = vec![(base.clone(), 0usize)];
                    while let Some((dir, level)) = stack.pop() {
                        let Ok(entries) = fs::read_dir(&dir) else { continue };
                        for entry in entries.flatten() {
                            let path = entry.path();
                            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                            if is_dir {
                                if level + 1 < *depth {
                                    stack.push((path, level + 1));
                                }
                            } else if (level + 1 == *depth || *depth == MAX_DEPTH) && matcher.is_match(&path) {
                                add(path, &mut found);
                            }
                        }
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Patterns) -> Vec<String> {
        let mut v: Vec<String> = p
            .scan()
            .values()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn globs_literals_and_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["a.log", "b.log", "a.log.1", "c.log.gz", "x.txt"] {
            fs::write(d.join(f), b"x\n").unwrap();
        }
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/deep.log"), b"x\n").unwrap();
        let s = |p: &str| format!("{}/{p}", d.display());
        let p = Patterns::new(&[s("*.log")], &[]).unwrap();
        assert_eq!(names(&p), ["a.log", "b.log"]);
        let p = Patterns::new(&[s("*.log*"), s("x.txt")], &["*.gz".into()]).unwrap();
        assert_eq!(names(&p), ["a.log", "a.log.1", "b.log", "x.txt"]);
        let p = Patterns::new(&[s("**/*.log")], &[]).unwrap();
        assert_eq!(names(&p), ["a.log", "b.log", "deep.log"]);
        let p = Patterns::new(&[s("sub/*.log")], &[]).unwrap();
        assert_eq!(names(&p), ["deep.log"]);
    }

    #[test]
    fn bad_patterns_are_named() {
        let err = Patterns::new(&["/var/log/[.log".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("[.log"), "{err}");
        assert!(Patterns::new(&["".into()], &[]).is_err());
    }
}
