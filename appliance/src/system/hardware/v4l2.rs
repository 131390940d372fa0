//! The kernel's V4L2 user-space API (Linux `include/uapi/linux/videodev2.h`; the
//! "Video for Linux API" of the kernel's user-space API guide, §1 "Common API
//! elements" and §3 "Input/Output"): the structures and `ioctl`s streambox uses, called
//! through rustix.
//!
//! Why not a crate: `v4l` generates its bindings with bindgen at build time, which
//! needs libclang on every machine that builds streambox; `linuxvideo` does not hand
//! out a buffer's timestamp and sequence number, which capture needs (to keep audio
//! and video in step and to count dropped frames). The part used here is small, its
//! layouts are checked against the header's sizes below, and the opcodes in a test.
//!
//! This is one of the three modules of the service allowed `unsafe` (the crate denies
//! it; [`super::vaapi`] calls libva, `transcode::entropy` OpenH264's options): each
//! `ioctl` hands the kernel a pointer to a `#[repr(C)]` structure of the size its
//! opcode encodes, which only the caller can promise.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use rustix::ioctl::{ioctl, opcode, Getter, Updater};

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`.
pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
/// `V4L2_CAP_VIDEO_CAPTURE`: single-planar video capture.
pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
/// `V4L2_CAP_STREAMING`: streaming I/O (memory-mapped buffers).
pub const CAP_STREAMING: u32 = 0x0400_0000;
/// `V4L2_CAP_DEVICE_CAPS`: `device_caps` is filled in.
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
/// `V4L2_FMT_FLAG_COMPRESSED`.
pub const FMT_FLAG_COMPRESSED: u32 = 0x0001;
/// `V4L2_FMT_FLAG_EMULATED`: converted in software by libv4l, not the device's own.
pub const FMT_FLAG_EMULATED: u32 = 0x0002;

const FRMSIZE_TYPE_DISCRETE: u32 = 1;
const FRMIVAL_TYPE_DISCRETE: u32 = 1;

/// `struct v4l2_capability` (104 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

/// `struct v4l2_fmtdesc` (64 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct FmtDesc {
    index: u32,
    type_: u32,
    flags: u32,
    description: [u8; 32],
    pixelformat: u32,
    mbus_code: u32,
    reserved: [u32; 3],
}

/// `struct v4l2_frmsizeenum` (44 bytes). `u` is the union of `v4l2_frmsize_discrete`
/// (width, height) and `v4l2_frmsize_stepwise` (min, max and step of the width, then
/// of the height).
#[repr(C)]
#[derive(Clone, Copy)]
struct FrmSizeEnum {
    index: u32,
    pixel_format: u32,
    type_: u32,
    u: [u32; 6],
    reserved: [u32; 2],
}

/// `struct v4l2_frmivalenum` (52 bytes). `u` is the union of a discrete `v4l2_fract`
/// (numerator, denominator of the frame interval in seconds) and
/// `v4l2_frmival_stepwise` (min, max, step: three fractions).
#[repr(C)]
#[derive(Clone, Copy)]
struct FrmIvalEnum {
    index: u32,
    pixel_format: u32,
    width: u32,
    height: u32,
    type_: u32,
    u: [u32; 6],
    reserved: [u32; 2],
}

/// `struct v4l2_pix_format` (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PixFormat {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    bytesperline: u32,
    sizeimage: u32,
    colorspace: u32,
    priv_: u32,
    flags: u32,
    ycbcr_enc: u32,
    quantization: u32,
    xfer_func: u32,
}

/// The 200-byte union of `struct v4l2_format` (8-byte aligned: one member holds
/// pointers), of which single-planar capture uses `pix`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct FormatUnion {
    pix: PixFormat,
    rest: [u8; 152],
}

/// `struct v4l2_format` (208 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct FormatParam {
    type_: u32,
    fmt: FormatUnion,
}

/// `struct v4l2_captureparm` inside the 200-byte union of `struct v4l2_streamparm`
/// (204 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct StreamParm {
    type_: u32,
    capability: u32,
    capturemode: u32,
    /// Seconds per frame: numerator, denominator.
    timeperframe: [u32; 2],
    extendedmode: u32,
    readbuffers: u32,
    reserved: [u32; 4],
    rest: [u8; 160],
}

/// `struct v4l2_requestbuffers` (20 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RequestBuffers {
    count: u32,
    type_: u32,
    memory: u32,
    capabilities: u32,
    flags: u8,
    reserved: [u8; 3],
}

/// `struct v4l2_buffer` (88 bytes on 64-bit machines): `timestamp` is a `struct
/// timeval`, `m` the union whose `offset` a memory-mapped buffer uses.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Buffer {
    index: u32,
    type_: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    timestamp: [i64; 2],
    timecode: [u32; 4],
    sequence: u32,
    memory: u32,
    m: u64,
    length: u32,
    reserved2: u32,
    request_fd: i32,
}

