//! The data disk: how big it is and how much is free.

use std::io;
use std::path::Path;

/// Size and free space of the file system holding a path, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskSpace {
    /// The file system's size.
    pub total_bytes: u64,
    /// Bytes available to an unprivileged process (`f_bavail`; root's reserve excluded).
    pub free_bytes: u64,
}

/// Size and free space of the file system holding `path` (`statvfs(3)`).
///
/// # Errors
/// The I/O error.
pub fn disk_space(path: &Path) -> io::Result<DiskSpace> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(DiskSpace {
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
    })
}
