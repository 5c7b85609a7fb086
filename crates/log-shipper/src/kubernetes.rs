//! Node mode (`--kubernetes-node`): one log-shipper per node, as a
//! DaemonSet, reading every container's log files where the kubelet keeps
//! them: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`.
//!
//! Namespace, pod name, pod UID and container name come from the path (no
//! API server call): namespaces and pod names are DNS names, which never
//! hold `_`, so the directory name splits unambiguously. The files are in
//! the CRI or docker format, decided per line ([`crate::cri`]).
//!
//! Rotation: the kubelet renames `0.log` to `0.log.<timestamp>` and has the
//! runtime reopen `0.log`; at a later rotation it compresses the older copy
//! to `.gz`. The glob matches only `*.log`, so rotated and compressed copies
//! are never picked up as new files; the tailer keeps a renamed file open and
//! reads it to its end (it is identified by device and inode, not name), and
//! after a restart finds it again by the path its checkpoint recorded.

use std::path::Path;

/// Where the kubelet keeps pod logs.
pub const DEFAULT_ROOT: &str = "/var/log/pods";

/// The glob of every container's current log file under `root`.
pub fn include(root: &Path) -> String {
    let root = globset::escape(&root.to_string_lossy());
    format!("{}/*/*/*.log", root.trim_end_matches('/'))
}

/// Files under the pod log root never to follow: compressed rotated copies
/// and the kubelet's temporary files.
pub fn exclude() -> Vec<String> {
    vec!["*.gz".to_owned(), "*.tmp".to_owned()]
}

/// The labels in a pod log file's path: `namespace`, `pod`, `pod_uid`,
/// `container`; `None` when the path is not laid out that way.
pub fn path_labels(path: &Path) -> Option<Vec<(&'static str, String)>> {
    let container = path.parent()?;
    let pod_dir = container.parent()?;
    let container = container.file_name()?.to_str()?;
    let mut parts = pod_dir.file_name()?.to_str()?.splitn(3, '_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if [namespace, pod, uid, container].iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(vec![
        ("namespace", namespace.to_owned()),
        ("pod", pod.to_owned()),
        ("pod_uid", uid.to_owned()),
        ("container", container.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_paths() {
        let check = |path: &str, want: Option<[&str; 4]>| {
            let got = path_labels(Path::new(path)).map(|l| l.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
            assert_eq!(got, want.map(|w| w.map(str::to_owned).to_vec()), "{path}");
        };
        let uid = "0f9c3a0e-6a4e-4d3c-9a4e-2b1f1e0c7d11";
        let want = Some(["shop", "web-7d9f-x2x", uid, "app"]);
        check(&format!("/var/log/pods/shop_web-7d9f-x2x_{uid}/app/0.log"), want);
        check(
            &format!("/var/log/pods/shop_web-7d9f-x2x_{uid}/app/0.log.20261206-021608"),
            want,
        );
        check(&format!("/tmp/x/pods/shop_web-7d9f-x2x_{uid}/app/12.log"), want);
        check("/var/log/pods/shop_web/app/0.log", None);
        check("/var/log/pods/_web_uid/app/0.log", None);
        check("0.log", None);
    }

    #[test]
    fn the_glob_covers_current_files_only() {
        let glob = globset::Glob::new(&include(Path::new("/var/log/pods/")))
            .unwrap()
            .compile_matcher();
        assert!(glob.is_match("/var/log/pods/ns_p_u/c/0.log"));
        assert!(!glob.is_match("/var/log/pods/ns_p_u/c/0.log.20261206-021608"));
        assert!(!glob.is_match("/var/log/pods/ns_p_u/c/0.log.20261206-021608.gz"));
    }
}