const _: () = assert!(std::mem::size_of::<PixFormat>() == 48);
const _: () = assert!(std::mem::size_of::<FormatParam>() == 208);
const _: () = assert!(std::mem::size_of::<StreamParm>() == 204);
const _: () = assert!(std::mem::size_of::<RequestBuffers>() == 20);
const _: () = assert!(std::mem::size_of::<Buffer>() == 88);
const _: () = assert!(std::mem::offset_of!(Buffer, timestamp) == 24);
const _: () = assert!(std::mem::offset_of!(Buffer, sequence) == 56);
const _: () = assert!(std::mem::offset_of!(Buffer, m) == 64);
const _: () = assert!(std::mem::offset_of!(FormatParam, fmt) == 8);

const VIDIOC_S_FMT: rustix::ioctl::Opcode = opcode::read_write::<FormatParam>(b'V', 5);
const VIDIOC_REQBUFS: rustix::ioctl::Opcode = opcode::read_write::<RequestBuffers>(b'V', 8);
const VIDIOC_QUERYBUF: rustix::ioctl::Opcode = opcode::read_write::<Buffer>(b'V', 9);
const VIDIOC_QBUF: rustix::ioctl::Opcode = opcode::read_write::<Buffer>(b'V', 15);
const VIDIOC_DQBUF: rustix::ioctl::Opcode = opcode::read_write::<Buffer>(b'V', 17);
const VIDIOC_STREAMON: rustix::ioctl::Opcode = opcode::write::<i32>(b'V', 18);
const VIDIOC_STREAMOFF: rustix::ioctl::Opcode = opcode::write::<i32>(b'V', 19);
const VIDIOC_S_PARM: rustix::ioctl::Opcode = opcode::read_write::<StreamParm>(b'V', 22);

/// `V4L2_MEMORY_MMAP`.
const MEMORY_MMAP: u32 = 1;
/// `V4L2_BUF_FLAG_ERROR`: the driver says the frame's data may be corrupt.
const BUF_FLAG_ERROR: u32 = 0x0040;
/// `V4L2_FIELD_NONE`: progressive frames.
const FIELD_NONE: u32 = 1;

const _: () = assert!(std::mem::size_of::<Capability>() == 104);
const _: () = assert!(std::mem::size_of::<FmtDesc>() == 64);
const _: () = assert!(std::mem::size_of::<FrmSizeEnum>() == 44);
const _: () = assert!(std::mem::size_of::<FrmIvalEnum>() == 52);

const VIDIOC_QUERYCAP: rustix::ioctl::Opcode = opcode::read::<Capability>(b'V', 0);
const VIDIOC_ENUM_FMT: rustix::ioctl::Opcode = opcode::read_write::<FmtDesc>(b'V', 2);
const VIDIOC_ENUM_FRAMESIZES: rustix::ioctl::Opcode = opcode::read_write::<FrmSizeEnum>(b'V', 74);
const VIDIOC_ENUM_FRAMEINTERVALS: rustix::ioctl::Opcode =
    opcode::read_write::<FrmIvalEnum>(b'V', 75);

