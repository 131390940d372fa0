//! VA-API on a DRM render node: the driver's vendor string and the (profile, entry
//! point) pairs it reports (libva's `vaQueryConfigProfiles` and
//! `vaQueryConfigEntrypoints`, as `vainfo` prints them), so the hardware page says what
//! a GPU could decode and encode once hardware encoders plug in behind the ABR rungs'
//! encoder interface.
//!
//! libva is loaded at run time (`libva.so.2` and `libva-drm.so.2`, through the
//! `libloading` crate), so neither building nor running streambox needs it: without it,
//! a render node says "libva is not installed". It is asked in a child process of its
//! own ([`ask`] runs `streambox hw vaapi NODE`, which calls [`query`]), because a GPU
//! driver is foreign code that may crash, hang or print: the service waits at most
//! [`ASK_DEADLINE`] and keeps each node's answer for as long as its driver stays
//! ([`Cache`]), so the inventory, read again on every device event, asks once.
//!
//! Calling libva's C functions is `unsafe`, allowed in this module (the crate denies
//! `unsafe_code` elsewhere, but for [`super::v4l2`]'s `ioctl`s and the two OpenH264
//! option calls in `transcode::entropy`).
#![allow(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// What libva says of a render node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vaapi {
    /// The driver's vendor string (`Intel iHD driver for Intel(R) Gen Graphics - 24.1.0`).
    pub vendor: String,
    /// Each profile and entry point the driver offers, as libva names them:
    /// `VAProfileH264Main/VAEntrypointEncSlice` (encoding H.264 Main),
    /// `VAProfileH264High/VAEntrypointVLD` (decoding).
    pub entrypoints: Vec<String>,
}

impl Vaapi {
    /// Whether the driver can encode H.264 (an `EncSlice` or low-power `EncSliceLP`
    /// entry point of an H.264 profile).
    pub fn encodes_h264(&self) -> bool {
        self.entrypoints
            .iter()
            .any(|e| e.starts_with("VAProfileH264") && e.contains("/VAEntrypointEncSlice"))
    }

    /// `VA-API (Mesa Gallium driver …): 14 entry points, encodes H.264`.
    pub fn summary(&self) -> String {
        format!(
            "VA-API ({}): {} entry points{}",
            self.vendor,
            self.entrypoints.len(),
            if self.encodes_h264() {
                ", encodes H.264"
            } else {
                ""
            }
        )
    }
}

/// The longest [`ask`] waits for the child.
pub const ASK_DEADLINE: Duration = Duration::from_secs(10);

type Display = *mut c_void;
type Status = c_int;

/// Asks libva in this process what the render node `node` offers. Prefer [`ask`]: this
/// runs the GPU driver's code here.
///
/// # Errors
/// A sentence: libva is not installed, the node does not open, or libva's own error
/// (no driver for this GPU, for one).
pub fn query(node: &Path) -> Result<Vaapi, String> {
    use std::os::fd::AsRawFd;
    // SAFETY: loading libva runs its initialisers, which have no preconditions; the
    // symbols are looked up with the C signatures libva 2.x declares (va.h, va_drm.h,
    // va_str.h), and the libraries stay loaded until this function returns.
    let (va, drm) = unsafe {
        (
            libloading::Library::new("libva.so.2"),
            libloading::Library::new("libva-drm.so.2"),
        )
    };
    let (va, drm) = match (va, drm) {
        (Ok(va), Ok(drm)) => (va, drm),
        _ => return Err("libva is not installed".into()),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)
        .map_err(|e| format!("{}: {e}", node.display()))?;
    let missing = |e: libloading::Error| format!("libva lacks a function: {e}");
    // SAFETY: as above; each symbol's type is the one libva declares for it.
    unsafe {
        let get_display = drm
            .get::<unsafe extern "C" fn(c_int) -> Display>(b"vaGetDisplayDRM\0")
            .map_err(missing)?;
        let initialize = va
            .get::<unsafe extern "C" fn(Display, *mut c_int, *mut c_int) -> Status>(
                b"vaInitialize\0",
            )
            .map_err(missing)?;
        let terminate = va
            .get::<unsafe extern "C" fn(Display) -> Status>(b"vaTerminate\0")
            .map_err(missing)?;
        let error_str = va
            .get::<unsafe extern "C" fn(Status) -> *const c_char>(b"vaErrorStr\0")
            .map_err(missing)?;
        let vendor = va
            .get::<unsafe extern "C" fn(Display) -> *const c_char>(b"vaQueryVendorString\0")
            .map_err(missing)?;
        let max_profiles = va
            .get::<unsafe extern "C" fn(Display) -> c_int>(b"vaMaxNumProfiles\0")
            .map_err(missing)?;
        let profiles = va
            .get::<unsafe extern "C" fn(Display, *mut c_int, *mut c_int) -> Status>(
                b"vaQueryConfigProfiles\0",
            )
            .map_err(missing)?;
        let max_entrypoints = va
            .get::<unsafe extern "C" fn(Display) -> c_int>(b"vaMaxNumEntrypoints\0")
            .map_err(missing)?;
        let entrypoints = va
            .get::<unsafe extern "C" fn(Display, c_int, *mut c_int, *mut c_int) -> Status>(
                b"vaQueryConfigEntrypoints\0",
            )
            .map_err(missing)?;
        let profile_str = va
            .get::<unsafe extern "C" fn(c_int) -> *const c_char>(b"vaProfileStr\0")
            .map_err(missing)?;
        let entrypoint_str = va
            .get::<unsafe extern "C" fn(c_int) -> *const c_char>(b"vaEntrypointStr\0")
            .map_err(missing)?;
        let text = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let display = get_display(file.as_raw_fd());
        if display.is_null() {
            return Err("libva could not use the node".into());
        }
        let (mut major, mut minor) = (0, 0);
        let status = initialize(display, &mut major, &mut minor);
        if status != 0 {
            terminate(display);
            return Err(format!("libva: {}", text(error_str(status))));
        }
        let out = (|| {
            let mut list = vec![0; usize::try_from(max_profiles(display)).unwrap_or(0)];
            let mut n = 0;
            let status = profiles(display, list.as_mut_ptr(), &mut n);
            if status != 0 {
                return Err(format!("libva: {}", text(error_str(status))));
            }
            list.truncate(usize::try_from(n).unwrap_or(0));
            let mut pairs = Vec::new();
            let mut eps = vec![0; usize::try_from(max_entrypoints(display)).unwrap_or(0)];
            for profile in list {
                let mut n = 0;
                if entrypoints(display, profile, eps.as_mut_ptr(), &mut n) != 0 {
                    continue;
                }
                for e in &eps[..usize::try_from(n).unwrap_or(0).min(eps.len())] {
                    pairs.push(format!(
                        "{}/{}",
                        text(profile_str(profile)),
                        text(entrypoint_str(*e))
                    ));
                }
            }
            Ok(Vaapi {
                vendor: text(vendor(display)),
                entrypoints: pairs,
            })
        })();
        terminate(display);
        out
    }
}

