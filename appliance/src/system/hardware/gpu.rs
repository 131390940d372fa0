//! GPUs on this machine: VA-API render nodes (Intel, AMD; Linux DRM
//! `/dev/dri/renderD*`) and NVIDIA devices (`/dev/nvidia*`), read from the file system,
//! with what libva says of each render node where it is installed ([`super::vaapi`]).
//! Nothing uses them yet: ABR rungs encode with OpenH264 on the CPU. They are reported
//! (the hardware page, `streambox hw list`, the service's start-up log) so hardware
//! encoders can be added behind the same interface.

use std::fmt;
use std::path::{Path, PathBuf};

/// A kind of GPU device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A DRM render node, usable through VA-API.
    Vaapi,
    /// An NVIDIA device (NVENC/NVDEC through the proprietary driver).
    Nvidia,
}

/// One device found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// What it is.
    pub kind: Kind,
    /// Its device node.
    pub node: PathBuf,
    /// The kernel driver bound to it (`i915`, `amdgpu`, …) or the NVIDIA driver version.
    pub driver: Option<String>,
    /// The PCI vendor, by name where known.
    pub vendor: Option<String>,
    /// What libva says of a render node: its driver and entry points. `None` for an
    /// NVIDIA device, and until libva was asked ([`super::with_vaapi`]).
    pub vaapi: Option<super::vaapi::Vaapi>,
    /// Why libva could not say (not installed, no driver for this GPU, …).
    pub vaapi_error: Option<String>,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Vaapi => "VA-API",
            Kind::Nvidia => "NVIDIA",
        };
        write!(f, "{kind}\t{}", self.node.display())?;
        if let Some(v) = &self.vendor {
            write!(f, "\t{v}")?;
        }
        if let Some(d) = &self.driver {
            write!(f, "\tdriver {d}")?;
        }
        if let Some(v) = &self.vaapi {
            write!(f, "\t{}", v.summary())?;
        }
        if let Some(e) = &self.vaapi_error {
            write!(f, "\tVA-API: {e}")?;
        }
        Ok(())
    }
}

fn vendor_name(id: &str) -> String {
    match id.trim() {
        "0x8086" => "Intel".into(),
        "0x1002" => "AMD".into(),
        "0x10de" => "NVIDIA".into(),
        other => other.to_string(),
    }
}

/// Entries of `dir` whose names start with `prefix` and continue with digits, in the
/// order of their numbers.
pub(crate) fn numbered(dir: &Path, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(prefix)
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    // By number: video2 before video10.
    out.sort_by_key(|n| (n.len(), n.clone()));
    out
}

/// The GPUs under `root` (`/` for this machine; a test passes a tree of its
/// own). Unreadable entries are skipped: detection never fails.
pub fn detect(root: &Path) -> Vec<Device> {
    let mut out = Vec::new();
    for node in numbered(&root.join("dev/dri"), "renderD") {
        let sys = root.join("sys/class/drm").join(&node).join("device");
        out.push(Device {
            kind: Kind::Vaapi,
            node: Path::new("/dev/dri").join(&node),
            driver: std::fs::read_link(sys.join("driver"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
            vendor: std::fs::read_to_string(sys.join("vendor"))
                .ok()
                .map(|v| vendor_name(&v)),
            vaapi: None,
            vaapi_error: None,
        });
    }
    let version = std::fs::read_to_string(root.join("proc/driver/nvidia/version"))
        .ok()
        .and_then(|v| {
            // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  …"
            v.lines()
                .next()
                .and_then(|l| {
                    l.split_whitespace()
                        .find(|w| w.contains('.') && w.starts_with(|c: char| c.is_ascii_digit()))
                })
                .map(str::to_string)
        });
    for node in numbered(&root.join("dev"), "nvidia") {
        out.push(Device {
            kind: Kind::Nvidia,
            node: Path::new("/dev").join(&node),
            driver: version.clone(),
            vendor: Some("NVIDIA".into()),
            vaapi: None,
            vaapi_error: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_render_nodes_and_nvidia_devices_in_a_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        for d in [
            "dev/dri",
            "sys/class/drm/renderD128/device",
            "proc/driver/nvidia",
            "drivers/i915",
        ] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        for f in [
            "dev/dri/renderD128",
            "dev/dri/card0",
            "dev/nvidia0",
            "dev/nvidiactl",
        ] {
            std::fs::write(r.join(f), b"").expect("node");
        }
        std::fs::write(r.join("sys/class/drm/renderD128/device/vendor"), "0x8086\n")
            .expect("vendor");
        std::os::unix::fs::symlink(
            r.join("drivers/i915"),
            r.join("sys/class/drm/renderD128/device/driver"),
        )
        .expect("driver link");
        std::fs::write(
            r.join("proc/driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n",
        )
        .expect("version");
        let found = detect(r);
        assert_eq!(
            found.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "VA-API\t/dev/dri/renderD128\tIntel\tdriver i915",
                "NVIDIA\t/dev/nvidia0\tNVIDIA\tdriver 550.54.14"
            ]
        );
        assert!(detect(&r.join("nothing")).is_empty());
    }
}
