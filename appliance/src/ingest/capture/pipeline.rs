//! What a capture device's buffer becomes: one H.264 access unit for the stream.
//! Sans-IO and blocking (encoding takes milliseconds); the capture thread runs it.
//!
//! - H.264 from the camera (Annex B, one access unit a buffer): split into NAL units
//!   with a 4-byte length prefix (ISO/IEC 14496-15 §5.3.2), its SPS and PPS taken out
//!   as the decoder configuration. Nothing is decoded or encoded.
//! - Raw pixels (`YUYV`, `NV12`, `YU12`) and Motion-JPEG: converted to I420
//!   ([`crate::transcode::pixels`]) and encoded with OpenH264
//!   ([`crate::transcode::video::VideoEncoder`], the ABR rungs' encoder) at the source's
//!   bitrate, with an IDR every [`GOP`].

use super::choose::{H264, JPEG, MJPG, NV12, YU12, YUYV};
use crate::ingest::rtp_frames::VideoAu;
use crate::media::h264::AnnexBUnit;
use crate::system::hardware::v4l2::{FourCc, Negotiated};
use crate::transcode::pixels::{self, PixelError};
use crate::transcode::video::{Picture, VideoEncoder, VideoError};
use bytes::Bytes;
use std::time::Duration;

/// The keyframe interval of encoded capture sources: segments of 2 s, as the usual
/// encoder settings for HLS give.
pub const GOP: Duration = Duration::from_secs(2);

