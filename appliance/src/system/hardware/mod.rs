//! The hardware on this machine that streambox can use, as one [`Inventory`]: V4L2
//! capture devices ([`v4l2`]: USB cameras, HDMI capture dongles), sound cards that
//! capture ([`sound`]), and GPUs ([`gpu`]: VA-API render nodes, NVIDIA devices).
//! [`watch`] keeps it current as devices come and go (the kernel's and udev's device
//! events), and the hardware page, the API and `streambox hw list` all read it.

pub mod gpu;
pub mod sound;
pub mod v4l2;
pub mod vaapi;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// A video capture device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoDevice {
    /// Its stable ID: the name of its `/dev/v4l/by-id` link (USB devices:
    /// `usb-046d_HD_Pro_Webcam_C920_0A1B2C3D-video-index0`, the same in any port), else
    /// of its `/dev/v4l/by-path` link (where it is plugged in), else the node's name.
    pub id: String,
    /// Its device node now (`/dev/video0`), which can change at each replug.
    pub node: PathBuf,
    /// The device's name ("HD Pro Webcam C920").
    pub name: String,
    /// Its driver (`uvcvideo`, `vivid`), when it could be asked.
    pub driver: String,
    /// Where it sits (`usb-0000:00:14.0-1`), when it could be asked.
    pub bus: String,
    /// The pixel formats, sizes and rates it offers.
    pub formats: Vec<v4l2::Format>,
    /// Why it could not be asked what it offers (no permission), if so.
    pub error: Option<String>,
}

/// Everything found: video devices and GPUs in the order of their nodes' numbers, sound
/// cards by index.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    /// Video capture devices.
    pub video: Vec<VideoDevice>,
    /// Sound cards, with the PCMs that capture.
    pub sound: Vec<sound::Card>,
    /// GPUs.
    pub gpus: Vec<gpu::Device>,
}

impl Inventory {
    /// The capture device whose stable ID is `id`.
    pub fn video(&self, id: &str) -> Option<&VideoDevice> {
        self.video.iter().find(|d| d.id == id)
    }

    /// The capture PCM whose ALSA name is `alsa` (`hw:CARD=ID,DEV=N`), with its card.
    pub fn audio(&self, alsa: &str) -> Option<(&sound::Card, &sound::Pcm)> {
        self.sound
            .iter()
            .find_map(|c| c.captures.iter().find(|p| p.alsa == alsa).map(|p| (c, p)))
    }

    /// Every capture PCM's ALSA name, for a message that lists them.
    pub fn audio_names(&self) -> Vec<&str> {
        self.sound
            .iter()
            .flat_map(|c| c.captures.iter().map(|p| p.alsa.as_str()))
            .collect()
    }
}

/// `/dev/v4l/by-id` or `by-path` under `root`: the node each link names, with the
/// link's name.
fn links(root: &Path, kind: &str) -> Vec<(String, String)> {
    std::fs::read_dir(root.join("dev/v4l").join(kind))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let node = target.file_name()?.to_str()?.to_string();
            Some((node, e.file_name().into_string().ok()?))
        })
        .collect()
}

/// The hardware under `root` (`/` for this machine), asking each `/dev/videoN` node
/// what it is with `probe` ([`v4l2::probe`]; a test passes its own). Nodes that are not
/// capture devices (a camera's metadata node, a video output) are left out; one that
/// cannot be asked is listed with the reason. Never fails: what cannot be read is
/// missing from the list.
pub fn scan(root: &Path, probe: &dyn Fn(&Path) -> io::Result<v4l2::Probe>) -> Inventory {
    let by_id = links(root, "by-id");
    let by_path = links(root, "by-path");
    let mut video = Vec::new();
    for node in gpu::numbered(&root.join("dev"), "video") {
        let sys = root.join("sys/class/video4linux").join(&node);
        let sys_name = std::fs::read_to_string(sys.join("name"))
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        let id = by_id
            .iter()
            .chain(&by_path)
            .find(|(n, _)| *n == node)
            .map_or_else(|| node.clone(), |(_, link)| link.clone());
        let mut device = VideoDevice {
            id,
            node: Path::new("/dev").join(&node),
            name: sys_name,
            driver: String::new(),
            bus: String::new(),
            formats: Vec::new(),
            error: None,
        };
        match probe(&root.join("dev").join(&node)) {
            Ok(p) if !p.captures() => continue,
            Ok(p) => {
                device.name = p.card;
                device.driver = p.driver;
                device.bus = p.bus;
                device.formats = p.formats;
            }
            // Unplugged between the listing and the probe.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
                device.error = Some(
                    "the service's sandbox refuses it (its driver was loaded after the service \
                     started: restart the service)"
                        .into(),
                );
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                device.error = Some(
                    "no permission to open it (only the video group may; the service runs in it)"
                        .into(),
                );
            }
            Err(e) => device.error = Some(format!("cannot be asked what it offers: {e}")),
        }
        video.push(device);
    }
    Inventory {
        video,
        sound: sound::cards(root),
        gpus: gpu::detect(root),
    }
}

