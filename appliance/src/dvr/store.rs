//! Blocking file operations of the DVR, each crash-safe: a file is written under a
//! temporary name, fsynced, renamed into place, and its directory fsynced, so after a
//! crash a name holds either nothing or the whole file. Call from a blocking thread,
//! never an async worker.

use bytes::Bytes;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Suffix of files being written; any found at start-up are leftovers of a crash.
pub const TMP_SUFFIX: &str = ".tmp";

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `chunks` as the file `path` durably; creates its directory (durably) if
/// needed. Returns the bytes written.
///
/// # Errors
/// The I/O error; the temporary file is removed, and `path` is left as it was.
pub fn write_durable(path: &Path, chunks: &[Bytes]) -> io::Result<u64> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent directory"))?;
    create_dirs(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        let mut n = 0u64;
        for c in chunks {
            f.write_all(c)?;
            n += c.len() as u64;
        }
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and its missing parents, fsyncing each parent that gained an entry.
fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
        match fs::create_dir(dir) {
            Ok(()) => sync_dir(parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes a file durably; a file that is already gone is fine. Removes its directory
/// and the parents up to (not including) `root` when they become empty.
///
/// # Errors
/// The I/O error.
pub fn remove_durable(path: &Path, root: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            sync_dir(d)?;
            break;
        }
        if fs::remove_dir(d).is_err() {
            sync_dir(d)?; // not empty: it keeps other files
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Bytes available to an unprivileged process on the file system holding `path`.
///
/// # Errors
/// The I/O error.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    Ok(crate::system::storage::disk_space(path)?.free_bytes)
}

/// Every file below `dir` (recursively), with its size in bytes; an unreadable entry is
/// skipped.
pub fn walk(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                todo.push(e.path());
            } else if meta.is_file() {
                out.push((e.path(), meta.len()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_write_and_remove() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("lobby/e1/video/0.m4s");
        let n = write_durable(
            &path,
            &[Bytes::from_static(b"moof"), Bytes::from_static(b"mdat")],
        )
        .expect("write");
        assert_eq!(n, 8);
        assert_eq!(fs::read(&path).expect("read"), b"moofmdat");
        assert_eq!(
            walk(root.path()),
            vec![(path.clone(), 8)],
            "no temporary file left"
        );
        remove_durable(&path, root.path()).expect("remove");
        assert!(
            !root.path().join("lobby").exists(),
            "empty directories go too"
        );
        remove_durable(&path, root.path()).expect("already gone is fine");
        assert!(free_bytes(root.path()).expect("statvfs") > 0);
    }
}
