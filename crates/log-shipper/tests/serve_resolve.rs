//! The serve-mode path resolver under arbitrary request paths: against a
//! tree full of escape routes (symbolic links to `/etc`, to `..` and
//! beyond, absolute and relative, a hard link to a file outside, a
//! symbolic-link loop, a link to the hidden state directory), whatever the
//! path, percent-encoding or resolution strategy, nothing outside the root
//! and nothing hidden is ever opened.

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use log_shipper::serve::resolve::{LookupError, OpenError, PathError, Root, Strategy as Resolve};
use proptest::prelude::*;

/// The temporary tree: `root/` is served, `outside/` must stay out of
/// reach, `root/.state/` is hidden like the shipper's state directory.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// `(dev, ino)` of everything that must never be opened.
    forbidden: HashSet<(u64, u64)>,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("secret.txt"), "SECRET").unwrap();
    std::fs::write(outside.join("dir/deeper.txt"), "SECRET").unwrap();
    for d in ["sub", "deep/x/y", ".state"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("a.txt"), "a").unwrap();
    std::fs::write(root.join("sub/b.txt"), "b").unwrap();
    std::fs::write(root.join(".state/checkpoint.json"), "{}").unwrap();
    std::fs::write(root.join(".env"), "dot").unwrap();
    symlink("..", root.join("sub/up")).unwrap();
    symlink("../..", root.join("sub/upup")).unwrap();
    symlink("/etc", root.join("etc")).unwrap();
    symlink("/", root.join("slash")).unwrap();
    symlink(outside.join("secret.txt"), root.join("abs")).unwrap();
    symlink("../outside", root.join("rel")).unwrap();
    symlink("loop", root.join("loop")).unwrap();
    symlink("sub", root.join("inner")).unwrap();
    symlink(".state", root.join("st")).unwrap();
    symlink("../../../../outside", root.join("deep/x/y/z")).unwrap();
    symlink("/proc/self/root/etc", root.join("magic")).unwrap();
    std::fs::hard_link(outside.join("secret.txt"), root.join("hard.txt")).unwrap();

    let mut forbidden = HashSet::new();
    let mut add = |p: &Path| {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            forbidden.insert((m.dev(), m.ino()));
        }
    };
    for p in [
        base.as_path(),
        &outside,
        &outside.join("dir"),
        &outside.join("secret.txt"),
        &outside.join("dir/deeper.txt"),
        &root.join(".state"),
        &root.join(".state/checkpoint.json"),
        Path::new("/"),
        Path::new("/etc"),
        Path::new("/etc/passwd"),
    ] {
        add(p);
    }
    Tree {
        _dir: dir,
        root,
        forbidden,
    }
}

fn open_root(t: &Tree, strategy: Resolve) -> Root {
    Root::open_root(&t.root)
        .unwrap()
        .with_strategy(strategy)
        .hide(&t.root.join(".state"))
}

/// Checks what a lookup opened: beneath the root by its real path, not
/// one of the forbidden files, not a file with several links.
fn check_opened(t: &Tree, path: &str, opened: &log_shipper::serve::resolve::Opened) {
    let real = std::fs::read_link(format!("/proc/self/fd/{}", opened.fd.as_raw_fd())).unwrap();
    assert!(
        real.starts_with(&t.root),
        "{path:?} opened {real:?}, outside {:?}",
        t.root
    );
    assert!(
        !t.forbidden.contains(&opened.id()),
        "{path:?} opened a forbidden file ({real:?})"
    );
    assert!(
        !real.starts_with(t.root.join(".state")),
        "{path:?} opened hidden {real:?}"
    );
    assert!(
        opened.is_dir() || opened.stat.st_nlink == 1,
        "{path:?}: hard link opened"
    );
}

const PARTS: &[&str] = &[
    "",
    ".",
    "..",
    "%2e%2e",
    "%2E.",
    ".%2e",
    "%2e",
    "sub",
    "up",
    "upup",
    "etc",
    "passwd",
    "slash",
    "abs",
    "rel",
    "loop",
    "inner",
    "st",
    "deep",
    "x",
    "y",
    "z",
    "magic",
    "outside",
    "secret.txt",
    "dir",
    "deeper.txt",
    "a.txt",
    "b.txt",
    "hard.txt",
    ".state",
    "%2estate",
    "checkpoint.json",
    ".env",
    "%2f",
    "%2F",
    "%00",
    "%",
    "%zz",
    "%C3%BC",
    "root",
    "proc",
    "self",
    "fd",
    "0",
];