/// libva's answers for this process's render nodes.
static VAAPI: std::sync::LazyLock<vaapi::Cache> = std::sync::LazyLock::new(vaapi::Cache::default);

/// `inventory` with what libva says of each render node ([`vaapi::ask`], through this
/// program's own `hw vaapi` command; each node asked once per driver). Blocking: a
/// node not asked before takes up to [`vaapi::ASK_DEADLINE`]. Only the `streambox`
/// program asks (a test binary run with `hw vaapi` would run tests instead).
pub fn with_vaapi(mut inventory: Inventory) -> Inventory {
    let exe = std::env::current_exe();
    if exe
        .as_ref()
        .is_ok_and(|e| e.file_name().is_some_and(|n| n != "streambox"))
    {
        return inventory;
    }
    for g in &mut inventory.gpus {
        if g.kind != gpu::Kind::Vaapi {
            continue;
        }
        let answer = match &exe {
            Ok(exe) => VAAPI.get(&g.node, g.driver.as_deref(), |n| vaapi::ask(exe, n)),
            Err(e) => Err(format!("asking libva failed: {e}")),
        };
        match answer {
            Ok(v) => g.vaapi = Some(v),
            Err(e) => g.vaapi_error = Some(e),
        }
    }
    inventory
}

/// This machine's hardware ([`scan`] of `/`, [`with_vaapi`]), kept current by the kernel's and udev's
/// device events (read 200 ms after the last of a burst, so a device's nodes and links
/// are all there), and every 30 s besides. Outside a Tokio runtime the value is never
/// updated.
pub fn watch() -> tokio::sync::watch::Receiver<Arc<Inventory>> {
    use crate::system::netlink::{Follow, KOBJECT_UEVENT};
    let follow = Follow {
        what: "the hardware",
        protocol: KOBJECT_UEVENT,
        groups: 1 | 2,
        settle: std::time::Duration::from_millis(200),
        every: std::time::Duration::from_secs(30),
    };
    crate::system::netlink::watch(follow, || {
        Ok(Arc::new(with_vaapi(scan(Path::new("/"), &v4l2::probe))))
    })
}

/// Why a capture device could not show what it sees.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Another program (or a source of ours) is capturing from it.
    #[error("the device is busy: another program is capturing from it")]
    Busy,
    /// It offers nothing streambox can convert.
    #[error("it offers no format streambox can show (it offers {0})")]
    NoFormat(String),
    /// It sent no usable frame in time.
    #[error("the device sent no usable frame within {0} s")]
    Stalled(u64),
    /// It went away.
    #[error("the device is gone")]
    Gone,
    /// Anything else the kernel said.
    #[error("capturing failed: {0}")]
    Io(io::Error),
}

/// The formats [`snapshot`] can convert, best first.
const SHOWN: [v4l2::FourCc; 4] = [
    v4l2::FourCc::new(b"YUYV"),
    v4l2::FourCc::new(b"NV12"),
    v4l2::FourCc::new(b"YU12"),
    v4l2::FourCc::new(b"MJPG"),
];

/// A small size `format` offers: the smallest at least 320 pixels wide, else the
/// largest; for a range, its smallest size from 320 wide.
fn small_size(format: &v4l2::Format) -> Option<(u32, u32)> {
    match &format.sizes {
        v4l2::Sizes::Discrete { sizes } => sizes
            .iter()
            .filter(|s| s.width >= 320)
            .min_by_key(|s| s.width)
            .or(sizes.first())
            .map(|s| (s.width, s.height)),
        v4l2::Sizes::Range { min, max, step, .. } => {
            let w = (320u32.max(min.0)).min(max.0);
            let w = min.0 + (w - min.0) / step.0 * step.0;
            let h = (u64::from(w) * u64::from(max.1) / u64::from(max.0.max(1))) as u32;
            let h = (h.clamp(min.1, max.1) - min.1) / step.1 * step.1 + min.1;
            Some((w, h))
        }
    }
}