/// Why one buffer gave no access unit.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A picture that does not convert (a truncated buffer, corrupt Motion-JPEG): the
    /// frame is skipped and counted; the next may be fine.
    #[error(transparent)]
    Picture(#[from] PixelError),
    /// The encoder failed: the capture restarts.
    #[error(transparent)]
    Encode(#[from] VideoError),
}

enum Input {
    /// H.264 from the camera; the decoder configuration last sent.
    H264 { record: Option<Bytes> },
    /// Pictures to convert and encode.
    Pictures {
        fourcc: FourCc,
        encoder: Box<VideoEncoder>,
        /// The PTS of the last IDR (90 kHz ticks).
        last_idr: Option<i64>,
        /// Half a frame's ticks: the slack in "two seconds since the last IDR".
        slack: i64,
    },
}

/// One capture source's conversion from buffers to access units.
pub struct Pipeline {
    format: Negotiated,
    input: Input,
}

impl Pipeline {
    /// A pipeline for buffers in `format`: H.264 passed through, or anything else
    /// encoded at `bitrate` bit/s for up to `fps` frames per second.
    ///
    /// # Errors
    /// [`VideoError::Encode`] when OpenH264 cannot start; [`VideoError::Scale`] (as the
    /// "unusable format" case) for a format [`super::choose`] would not pick.
    pub fn new(format: Negotiated, bitrate: u32, fps: f64) -> Result<Pipeline, VideoError> {
        let input = match format.fourcc {
            H264 => Input::H264 { record: None },
            YUYV | NV12 | YU12 | MJPG | JPEG => Input::Pictures {
                fourcc: format.fourcc,
                encoder: Box::new(VideoEncoder::new(bitrate, fps.max(1.0))?),
                last_idr: None,
                slack: (90_000.0 / fps.max(1.0) / 2.0) as i64,
            },
            other => {
                return Err(VideoError::Encode(format!(
                    "{other} is not a format streambox captures in"
                )))
            }
        };
        Ok(Pipeline { format, input })
    }

    /// Whether pictures are encoded here.
    pub fn encodes(&self) -> bool {
        matches!(self.input, Input::Pictures { .. })
    }

    /// The picture in buffer `data` as I420 (raw and Motion-JPEG formats only).
    fn picture(&self, fourcc: FourCc, data: &[u8]) -> Result<Picture, PixelError> {
        let Negotiated {
            width,
            height,
            stride,
            ..
        } = self.format;
        match fourcc {
            YUYV => pixels::yuyv(data, width, height, stride),
            NV12 => pixels::nv12(data, width, height, stride),
            YU12 => pixels::yu12(data, width, height, stride),
            _ => pixels::mjpeg(data, width, height),
        }
    }

    /// Takes the buffer `data`, captured at `pts` (ticks of the 90 kHz clock since the
    /// capture started); returns its access unit, or `None` when it made none (an
    /// encoder that skipped, a camera's H.264 buffer holding only parameter sets).
    ///
    /// # Errors
    /// [`FrameError`].
    pub fn push(&mut self, data: &[u8], pts: i64) -> Result<Option<VideoAu>, FrameError> {
        match &mut self.input {
            Input::H264 { record } => {
                let unit = AnnexBUnit::split(data);
                let params = match unit.record {
                    Some(r) if record.as_ref() != Some(&r) => {
                        *record = Some(r.clone());
                        Some(r)
                    }
                    _ => None,
                };
                if unit.data.is_empty() {
                    return Ok(None);
                }
                Ok(Some(VideoAu {
                    pts,
                    is_sync: unit.idr,
                    data: Bytes::from(unit.data),
                    params,
                }))
            }
            Input::Pictures { fourcc, .. } => {
                let fourcc = *fourcc;
                let picture = self.picture(fourcc, data)?;
                let Input::Pictures {
                    encoder,
                    last_idr,
                    slack,
                    ..
                } = &mut self.input
                else {
                    return Ok(None);
                };
                let gop = (GOP.as_secs_f64() * 90_000.0) as i64;
                let idr = last_idr.is_none_or(|t| pts - t >= gop - *slack);
                let Some((au, config)) = encoder.encode(&picture, idr, (pts / 90).max(0) as u64)?
                else {
                    return Ok(None);
                };
                if au.idr {
                    *last_idr = Some(pts);
                }
                Ok(Some(VideoAu {
                    pts,
                    is_sync: au.idr,
                    data: au.data,
                    params: config.map(|c| c.record),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::video::VideoDecoder;
    use std::process::Command;

    /// `frames` frames of the test clip at `size`, in ffmpeg's output `args`, as one
    /// byte stream.
    fn clip(frames: u32, size: &str, args: &[&str]) -> Vec<u8> {
        let media = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/media/bigbuckbunny.mp4"
        );
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i", media, "-frames:v"])
            .arg(frames.to_string())
            .args(["-an", "-s", size])
            .args(args)
            .arg("-")
            .output()
            .expect("ffmpeg must be installed (tests/run.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn format(fourcc: FourCc, width: u32, height: u32, stride: usize) -> Negotiated {
        Negotiated {
            fourcc,
            width,
            height,
            stride,
            rate: None,
        }
    }

    /// Decodes `aus` and returns the pictures' count and size.
    fn decode(aus: &[VideoAu]) -> (usize, (u32, u32)) {
        let mut dec = VideoDecoder::new().expect("decoder");
        let mut config = None;
        let mut n = 0;
        let mut size = (0, 0);
        for au in aus {
            if let Some(p) = &au.params {
                config = Some(crate::media::h264::AvcConfig::parse(p.clone()).expect("avcC"));
            }
            let c = config
                .as_ref()
                .expect("parameters with the first access unit");
            for d in dec
                .decode(c, &au.data, au.pts, au.is_sync, std::time::Instant::now())
                .expect("decodes")
            {
                n += 1;
                size = (d.picture.width, d.picture.height);
            }
        }
        n += dec.flush().len();
        (n, size)
    }

    #[test]
    fn raw_frames_are_encoded_with_an_idr_every_two_seconds() {
        // 3 s of the clip at 25 fps as YUYV: what a webcam's raw mode delivers.
        let (w, h) = (320u32, 180u32);
        let raw = clip(75, "320x180", &["-f", "rawvideo", "-pix_fmt", "yuyv422"]);
        let frame = (w * h * 2) as usize;
        assert_eq!(raw.len(), frame * 75);
        let mut p =
            Pipeline::new(format(YUYV, w, h, (w * 2) as usize), 400_000, 25.0).expect("pipeline");
        assert!(p.encodes());
        let mut aus = Vec::new();
        for (i, f) in raw.chunks(frame).enumerate() {
            if let Some(au) = p.push(f, i as i64 * 3600).expect("frame") {
                aus.push(au);
            }
        }
        assert_eq!(aus.len(), 75, "one access unit a frame");
        let idrs: Vec<i64> = aus.iter().filter(|a| a.is_sync).map(|a| a.pts).collect();
        assert_eq!(idrs, [0, 180_000], "an IDR at 0 s and 2 s");
        assert!(aus[0].params.is_some());
        assert_eq!(decode(&aus), (75, (w, h)));
        // A truncated buffer is refused; the next frame encodes.
        assert!(matches!(
            p.push(&raw[..frame / 2], 75 * 3600),
            Err(FrameError::Picture(PixelError::Short { .. }))
        ));
        assert!(p.push(&raw[..frame], 76 * 3600).expect("next").is_some());
    }

    #[test]
    fn motion_jpeg_is_decoded_and_corrupt_frames_are_refused() {
        let mjpeg = clip(10, "320x180", &["-c:v", "mjpeg", "-f", "mjpeg"]);
        // Each JPEG runs from its SOI marker to the next.
        let mut starts: Vec<usize> = mjpeg
            .windows(3)
            .enumerate()
            .filter(|(_, w)| *w == [0xff, 0xd8, 0xff])
            .map(|(i, _)| i)
            .collect();
        starts.push(mjpeg.len());
        let jpegs: Vec<&[u8]> = starts.windows(2).map(|s| &mjpeg[s[0]..s[1]]).collect();
        assert_eq!(jpegs.len(), 10);
        let mut p = Pipeline::new(format(MJPG, 320, 180, 0), 400_000, 25.0).expect("pipeline");
        let mut aus = Vec::new();
        for (i, j) in jpegs.iter().enumerate() {
            aus.extend(p.push(j, i as i64 * 3600).expect("frame"));
        }
        assert_eq!(decode(&aus), (10, (320, 180)));
        // A cut-short frame decodes partly or not at all (zune-jpeg fills what is
        // missing), never as anything but the device's size.
        match p.push(&jpegs[1][..jpegs[1].len() / 3], 10 * 3600) {
            Ok(_) | Err(FrameError::Picture(_)) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(matches!(
            p.push(b"\xff\xd8garbage", 10 * 3600),
            Err(FrameError::Picture(_))
        ));
        assert!(matches!(
            p.push(&[0u8; 64], 11 * 3600),
            Err(FrameError::Picture(_))
        ));
    }

    #[test]
    fn h264_from_the_camera_is_passed_through() {
        // Annex B with an access unit delimiter before each access unit, as UVC cameras
        // deliver one a buffer; 2 s GOPs at 25 fps.
        let stream = clip(
            60,
            "320x180",
            &[
                "-c:v",
                "libx264",
                "-profile:v",
                "main",
                "-bf",
                "0",
                "-g",
                "50",
                "-x264-params",
                "aud=1",
                "-f",
                "h264",
            ],
        );
        let mut starts: Vec<usize> = stream
            .windows(5)
            .enumerate()
            .filter(|(_, w)| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 9)
            .map(|(i, _)| i)
            .collect();
        starts.push(stream.len());
        let buffers: Vec<&[u8]> = starts.windows(2).map(|s| &stream[s[0]..s[1]]).collect();
        assert_eq!(buffers.len(), 60);
        let mut p = Pipeline::new(format(H264, 320, 180, 0), 0, 25.0).expect("pipeline");
        assert!(!p.encodes());
        let mut aus = Vec::new();
        for (i, b) in buffers.iter().enumerate() {
            aus.extend(p.push(b, i as i64 * 3600).expect("access unit"));
        }
        assert_eq!(aus.len(), 60);
        let keyframes: Vec<usize> = (0..60).filter(|&i| aus[i].is_sync).collect();
        assert_eq!(keyframes, [0, 50]);
        // The parameters come with the first access unit, and again only if they change
        // (x264 repeats the same ones at each IDR).
        assert!(aus[0].params.is_some());
        assert!(aus[1..].iter().all(|a| a.params.is_none()));
        let config = crate::media::h264::AvcConfig::parse(aus[0].params.clone().expect("avcC"))
            .expect("parses");
        assert!(config.codec_string().starts_with("avc1.4d"), "Main profile");
        assert_eq!(decode(&aus), (60, (320, 180)));
    }
}
