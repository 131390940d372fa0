//! Capture devices' pictures to I420 ([`Picture`]), what the H.264 encoder takes: the raw
//! formats V4L2 devices offer (`YUYV` 4:2:2 packed, `NV12` and `YU12` 4:2:0; "Image
//! Formats" of the V4L2 user-space API guide) and Motion-JPEG (decoded with zune-jpeg).
//! Sans-IO; each call converts one frame into a new picture.
//!
//! Chroma 4:2:2 becomes 4:2:0 by averaging each pair of rows, as swscale does. JPEG's
//! samples are full range (JFIF, ITU-T T.871); they are mapped to the limited range
//! (luma 16-235, chroma 16-240, ITU-R BT.601) that the H.264 stream declares, so the
//! picture looks as it did.

use super::video::Picture;

/// A frame that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelError {
    /// Fewer bytes than the format needs at this size (a truncated buffer).
    #[error("a {format} frame of {got} bytes is too short for {width}x{height} ({need} bytes)")]
    Short {
        /// The pixel format.
        format: &'static str,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        need: usize,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A size the format cannot have (zero, or an odd width for YUYV), or a line
    /// stride shorter than a line.
    #[error("{format} cannot be {width}x{height} with lines of {stride} bytes")]
    Size {
        /// The pixel format.
        format: &'static str,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes per line.
        stride: usize,
    },
    /// A Motion-JPEG frame that does not decode (corrupt, cut short).
    #[error("corrupt JPEG frame: {0}")]
    Jpeg(String),
    /// A Motion-JPEG frame of another size than the device was set to.
    #[error("JPEG frame is {got_width}x{got_height}, not {width}x{height}")]
    JpegSize {
        /// Its width.
        got_width: u32,
        /// Its height.
        got_height: u32,
        /// The expected width.
        width: u32,
        /// The expected height.
        height: u32,
    },
}

fn check(
    format: &'static str,
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    line: usize,
    need: usize,
) -> Result<(), PixelError> {
    if width == 0 || height == 0 || stride < line {
        return Err(PixelError::Size {
            format,
            width,
            height,
            stride,
        });
    }
    if src.len() < need {
        return Err(PixelError::Short {
            format,
            got: src.len(),
            need,
            width,
            height,
        });
    }
    Ok(())
}

/// The rows `2r` and `2r + 1` of a plane (the last row twice for an odd height).
fn row_pair(rows: u32, r: u32) -> (usize, usize) {
    let a = 2 * r as usize;
    (a, (a + 1).min(rows as usize - 1))
}

/// `YUYV` (V4L2_PIX_FMT_YUYV, 4:2:2 packed `Y0 U Y1 V`) with lines of `stride` bytes
/// (at least `2 × width`) to I420.
///
/// # Errors
/// [`PixelError::Size`] for an odd or zero width, [`PixelError::Short`] for a short
/// buffer.
pub fn yuyv(src: &[u8], width: u32, height: u32, stride: usize) -> Result<Picture, PixelError> {
    let line = 2 * width as usize;
    let need = stride * (height as usize).saturating_sub(1) + line;
    if width % 2 == 1 {
        return Err(PixelError::Size {
            format: "YUYV",
            width,
            height,
            stride,
        });
    }
    check("YUYV", src, width, height, stride, line, need)?;
    let mut p = Picture::flat(width, height, 0, 0, 0);
    let (w, cw) = (width as usize, (width / 2) as usize);
    for r in 0..height as usize {
        let s = &src[r * stride..r * stride + line];
        for (y, px) in p.y[r * w..(r + 1) * w].iter_mut().zip(s.iter().step_by(2)) {
            *y = *px;
        }
    }
    for r in 0..height.div_ceil(2) {
        let (a, b) = row_pair(height, r);
        let (sa, sb) = (
            &src[a * stride..a * stride + line],
            &src[b * stride..b * stride + line],
        );
        let out = r as usize * cw;
        for x in 0..cw {
            let avg = |i: usize| (u16::from(sa[i]) + u16::from(sb[i])).div_ceil(2) as u8;
            p.u[out + x] = avg(4 * x + 1);
            p.v[out + x] = avg(4 * x + 3);
        }
    }
    Ok(p)
}

