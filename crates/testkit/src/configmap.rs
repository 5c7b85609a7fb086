//! A Kubernetes ConfigMap volume laid out by hand, for tests of live
//! config reloads: `dir/<file> -> ..data/<file>`, `..data -> ..<version>/`,
//! and [`ConfigMapDir::update`] replaces the content the way the kubelet
//! does (a new timestamped directory, a `..data_tmp` symlink renamed over
//! `..data`, the old directory removed), so the file's own path never sees
//! an event.

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A ConfigMap-style directory holding one file.
#[derive(Debug)]
pub struct ConfigMapDir {
    dir: PathBuf,
    name: String,
    version: u32,
}

impl ConfigMapDir {
    /// Creates `dir` (which must not exist yet) holding `name` with `content`.
    pub fn new(dir: &Path, name: &str, content: &str) -> Self {
        std::fs::create_dir(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut map = Self {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            version: 0,
        };
        let version = map.write_version(content);
        symlink(&version, dir.join("..data")).unwrap();
        symlink(Path::new("..data").join(name), dir.join(name)).unwrap();
        map
    }

    /// The path a binary is given (`dir/<name>`, a symlink into `..data`).
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Replaces the content with an atomic `..data` swap, as the kubelet does.
    pub fn update(&mut self, content: &str) {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        let version = self.write_version(content);
        let tmp = self.dir.join("..data_tmp");
        symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }

    /// Writes `content` into a new `..2026_12_06_…_<n>` directory; returns its name.
    fn write_version(&mut self, content: &str) -> String {
        self.version += 1;
        let version = format!("..2026_12_06_02_00_00.{:09}", self.version);
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join(&self.name), content).unwrap();
        version
    }
}

/// The value of the first sample on `admin`'s `/metrics` whose line starts
/// with `series` (a name, or a name with its labels: `x_total{result="applied"}`);
/// `None` when there is none.
pub fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let body = crate::http_get(admin, "/metrics").ok()?.body;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