/// What `device` sees now: one frame at a small size, as I420, with the format it came
/// in. Takes the third frame (a camera's first ones are often dark), waiting at most
/// 2 s for each; a frame the driver flags or that does not convert is skipped. Blocking.
///
/// # Errors
/// [`SnapshotError`].
pub fn snapshot(
    device: &VideoDevice,
) -> Result<(crate::transcode::video::Picture, v4l2::Negotiated), SnapshotError> {
    use crate::transcode::pixels;
    let (fourcc, (width, height)) = SHOWN
        .iter()
        .find_map(|c| {
            let f = device.formats.iter().find(|f| f.fourcc == *c)?;
            Some((*c, small_size(f)?))
        })
        .ok_or_else(|| {
            let offered: Vec<String> = device
                .formats
                .iter()
                .map(|f| f.fourcc.to_string())
                .collect();
            SnapshotError::NoFormat(offered.join(", "))
        })?;
    let io = |e: io::Error| match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::BUSY.raw_os_error() => SnapshotError::Busy,
        Some(code)
            if code == rustix::io::Errno::NODEV.raw_os_error()
                || code == rustix::io::Errno::NOENT.raw_os_error() =>
        {
            SnapshotError::Gone
        }
        _ => SnapshotError::Io(e),
    };
    let mut capture =
        v4l2::Capture::start(&device.node, fourcc, width, height, None).map_err(io)?;
    let n = capture.format;
    if !SHOWN.contains(&n.fourcc) {
        return Err(SnapshotError::NoFormat(n.fourcc.to_string()));
    }
    const WAIT: std::time::Duration = std::time::Duration::from_secs(2);
    let mut good = 0;
    for _ in 0..10 {
        let frame = capture
            .next(WAIT, |data, info| {
                if info.error {
                    return None;
                }
                match n.fourcc {
                    c if c == SHOWN[0] => pixels::yuyv(data, n.width, n.height, n.stride),
                    c if c == SHOWN[1] => pixels::nv12(data, n.width, n.height, n.stride),
                    c if c == SHOWN[2] => pixels::yu12(data, n.width, n.height, n.stride),
                    _ => pixels::mjpeg(data, n.width, n.height),
                }
                .ok()
            })
            .map_err(io)?;
        match frame {
            None => return Err(SnapshotError::Stalled(WAIT.as_secs())),
            Some(Some(picture)) => {
                good += 1;
                if good == 3 {
                    return Ok((picture, n));
                }
            }
            Some(None) => {}
        }
    }
    Err(SnapshotError::Stalled(WAIT.as_secs()))
}

impl std::fmt::Display for Inventory {
    /// One line per device, and one per format offered, for `streambox hw list`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.video {
            write!(f, "video\t{}\t{}\t{}", d.id, d.node.display(), d.name)?;
            if !d.driver.is_empty() {
                write!(f, "\t{} at {}", d.driver, d.bus)?;
            }
            writeln!(f)?;
            if let Some(e) = &d.error {
                writeln!(f, "\t{e}")?;
            }
            for fmt in &d.formats {
                writeln!(f, "\t{}", format_summary(fmt))?;
            }
        }
        for c in &self.sound {
            for p in &c.captures {
                writeln!(f, "audio\t{}\t{} ({})", p.alsa, p.name, c.name)?;
            }
        }
        for g in &self.gpus {
            writeln!(f, "gpu\t{g}")?;
        }
        Ok(())
    }
}

/// `MJPG (Motion-JPEG): 1920x1080 at 30/15 fps, 1280x720 at 30 fps`, or
/// `YUYV (YUYV 4:2:2): 16x16 to 3840x2160 at 1-60 fps`.
pub fn format_summary(f: &v4l2::Format) -> String {
    let rates = |r: &v4l2::Rates| match r {
        v4l2::Rates::Discrete { rates } => {
            let list: Vec<String> = rates.iter().map(ToString::to_string).collect();
            format!("{} fps", list.join("/"))
        }
        v4l2::Rates::Range { min, max } => format!("{min}-{max} fps"),
    };
    let sizes = match &f.sizes {
        v4l2::Sizes::Discrete { sizes } => sizes
            .iter()
            .map(|s| format!("{}x{} at {}", s.width, s.height, rates(&s.rates)))
            .collect::<Vec<_>>()
            .join(", "),
        v4l2::Sizes::Range {
            min, max, rates: r, ..
        } => format!("{}x{} to {}x{} at {}", min.0, min.1, max.0, max.1, rates(r)),
    };
    format!("{} ({}): {sizes}", f.fourcc, f.description)
}

#[cfg(test)]
mod tests {
    use super::v4l2::{Format, FourCc, Probe, Rate, Rates, Size, Sizes};
    use super::*;