/// A four-character code naming a pixel format (`V4L2_PIX_FMT_*`, little-endian:
/// `YUYV`, `MJPG`, `H264`, `NV12`, `YU12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FourCc(pub u32);

impl FourCc {
    /// The code of four ASCII characters.
    pub const fn new(code: &[u8; 4]) -> FourCc {
        FourCc(u32::from_le_bytes(*code))
    }
}

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0.to_le_bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A frame rate as a fraction: `num / den` frames per second (the inverse of V4L2's
/// frame interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rate {
    /// Frames.
    pub num: u32,
    /// Per this many seconds.
    pub den: u32,
}

impl Rate {
    /// Frames per second.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{:.2}", self.fps())
        }
    }
}

/// The frame rates a device offers at one size.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Rates {
    /// These rates, fastest first.
    Discrete {
        /// The rates.
        rates: Vec<Rate>,
    },
    /// Any rate from `min` to `max` frames per second.
    Range {
        /// Slowest.
        min: Rate,
        /// Fastest.
        max: Rate,
    },
}

use serde::Serialize;

/// Frame sizes a device offers for one pixel format.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sizes {
    /// These sizes (width × height in pixels), each with its rates.
    Discrete {
        /// The sizes, largest first.
        sizes: Vec<Size>,
    },
    /// Any size within these bounds, in steps (pixels); the rates are those offered at
    /// the largest size.
    Range {
        /// Smallest width and height.
        min: (u32, u32),
        /// Largest width and height.
        max: (u32, u32),
        /// Step of width and height.
        step: (u32, u32),
        /// Rates at the largest size.
        rates: Rates,
    },
}

/// One discrete frame size and its rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The rates offered at this size.
    pub rates: Rates,
}

/// One pixel format a capture device offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Format {
    /// The four-character code (`YUYV`, `MJPG`, `H264`).
    #[serde(serialize_with = "fourcc_text")]
    pub fourcc: FourCc,
    /// The driver's description ("Motion-JPEG").
    pub description: String,
    /// Compressed (MJPEG, H.264) rather than raw pixels.
    pub compressed: bool,
    /// Its sizes and rates.
    pub sizes: Sizes,
}

fn fourcc_text<S: serde::Serializer>(c: &FourCc, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(c)
}

/// What `VIDIOC_QUERYCAP` and the format enumeration tell of a device node.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The driver's name (`uvcvideo`, `vivid`).
    pub driver: String,
    /// The device's name ("HD Pro Webcam C920").
    pub card: String,
    /// Where it sits (`usb-0000:00:14.0-1`, `platform:vivid-000`).
    pub bus: String,
    /// The node's capabilities (`V4L2_CAP_*`): `device_caps` where the driver fills
    /// it in, else the whole device's.
    pub caps: u32,
    /// Pixel formats offered for single-planar capture, the device's own only (none
    /// emulated by libv4l).
    pub formats: Vec<Format>,
}