/// `NV12` (V4L2_PIX_FMT_NV12: the luma plane, then one plane of interleaved `U V`
/// pairs at half height), lines of `stride` bytes in both planes, to I420.
///
/// # Errors
/// [`PixelError::Size`] for a zero size or a short stride, [`PixelError::Short`] for a
/// short buffer.
pub fn nv12(src: &[u8], width: u32, height: u32, stride: usize) -> Result<Picture, PixelError> {
    let (cw, ch) = (width.div_ceil(2) as usize, height.div_ceil(2) as usize);
    let chroma_at = stride * height as usize;
    let need = chroma_at + stride * ch.saturating_sub(1) + 2 * cw;
    check("NV12", src, width, height, stride, 2 * cw, need)?;
    let mut p = Picture::flat(width, height, 0, 0, 0);
    let w = width as usize;
    for r in 0..height as usize {
        p.y[r * w..(r + 1) * w].copy_from_slice(&src[r * stride..r * stride + w]);
    }
    for r in 0..ch {
        let s = &src[chroma_at + r * stride..chroma_at + r * stride + 2 * cw];
        for x in 0..cw {
            p.u[r * cw + x] = s[2 * x];
            p.v[r * cw + x] = s[2 * x + 1];
        }
    }
    Ok(p)
}

/// `YU12` (V4L2_PIX_FMT_YUV420: planar Y, U, V; the chroma planes' lines are half the
/// luma's `stride`) to I420.
///
/// # Errors
/// [`PixelError::Size`] for a zero size or a short stride, [`PixelError::Short`] for a
/// short buffer.
pub fn yu12(src: &[u8], width: u32, height: u32, stride: usize) -> Result<Picture, PixelError> {
    let (cw, ch) = (width.div_ceil(2) as usize, height.div_ceil(2) as usize);
    let cstride = stride / 2;
    let u_at = stride * height as usize;
    let v_at = u_at + cstride * ch;
    let need = v_at + cstride * ch.saturating_sub(1) + cw;
    check("YU12", src, width, height, stride, width as usize, need)?;
    if cstride < cw {
        return Err(PixelError::Size {
            format: "YU12",
            width,
            height,
            stride,
        });
    }
    let mut p = Picture::flat(width, height, 0, 0, 0);
    let w = width as usize;
    for r in 0..height as usize {
        p.y[r * w..(r + 1) * w].copy_from_slice(&src[r * stride..r * stride + w]);
    }
    for r in 0..ch {
        p.u[r * cw..(r + 1) * cw]
            .copy_from_slice(&src[u_at + r * cstride..u_at + r * cstride + cw]);
        p.v[r * cw..(r + 1) * cw]
            .copy_from_slice(&src[v_at + r * cstride..v_at + r * cstride + cw]);
    }
    Ok(p)
}

/// Full-range luma (0-255) to limited (16-235), and chroma (0-255 around 128) to
/// 16-240, rounded: ITU-R BT.601's scaling.
struct Ranges {
    luma: [u8; 256],
    chroma: [u8; 256],
}

fn ranges() -> &'static Ranges {
    static R: std::sync::OnceLock<Ranges> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let mut r = Ranges {
            luma: [0; 256],
            chroma: [0; 256],
        };
        for v in 0..256 {
            let f = v as f64;
            r.luma[v] = (16.0 + f * 219.0 / 255.0).round() as u8;
            r.chroma[v] = (128.0 + (f - 128.0) * 224.0 / 255.0)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
        r
    })
}

/// A Motion-JPEG frame (V4L2_PIX_FMT_MJPEG: one baseline JPEG per frame, Huffman tables
/// possibly left out as UVC cameras do) of `width × height` to limited-range I420.
///
/// # Errors
/// [`PixelError::Jpeg`] for a frame that does not decode, [`PixelError::JpegSize`] for
/// one of another size.
pub fn mjpeg(src: &[u8], width: u32, height: u32) -> Result<Picture, PixelError> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_max_width(8192)
        .set_max_height(8192);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(src), options);
    let ycc = d.decode().map_err(|e| PixelError::Jpeg(e.to_string()))?;
    let (gw, gh) = d.dimensions().unwrap_or((0, 0));
    let (gw, gh) = (gw as u32, gh as u32);
    if (gw, gh) != (width, height) {
        return Err(PixelError::JpegSize {
            got_width: gw,
            got_height: gh,
            width,
            height,
        });
    }
    let (w, cw) = (width as usize, width.div_ceil(2) as usize);
    if ycc.len() < 3 * w * height as usize {
        return Err(PixelError::Jpeg("fewer samples than pixels".into()));
    }
    let r = ranges();
    let mut p = Picture::flat(width, height, 0, 0, 0);
    for (y, px) in p.y.iter_mut().zip(ycc.chunks_exact(3)) {
        *y = r.luma[usize::from(px[0])];
    }
    for row in 0..height.div_ceil(2) {
        let (a, b) = row_pair(height, row);
        for x in 0..cw {
            let (x0, x1) = (2 * x, (2 * x + 1).min(w - 1));
            let sum = |c: usize| {
                [(a, x0), (a, x1), (b, x0), (b, x1)]
                    .iter()
                    .map(|&(yy, xx)| u32::from(ycc[3 * (yy * w + xx) + c]))
                    .sum::<u32>()
            };
            let at = row as usize * cw + x;
            p.u[at] = r.chroma[((sum(1) + 2) / 4) as usize];
            p.v[at] = r.chroma[((sum(2) + 2) / 4) as usize];
        }
    }
    Ok(p)
}

