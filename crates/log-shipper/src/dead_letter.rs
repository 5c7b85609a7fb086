//! A sink's dead-letter file, bounded: `STATE_DIR/dead-letter/SINK.ndjson`.
//!
//! Entries are appended whole and synced before the batch they hold is
//! acknowledged. Before an entry would take the file past its cap
//! (`--dead-letter-max-size`), the file is renamed to `SINK.ndjson.1`,
//! replacing the previous `.1`, whose bytes are counted as discarded
//! (`podkit_log_shipper_dead_letter_discarded_bytes_total`): the newest
//! rejections are kept, and the two files together stay under twice the
//! cap. An entry larger than the cap on its own starts a new file and is
//! written whole.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Appends `entry` to the dead-letter file `path`, rotating it first when
/// it would pass `max_size`; returns the bytes discarded by the rotation.
pub fn append(path: &Path, max_size: u64, entry: &[u8]) -> std::io::Result<u64> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let mut discarded = 0;
    if size > 0 && size + entry.len() as u64 > max_size {
        let rotated = rotated_path(path);
        discarded = std::fs::metadata(&rotated).map_or(0, |m| m.len());
        std::fs::rename(path, &rotated)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(entry)?;
    f.sync_data()?;
    Ok(discarded)
}

/// `PATH.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_before_passing_its_cap_and_counts_what_it_discards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("es.ndjson");
        let entry = [b'x'; 40];
        assert_eq!(append(&path, 100, &entry).unwrap(), 0);
        assert_eq!(append(&path, 100, &entry).unwrap(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        // The third would make 120: rotate, nothing discarded yet.
        assert_eq!(append(&path, 100, &entry).unwrap(), 0);
        assert_eq!(std::fs::metadata(rotated_path(&path)).unwrap().len(), 80);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40);
        append(&path, 100, &entry).unwrap();
        // Rotating again drops the old `.1` (80 bytes).
        assert_eq!(append(&path, 100, &entry).unwrap(), 80);
        // Larger than the cap alone: written whole into a fresh file.
        append(&path, 100, &[b'y'; 150]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 150);
    }
}