impl Probe {
    /// A node that captures video with streaming I/O, the kind streambox can use (a
    /// UVC camera's second node carries metadata only).
    pub fn captures(&self) -> bool {
        self.caps & CAP_VIDEO_CAPTURE != 0 && self.caps & CAP_STREAMING != 0
    }
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// Opens `node` for reading and writing without blocking (opening does not claim the
/// device; streaming does).
///
/// # Errors
/// `open(2)`'s: `EACCES` without the `video` group, `ENOENT` once it is unplugged.
pub fn open(node: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(node)
}

/// Asks the device at `node` what it is and what it offers.
///
/// # Errors
/// [`open`]'s, and `ENOTTY` for a node that is not a V4L2 device.
pub fn probe(node: &Path) -> io::Result<Probe> {
    let file = open(node)?;
    // SAFETY: VIDIOC_QUERYCAP writes a `struct v4l2_capability`, which `Capability` is.
    let cap = unsafe { ioctl(&file, Getter::<VIDIOC_QUERYCAP, Capability>::new()) }?;
    let caps = if cap.capabilities & CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    let mut probe = Probe {
        driver: text(&cap.driver),
        card: text(&cap.card),
        bus: text(&cap.bus_info),
        caps,
        formats: Vec::new(),
    };
    if probe.captures() {
        probe.formats = formats(&file)?;
    }
    Ok(probe)
}

/// Enumerations end with `EINVAL` at the first index past the last entry.
fn enumerate<T>(mut f: impl FnMut(u32) -> rustix::io::Result<T>) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    for index in 0..256 {
        match f(index) {
            Ok(v) => out.push(v),
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn formats(fd: impl AsFd + Copy) -> io::Result<Vec<Format>> {
    let descs = enumerate(|index| {
        let mut d = FmtDesc {
            index,
            type_: BUF_TYPE_VIDEO_CAPTURE,
            flags: 0,
            description: [0; 32],
            pixelformat: 0,
            mbus_code: 0,
            reserved: [0; 3],
        };
        // SAFETY: VIDIOC_ENUM_FMT reads and writes a `struct v4l2_fmtdesc`.
        unsafe { ioctl(fd, Updater::<VIDIOC_ENUM_FMT, FmtDesc>::new(&mut d)) }?;
        Ok(d)
    })?;
    let mut out = Vec::new();
    for d in descs
        .into_iter()
        .filter(|d| d.flags & FMT_FLAG_EMULATED == 0)
    {
        let fourcc = FourCc(d.pixelformat);
        out.push(Format {
            fourcc,
            description: text(&d.description),
            compressed: d.flags & FMT_FLAG_COMPRESSED != 0,
            sizes: sizes(fd, fourcc)?,
        });
    }
    Ok(out)
}

fn sizes(fd: impl AsFd + Copy, fourcc: FourCc) -> io::Result<Sizes> {
    let entries = enumerate(|index| {
        let mut s = FrmSizeEnum {
            index,
            pixel_format: fourcc.0,
            type_: 0,
            u: [0; 6],
            reserved: [0; 2],
        };
        // SAFETY: VIDIOC_ENUM_FRAMESIZES reads and writes a `struct v4l2_frmsizeenum`.
        unsafe {
            ioctl(
                fd,
                Updater::<VIDIOC_ENUM_FRAMESIZES, FrmSizeEnum>::new(&mut s),
            )
        }?;
        Ok(s)
    })?;
    match entries.first() {
        Some(s) if s.type_ != FRMSIZE_TYPE_DISCRETE => {
            // Stepwise or continuous: one entry, the bounds.
            let [min_w, max_w, step_w, min_h, max_h, step_h] = s.u;
            Ok(Sizes::Range {
                min: (min_w, min_h),
                max: (max_w, max_h),
                step: (step_w.max(1), step_h.max(1)),
                rates: rates(fd, fourcc, max_w, max_h)?,
            })
        }
        _ => {
            let mut sizes = Vec::new();
            for s in entries {
                let (width, height) = (s.u[0], s.u[1]);
                sizes.push(Size {
                    width,
                    height,
                    rates: rates(fd, fourcc, width, height)?,
                });
            }
            sizes.sort_by_key(|s| std::cmp::Reverse(u64::from(s.width) * u64::from(s.height)));
            Ok(Sizes::Discrete { sizes })
        }
    }
}

fn rates(fd: impl AsFd + Copy, fourcc: FourCc, width: u32, height: u32) -> io::Result<Rates> {
    let entries = enumerate(|index| {
        let mut i = FrmIvalEnum {
            index,
            pixel_format: fourcc.0,
            width,
            height,
            type_: 0,
            u: [0; 6],
            reserved: [0; 2],
        };
        // SAFETY: VIDIOC_ENUM_FRAMEINTERVALS reads and writes a `struct v4l2_frmivalenum`.
        unsafe {
            ioctl(
                fd,
                Updater::<VIDIOC_ENUM_FRAMEINTERVALS, FrmIvalEnum>::new(&mut i),
            )
        }?;
        Ok(i)
    })?;
    // An interval of n/d seconds is a rate of d/n frames per second.
    let rate = |n: u32, d: u32| Rate {
        num: d,
        den: n.max(1),
    };
    Ok(match entries.first() {
        Some(i) if i.type_ != FRMIVAL_TYPE_DISCRETE => {
            let [min_n, min_d, max_n, max_d, _, _] = i.u;
            Rates::Range {
                min: rate(max_n, max_d),
                max: rate(min_n, min_d),
            }
        }
        _ => {
            let mut rates: Vec<Rate> = entries.iter().map(|i| rate(i.u[0], i.u[1])).collect();
            rates.sort_by(|a, b| b.fps().total_cmp(&a.fps()));
            rates.dedup();
            Rates::Discrete { rates }
        }
    })
}

/// The format a device agreed to: it may change the size or rate asked for to the
/// nearest it offers (`VIDIOC_S_FMT`, `VIDIOC_S_PARM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The pixel format.
    pub fourcc: FourCc,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per line of the first plane (raw formats; 0 for compressed ones).
    pub stride: usize,
    /// The frame rate the device set, when it said.
    pub rate: Option<Rate>,
}

/// One frame as the device delivered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The driver's frame counter; a gap means frames were dropped.
    pub sequence: u32,
    /// When the frame was captured, on the monotonic clock (`CLOCK_MONOTONIC`, as
    /// `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC` drivers stamp it).
    pub timestamp: Duration,
    /// The driver flagged the data as possibly corrupt.
    pub error: bool,
}

/// One memory-mapped buffer.
struct Mapped {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what `mmap` returned and was asked for,
        // and no slice of it outlives the `Capture` that owns it.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// A device streaming frames into memory-mapped buffers (V4L2's streaming I/O with
/// `V4L2_MEMORY_MMAP`). Dropping it stops the stream and unmaps the buffers.
pub struct Capture {
    file: File,
    buffers: Vec<Mapped>,
    /// What the device agreed to.
    pub format: Negotiated,
}

// SAFETY: the mappings are owned by the `Capture` alone and only read through `&mut
// self`, so moving it to another thread moves all access with it.
unsafe impl Send for Capture {}

/// How many buffers the device fills in turn.
const BUFFERS: u32 = 4;

impl Capture {
    /// Opens `node` and starts it streaming `fourcc` at `width × height` (and `rate`,
    /// when given).
    ///
    /// # Errors
    /// [`open`]'s; `EBUSY` when another program is capturing from it; the `ioctl`s' and
    /// `mmap`'s errors.
    pub fn start(
        node: &Path,
        fourcc: FourCc,
        width: u32,
        height: u32,
        rate: Option<Rate>,
    ) -> io::Result<Capture> {
        let file = open(node)?;
        let mut f = FormatParam {
            type_: BUF_TYPE_VIDEO_CAPTURE,
            fmt: FormatUnion {
                pix: PixFormat {
                    width,
                    height,
                    pixelformat: fourcc.0,
                    field: FIELD_NONE,
                    ..PixFormat::default()
                },
                rest: [0; 152],
            },
        };
        // SAFETY: VIDIOC_S_FMT reads and writes a `struct v4l2_format`.
        unsafe { ioctl(&file, Updater::<VIDIOC_S_FMT, FormatParam>::new(&mut f)) }?;
        let pix = f.fmt.pix;
        let mut negotiated = Negotiated {
            fourcc: FourCc(pix.pixelformat),
            width: pix.width,
            height: pix.height,
            stride: pix.bytesperline as usize,
            rate: None,
        };
        if let Some(r) = rate {
            let mut p = StreamParm {
                type_: BUF_TYPE_VIDEO_CAPTURE,
                capability: 0,
                capturemode: 0,
                timeperframe: [r.den, r.num],
                extendedmode: 0,
                readbuffers: 0,
                reserved: [0; 4],
                rest: [0; 160],
            };
            // SAFETY: VIDIOC_S_PARM reads and writes a `struct v4l2_streamparm`.
            match unsafe { ioctl(&file, Updater::<VIDIOC_S_PARM, StreamParm>::new(&mut p)) } {
                Ok(()) if p.timeperframe[0] > 0 => {
                    negotiated.rate = Some(Rate {
                        num: p.timeperframe[1],
                        den: p.timeperframe[0],
                    });
                }
                // A device with a fixed rate (many HDMI dongles) may refuse to set one.
                Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOTTY) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut req = RequestBuffers {
            count: BUFFERS,
            type_: BUF_TYPE_VIDEO_CAPTURE,
            memory: MEMORY_MMAP,
            ..RequestBuffers::default()
        };
        // SAFETY: VIDIOC_REQBUFS reads and writes a `struct v4l2_requestbuffers`.
        unsafe {
            ioctl(
                &file,
                Updater::<VIDIOC_REQBUFS, RequestBuffers>::new(&mut req),
            )
        }?;
        if req.count == 0 {
            return Err(io::Error::other("the device gave no buffers"));
        }
        let mut capture = Capture {
            file,
            buffers: Vec::new(),
            format: negotiated,
        };
        for index in 0..req.count {
            let mut b = Buffer {
                index,
                type_: BUF_TYPE_VIDEO_CAPTURE,
                memory: MEMORY_MMAP,
                ..Buffer::default()
            };
            // SAFETY: VIDIOC_QUERYBUF reads and writes a `struct v4l2_buffer`.
            unsafe {
                ioctl(
                    &capture.file,
                    Updater::<VIDIOC_QUERYBUF, Buffer>::new(&mut b),
                )
            }?;
            let len = b.length as usize;
            // SAFETY: a new shared mapping of the buffer the driver just described, at
            // the offset it gave; nothing else maps that address.
            let ptr = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    len,
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::SHARED,
                    &capture.file,
                    b.m,
                )
            }?;
            capture.buffers.push(Mapped { ptr, len });
            capture.queue(index)?;
        }
        let kind = BUF_TYPE_VIDEO_CAPTURE as i32;
        // SAFETY: VIDIOC_STREAMON reads an `int`, the buffer type.
        unsafe {
            ioctl(
                &capture.file,
                rustix::ioctl::Setter::<VIDIOC_STREAMON, i32>::new(kind),
            )
        }?;
        Ok(capture)
    }