/// A limited-range I420 picture to 8-bit RGB (`R G B` per pixel, rows top to bottom),
/// with ITU-R BT.601's matrix: for pictures shown as JPEG.
pub fn to_rgb(p: &Picture) -> Vec<u8> {
    let (w, cw) = (p.width as usize, p.width.div_ceil(2) as usize);
    let mut out = Vec::with_capacity(w * p.height as usize * 3);
    for row in 0..p.height as usize {
        for x in 0..w {
            let c = (row / 2) * cw + x / 2;
            let y = 1.164 * (f32::from(p.y[row * w + x]) - 16.0);
            let (u, v) = (f32::from(p.u[c]) - 128.0, f32::from(p.v[c]) - 128.0);
            let px = [y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u];
            out.extend(px.map(|c| c.round().clamp(0.0, 255.0) as u8));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn clip() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/media/bigbuckbunny.mp4")
    }

    /// Runs ffmpeg (which the tests need: fails loudly when it is missing).
    fn ffmpeg(args: &[&str]) {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .output()
            .expect("ffmpeg must be installed (tests/run.sh installs it)");
        assert!(
            out.status.success(),
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A frame of the clip at `width × height` in ffmpeg's `pix_fmt`, and ffmpeg's own
    /// conversion of that frame to limited-range yuv420p.
    fn frames(
        dir: &Path,
        width: u32,
        height: u32,
        pix_fmt: &str,
        codec: &[&str],
    ) -> (Vec<u8>, Picture) {
        let size = format!("{width}x{height}");
        let src = dir.join(format!("{pix_fmt}.frame"));
        let scale = format!("scale={width}:{height}:flags=bicubic,format={pix_fmt}");
        let clip = clip();
        let mut args = vec![
            "-ss",
            "2",
            "-i",
            clip.to_str().expect("path"),
            "-frames:v",
            "1",
            "-vf",
            &scale,
        ];
        args.extend_from_slice(codec);
        args.push(src.to_str().expect("path"));
        ffmpeg(&args);
        let theirs = dir.join(format!("{pix_fmt}.i420"));
        let input_fmt = ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", &size];
        let mut args: Vec<&str> = if codec.contains(&"rawvideo") {
            input_fmt.to_vec()
        } else {
            Vec::new()
        };
        args.extend_from_slice(&[
            "-i",
            src.to_str().expect("path"),
            "-vf",
            "scale=out_range=tv,format=yuv420p",
            "-f",
            "rawvideo",
            theirs.to_str().expect("path"),
        ]);
        ffmpeg(&args);
        let bytes = std::fs::read(&theirs).expect("ffmpeg's frame");
        let (cw, ch) = (width.div_ceil(2) as usize, height.div_ceil(2) as usize);
        let ys = (width * height) as usize;
        assert_eq!(bytes.len(), ys + 2 * cw * ch, "ffmpeg's yuv420p size");
        let picture = Picture {
            width,
            height,
            y: bytes[..ys].to_vec(),
            u: bytes[ys..ys + cw * ch].to_vec(),
            v: bytes[ys + cw * ch..].to_vec(),
        };
        (std::fs::read(&src).expect("source frame"), picture)
    }

    fn assert_close(ours: &Picture, theirs: &Picture, floor: f64, what: &str) {
        assert_eq!((ours.width, ours.height), (theirs.width, theirs.height));
        let (y, u, v) = (
            crate::transcode::psnr(&ours.y, &theirs.y),
            crate::transcode::psnr(&ours.u, &theirs.u),
            crate::transcode::psnr(&ours.v, &theirs.v),
        );
        println!("{what}: PSNR Y {y:.1} dB, U {u:.1} dB, V {v:.1} dB against ffmpeg");
        assert!(
            y >= floor && u >= floor && v >= floor,
            "{what}: Y {y:.1} U {u:.1} V {v:.1} dB, under {floor} dB"
        );
    }

    #[test]
    fn raw_formats_convert_as_ffmpeg_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        // NV12 and YU12 are ffmpeg's output byte for byte (PSNR over 100 dB); YUYV's
        // averaged chroma differs from swscale's by one level in a few samples (73 dB
        // and more when this was written).
        for (w, h) in [(640, 360), (322, 181)] {
            let (src, mut theirs) = frames(dir.path(), w, h, "yuyv422", &["-f", "rawvideo"]);
            let mut ours = yuyv(&src, w, h, 2 * w as usize).expect("YUYV");
            if h % 2 == 1 {
                // swscale leaves the last chroma row of an odd height at 0 here; ours
                // takes it from the last line. Compare the rest.
                let cw = w.div_ceil(2) as usize;
                for p in [&mut ours.u, &mut ours.v, &mut theirs.u, &mut theirs.v] {
                    p.truncate(p.len() - cw);
                }
                assert!(ours.u.len() == theirs.u.len() && ours.u.len() > 1000);
            }
            assert_close(&ours, &theirs, 70.0, &format!("YUYV {w}x{h}"));
            let (src, theirs) = frames(dir.path(), w, h, "nv12", &["-f", "rawvideo"]);
            assert_close(
                &nv12(&src, w, h, w as usize).expect("NV12"),
                &theirs,
                100.0,
                &format!("NV12 {w}x{h}"),
            );
            let (src, theirs) = frames(dir.path(), w, h, "yuv420p", &["-f", "rawvideo"]);
            assert_close(
                &yu12(&src, w, h, w as usize).expect("YU12"),
                &theirs,
                100.0,
                &format!("YU12 {w}x{h}"),
            );
        }
        // Lines with padding (a stride wider than the picture), as drivers align them.
        let (src, theirs) = frames(dir.path(), 640, 360, "yuyv422", &["-f", "rawvideo"]);
        let padded: Vec<u8> = src
            .chunks(1280)
            .flat_map(|l| l.iter().copied().chain([7u8; 64]))
            .collect();
        assert_close(
            &yuyv(&padded, 640, 360, 1344).expect("padded YUYV"),
            &theirs,
            70.0,
            "YUYV with padding",
        );
    }

    #[test]
    fn motion_jpeg_converts_as_ffmpeg_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 4:2:2 as most webcams send, and 4:2:0.
        for (fmt, w, h) in [("yuvj422p", 640, 360), ("yuvj420p", 322, 182)] {
            let (jpeg, theirs) = frames(
                dir.path(),
                w,
                h,
                fmt,
                &["-c:v", "mjpeg", "-q:v", "3", "-f", "mjpeg"],
            );
            // Decoders differ in their IDCT and chroma upsampling by a level here and
            // there: 65 dB luma, 48-55 dB chroma when this was written.
            assert_close(
                &mjpeg(&jpeg, w, h).expect("JPEG"),
                &theirs,
                45.0,
                &format!("MJPEG {fmt} {w}x{h}"),
            );
            let e = mjpeg(&jpeg, w + 2, h).expect_err("wrong size");
            assert!(matches!(e, PixelError::JpegSize { .. }), "{e}");
            let cut = mjpeg(&jpeg[..jpeg.len() / 3], w, h);
            assert!(
                cut.is_err() || cut.is_ok_and(|p| p.width == w),
                "a truncated frame neither panics nor changes size"
            );
            assert!(matches!(
                mjpeg(b"\xff\xd8garbage", w, h),
                Err(PixelError::Jpeg(_))
            ));
        }
    }

    #[test]
    fn rgb_of_known_colours() {
        // BT.601 limited range: black, white, and pure red (Y 81, Cb 90, Cr 240).
        for ((y, u, v), rgb) in [
            ((16, 128, 128), [0, 0, 0]),
            ((235, 128, 128), [255, 255, 255]),
            ((81, 90, 240), [255, 0, 0]),
        ] {
            let got = to_rgb(&Picture::flat(2, 2, y, u, v));
            for px in got.chunks(3) {
                for (a, b) in px.iter().zip(rgb) {
                    assert!(a.abs_diff(b) <= 2, "{px:?} for {rgb:?}");
                }
            }
        }
    }

    #[test]
    fn short_buffers_and_bad_sizes_are_errors() {
        let src = vec![0u8; 100];
        assert!(matches!(
            yuyv(&src, 8, 8, 16),
            Err(PixelError::Short { need: 128, .. })
        ));
        assert!(matches!(yuyv(&src, 7, 2, 14), Err(PixelError::Size { .. })));
        assert!(matches!(yuyv(&src, 8, 2, 8), Err(PixelError::Size { .. })));
        assert!(matches!(yuyv(&src, 0, 2, 8), Err(PixelError::Size { .. })));
        assert!(matches!(
            nv12(&src[..90], 8, 8, 8),
            Err(PixelError::Short { need: 96, .. })
        ));
        assert!(matches!(
            yu12(&src[..90], 8, 8, 8),
            Err(PixelError::Short { need: 96, .. })
        ));
        assert!(yuyv(&src[..32], 8, 2, 16).is_ok());
        assert_eq!(
            yuyv(&src, 8, 8, 16).expect_err("short").to_string(),
            "a YUYV frame of 100 bytes is too short for 8x8 (128 bytes)"
        );
    }
}