fn request_path() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        4 => proptest::sample::select(PARTS).prop_map(str::to_owned),
        1 => "[a-z.%/0-9]{0,6}",
    ];
    (proptest::collection::vec(part, 0..7), any::<bool>()).prop_map(|(parts, slash)| {
        let mut p = format!("/{}", parts.join("/"));
        if slash {
            p.push('/');
        }
        p
    })
}

#[test]
fn nothing_outside_the_root_is_ever_opened() {
    // One tree for all cases: building it is most of a case's cost.
    let t = tree();
    let roots = [open_root(&t, Resolve::Beneath), open_root(&t, Resolve::Walk)];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(4000));
    runner
        .run(&(request_path(), any::<bool>()), |(path, hidden_ok)| {
            for root in &roots {
                if let Ok(opened) = root.lookup(&path, hidden_ok) {
                    check_opened(&t, &path, &opened);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn known_escapes_get_the_documented_answers() {
    let t = tree();
    for strategy in [Resolve::Beneath, Resolve::Walk] {
        let root = open_root(&t, strategy);
        let check = |path: &str, hidden_ok: bool, want: LookupError| {
            assert_eq!(root.lookup(path, hidden_ok).err(), Some(want), "{path} ({strategy:?})");
        };
        check("/../outside/secret.txt", false, PathError::DotDot.into());
        check("/%2e%2e/outside", false, PathError::DotDot.into());
        check("/..%2Foutside", false, PathError::Encoded.into());
        check("/a.txt%00", false, PathError::Encoded.into());
        check("/.env", false, PathError::Hidden.into());
        check("/etc/passwd", false, OpenError::Escape.into());
        check("/abs", false, OpenError::Escape.into());
        check("/rel/secret.txt", false, OpenError::Escape.into());
        check("/sub/upup/outside", false, OpenError::Escape.into());
        check("/deep/x/y/z/secret.txt", false, OpenError::Escape.into());
        check("/magic/passwd", false, OpenError::Escape.into());
        check("/slash/etc/passwd", false, OpenError::Escape.into());
        check("/loop", false, OpenError::Escape.into());
        check("/hard.txt", false, OpenError::HardLink.into());
        check("/.state/checkpoint.json", true, OpenError::Hidden.into());
        check("/nope", false, OpenError::NotFound.into());
        check("/a.txt/", false, OpenError::NotFound.into());
        assert!(root.lookup("/a.txt", false).is_ok());
        assert!(root.lookup("/sub//b.txt", false).is_ok());
        assert!(root.lookup("/", false).unwrap().is_dir());
        assert_eq!(root.lookup("/.env", true).map(|o| o.len()), Ok(3), "--serve-hidden");
        match strategy {
            // Links that stay beneath the root are followed by openat2...
            Resolve::Beneath => {
                assert!(root.lookup("/inner/b.txt", false).is_ok());
                assert!(root.lookup("/sub/up/a.txt", false).is_ok());
                assert_eq!(
                    root.lookup("/st/checkpoint.json", false).err(),
                    Some(OpenError::Hidden.into()),
                    "a link to the hidden state is refused by its real path"
                );
            }
            // ...and every link is refused by the walk.
            Resolve::Walk => {
                assert_eq!(root.lookup("/inner/b.txt", false).err(), Some(OpenError::Escape.into()));
                assert_eq!(
                    root.lookup("/st/checkpoint.json", false).err(),
                    Some(OpenError::Escape.into())
                );
            }
        }
        assert_eq!(root.identity(b"/etc").err(), Some(OpenError::Escape), "{strategy:?}");
        assert_eq!(root.identity(b"/abs").err(), Some(OpenError::Escape), "{strategy:?}");
        let allowed = Root::open_root(&t.root)
            .unwrap()
            .with_strategy(strategy)
            .allow_hard_links(true);
        assert!(allowed.lookup("/hard.txt", false).is_ok(), "--serve-allow-hard-links");
    }
}