    fn queue(&self, index: u32) -> io::Result<()> {
        let mut b = Buffer {
            index,
            type_: BUF_TYPE_VIDEO_CAPTURE,
            memory: MEMORY_MMAP,
            ..Buffer::default()
        };
        // SAFETY: VIDIOC_QBUF reads and writes a `struct v4l2_buffer`.
        unsafe { ioctl(&self.file, Updater::<VIDIOC_QBUF, Buffer>::new(&mut b)) }?;
        Ok(())
    }

    /// Waits up to `timeout` for the next frame and hands its bytes to `f`; the buffer
    /// goes back to the device afterwards. `None` when no frame came in time (a stall).
    ///
    /// # Errors
    /// `poll`'s and `VIDIOC_DQBUF`'s: `ENODEV` once the device is unplugged.
    pub fn next<T>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&[u8], FrameInfo) -> T,
    ) -> io::Result<Option<T>> {
        use rustix::event::{poll, PollFd, PollFlags};
        let wait = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
        if poll(&mut fds, Some(&wait))? == 0 {
            return Ok(None);
        }
        if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::NODEV.raw_os_error(),
            ));
        }
        let mut b = Buffer {
            type_: BUF_TYPE_VIDEO_CAPTURE,
            memory: MEMORY_MMAP,
            ..Buffer::default()
        };
        // SAFETY: VIDIOC_DQBUF reads and writes a `struct v4l2_buffer`.
        match unsafe { ioctl(&self.file, Updater::<VIDIOC_DQBUF, Buffer>::new(&mut b)) } {
            Ok(()) => {}
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let Some(mapped) = self.buffers.get(b.index as usize) else {
            return Err(io::Error::other(
                "the device returned a buffer it never gave",
            ));
        };
        let used = (b.bytesused as usize).min(mapped.len);
        // SAFETY: the mapping is `mapped.len` bytes long and stays mapped while `self`
        // lives; the driver does not write a dequeued buffer until it is queued again,
        // which happens after `f` returns.
        let data = unsafe { std::slice::from_raw_parts(mapped.ptr.cast::<u8>(), used) };
        let info = FrameInfo {
            sequence: b.sequence,
            timestamp: Duration::from_secs(b.timestamp[0].max(0) as u64)
                + Duration::from_micros(b.timestamp[1].clamp(0, 999_999) as u64),
            error: b.flags & BUF_FLAG_ERROR != 0,
        };
        let out = f(data, info);
        self.queue(b.index)?;
        Ok(Some(out))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let kind = BUF_TYPE_VIDEO_CAPTURE as i32;
        // SAFETY: VIDIOC_STREAMOFF reads an `int`, the buffer type. The driver lets go of
        // every buffer before the mappings are dropped after this.
        let _ = unsafe {
            ioctl(
                &self.file,
                rustix::ioctl::Setter::<VIDIOC_STREAMOFF, i32>::new(kind),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_are_the_headers() {
        // From the kernel's videodev2.h on x86-64 (`printf("%x", VIDIOC_…)`).
        assert_eq!(VIDIOC_QUERYCAP, 0x8068_5600);
        assert_eq!(VIDIOC_ENUM_FMT, 0xc040_5602);
        assert_eq!(VIDIOC_ENUM_FRAMESIZES, 0xc02c_564a);
        assert_eq!(VIDIOC_ENUM_FRAMEINTERVALS, 0xc034_564b);
        assert_eq!(VIDIOC_S_FMT, 0xc0d0_5605);
        assert_eq!(VIDIOC_REQBUFS, 0xc014_5608);
        assert_eq!(VIDIOC_QUERYBUF, 0xc058_5609);
        assert_eq!(VIDIOC_QBUF, 0xc058_560f);
        assert_eq!(VIDIOC_DQBUF, 0xc058_5611);
        assert_eq!(VIDIOC_STREAMON, 0x4004_5612);
        assert_eq!(VIDIOC_STREAMOFF, 0x4004_5613);
        assert_eq!(VIDIOC_S_PARM, 0xc0cc_5616);
    }

    #[test]
    fn fourcc_reads_as_text() {
        assert_eq!(FourCc::new(b"YUYV").to_string(), "YUYV");
        assert_eq!(FourCc(0x4745_504a).to_string(), "JPEG");
        assert_eq!(FourCc(0x0000_4748).to_string(), "HG??");
        assert_eq!(
            Rate {
                num: 30000,
                den: 1001
            }
            .to_string(),
            "29.97"
        );
        assert_eq!(Rate { num: 25, den: 1 }.to_string(), "25");
    }

    #[test]
    fn a_file_is_not_a_capture_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("video0");
        std::fs::write(&f, b"").expect("file");
        let e = probe(&f).expect_err("a regular file");
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::NOTTY.raw_os_error())
        );
        let gone = probe(&dir.path().join("video9")).expect_err("no such node");
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }
}
