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

/// The reason the data partition could not be used this boot, from the file the
/// appliance's `streambox-data.service` writes (`data_fault_file`): at most 2,000
/// characters, control characters as spaces, trimmed. `None` when there is no such file
/// or it is empty.
pub fn data_fault(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(8192)
        .read_to_end(&mut bytes)
        .ok()?;
    let clean: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(2000)
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    (!clean.is_empty()).then_some(clean)
}