    fn webcam() -> Probe {
        Probe {
            driver: "uvcvideo".into(),
            card: "HD Pro Webcam C920".into(),
            bus: "usb-0000:00:14.0-1".into(),
            caps: v4l2::CAP_VIDEO_CAPTURE | v4l2::CAP_STREAMING,
            formats: vec![Format {
                fourcc: FourCc::new(b"MJPG"),
                description: "Motion-JPEG".into(),
                compressed: true,
                sizes: Sizes::Discrete {
                    sizes: vec![Size {
                        width: 1280,
                        height: 720,
                        rates: Rates::Discrete {
                            rates: vec![Rate { num: 30, den: 1 }, Rate { num: 15, den: 1 }],
                        },
                    }],
                },
            }],
        }
    }

    #[test]
    fn finds_capture_nodes_by_their_stable_ids_in_a_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        for d in [
            "dev/v4l/by-id",
            "dev/v4l/by-path",
            "sys/class/video4linux/video0",
            "sys/class/video4linux/video2",
            "sys/class/video4linux/video3",
        ] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        for n in [
            "video0", "video1", "video2", "video3", "video4", "video5", "video10", "videox",
        ] {
            std::fs::write(r.join("dev").join(n), b"").expect("node");
        }
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, r.join("dev/v4l").join(at)).expect("link");
        };
        // A USB camera (two nodes: video and metadata), and a platform device with only
        // a by-path link.
        link(
            "../../video0",
            "by-id/usb-046d_HD_Pro_Webcam_C920_0A1B2C3D-video-index0",
        );
        link(
            "../../video1",
            "by-id/usb-046d_HD_Pro_Webcam_C920_0A1B2C3D-video-index1",
        );
        link(
            "../../video0",
            "by-path/pci-0000:00:14.0-usb-0:1:1.0-video-index0",
        );
        link("../../video2", "by-path/platform-vivid.0-video-index0");
        link("../../video10", "by-id/usb-Capture_HDMI_1-video-index0");
        std::fs::write(
            r.join("sys/class/video4linux/video3/name"),
            "USB Capture HDMI\n",
        )
        .expect("name");
        let probe = |node: &Path| -> io::Result<Probe> {
            match node.file_name().and_then(|n| n.to_str()) {
                Some("video0") => Ok(webcam()),
                Some("video1") => Ok(Probe {
                    caps: 0x0080_0000 | v4l2::CAP_STREAMING, // V4L2_CAP_META_CAPTURE
                    formats: Vec::new(),
                    ..webcam()
                }),
                Some("video2") => Ok(Probe {
                    driver: "vivid".into(),
                    card: "vivid".into(),
                    bus: "platform:vivid-000".into(),
                    ..webcam()
                }),
                Some("video3") => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
                Some("video10") => Ok(webcam()),
                // The device cgroup's refusal.
                Some("video5") => Err(io::Error::from_raw_os_error(
                    rustix::io::Errno::PERM.raw_os_error(),
                )),
                _ => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        };
        let inv = scan(r, &probe);
        let ids: Vec<&str> = inv.video.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "usb-046d_HD_Pro_Webcam_C920_0A1B2C3D-video-index0",
                "platform-vivid.0-video-index0",
                "video3",
                "video5",
                "usb-Capture_HDMI_1-video-index0"
            ]
        );
        let cam = inv
            .video("usb-046d_HD_Pro_Webcam_C920_0A1B2C3D-video-index0")
            .expect("camera");
        assert_eq!(cam.node, Path::new("/dev/video0"));
        assert_eq!(cam.name, "HD Pro Webcam C920");
        assert_eq!(cam.driver, "uvcvideo");
        assert_eq!(
            format_summary(&cam.formats[0]),
            "MJPG (Motion-JPEG): 1280x720 at 30/15 fps"
        );
        let denied = inv.video("video3").expect("listed without permission");
        assert_eq!(denied.name, "USB Capture HDMI");
        assert!(denied
            .error
            .as_deref()
            .is_some_and(|e| e.contains("video group")));
        assert!(inv.video("video4").is_none(), "unplugged while listed");
        let sandboxed = inv
            .video("video5")
            .expect("listed when the sandbox refuses it");
        assert!(sandboxed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("restart the service")));
        let text = inv.to_string();
        assert!(
            text.starts_with(
                "video\tusb-046d_HD_Pro_Webcam_C920_0A1B2C3D-video-index0\t/dev/video0\tHD Pro Webcam C920\tuvcvideo at usb-0000:00:14.0-1\n\tMJPG"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&inv).expect("json");
        assert_eq!(json["video"][0]["formats"][0]["fourcc"], "MJPG");
        assert_eq!(json["video"][0]["formats"][0]["sizes"]["kind"], "discrete");
        assert_eq!(
            json["video"][0]["formats"][0]["sizes"]["sizes"][0]["rates"]["rates"][0],
            serde_json::json!({"num": 30, "den": 1})
        );
    }
}