/// Asks libva what `node` offers in a child process (`exe hw vaapi NODE`, libva's
/// messages silenced), waiting at most [`ASK_DEADLINE`].
///
/// # Errors
/// A sentence: the child's own error ([`query`]'s), or that it crashed, hung or could
/// not start.
pub fn ask(exe: &Path, node: &Path) -> Result<Vaapi, String> {
    use std::io::Read;
    let mut child = std::process::Command::new(exe)
        .args(["hw", "vaapi"])
        .arg(node)
        .env("LIBVA_MESSAGING_LEVEL", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("asking libva failed: {e}"))?;
    let deadline = std::time::Instant::now() + ASK_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "libva did not answer within {} s",
                    ASK_DEADLINE.as_secs()
                ));
            }
        }
    };
    let mut out = String::new();
    if let Some(o) = child.stdout.take() {
        let _ = o.take(1 << 20).read_to_string(&mut out);
    }
    match serde_json::from_str::<Result<Vaapi, String>>(&out) {
        Ok(answer) => answer,
        Err(_) => Err(format!("the GPU driver failed ({status})")),
    }
}

/// [`ask`]'s answers, one per render node and kernel driver, so a node is asked once
/// for as long as its driver stays.
#[derive(Debug, Default)]
pub struct Cache {
    answers: Mutex<HashMap<NodeDriver, Result<Vaapi, String>>>,
}

/// A render node and its kernel driver.
type NodeDriver = (PathBuf, Option<String>);

impl Cache {
    /// The answer for `node` with kernel driver `driver`, asked through `ask` when there
    /// is none yet.
    pub fn get(
        &self,
        node: &Path,
        driver: Option<&str>,
        ask: impl FnOnce(&Path) -> Result<Vaapi, String>,
    ) -> Result<Vaapi, String> {
        let key = (node.to_path_buf(), driver.map(str::to_string));
        if let Some(a) = self.answers.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return a;
        }
        let answer = ask(node);
        if let Ok(mut m) = self.answers.lock() {
            m.insert(key, answer.clone());
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_asked_once_per_driver() {
        let cache = Cache::default();
        let asked = std::cell::Cell::new(0);
        let answer = |_: &Path| {
            asked.set(asked.get() + 1);
            Ok(Vaapi {
                vendor: "Mesa Gallium driver".into(),
                entrypoints: vec![
                    "VAProfileH264Main/VAEntrypointVLD".into(),
                    "VAProfileH264Main/VAEntrypointEncSlice".into(),
                ],
            })
        };
        let node = Path::new("/dev/dri/renderD128");
        let a = cache.get(node, Some("amdgpu"), answer).expect("answer");
        assert!(a.encodes_h264());
        cache.get(node, Some("amdgpu"), answer).expect("kept");
        assert_eq!(asked.get(), 1);
        cache
            .get(node, Some("i915"), answer)
            .expect("another driver");
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn a_file_that_is_no_render_node_is_refused_without_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_node = dir.path().join("renderD128");
        std::fs::write(&not_a_node, b"").expect("file");
        // Whether libva is installed or not, a clear sentence, never a crash.
        let e = query(&not_a_node).expect_err("not a GPU");
        assert!(!e.is_empty());
        let decode_only = Vaapi {
            vendor: String::new(),
            entrypoints: vec!["VAProfileH264High/VAEntrypointVLD".into()],
        };
        assert!(!decode_only.encodes_h264());
    }
}
