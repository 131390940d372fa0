//! The video stages of a rung: H.264 decoding and encoding with OpenH264, and scaling
//! with fast_image_resize. Blocking; each runs on a dedicated thread.
//!
//! - [`VideoDecoder`]: access units in decode order (AVCC, ISO/IEC 14496-15) to I420
//!   pictures in presentation order, each with its PTS (ticks of the 90 kHz clock) and
//!   whether it was a source keyframe.
//! - [`Scaler`]: an I420 picture to another size (each plane on its own, bilinear,
//!   through the `streambox-scaler` crate).
//! - [`VideoEncoder`]: I420 pictures to H.264 access units in Constrained Baseline
//!   (CAVLC) or Main (CABAC, [`Tuning::cabac`]), without B-frames either way, so decode
//!   order is presentation order; an IDR exactly where asked and nowhere else, at a
//!   target bitrate; its SPS/PPS as an avcC record.

use crate::media::h264::{AnnexBUnit, AvcConfig};
use bytes::Bytes;
use openh264::decoder::{DecodeOptions, Decoder, DecoderConfig, Flush};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use std::collections::BTreeMap;
use std::time::Instant;
pub use streambox_scaler::Filter;

/// A video stage failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VideoError {
    /// OpenH264 rejected an access unit (or could not start).
    #[error("H.264 decoding: {0}")]
    Decode(String),
    /// OpenH264 could not encode a picture (or could not start).
    #[error("H.264 encoding: {0}")]
    Encode(String),
    /// The scaler refused the sizes.
    #[error("scaling: {0}")]
    Scale(String),
}

/// An uncompressed picture, I420 (YUV 4:2:0, planar), planes packed without padding:
/// `y` is `width × height` bytes, `u` and `v` are `⌈width/2⌉ × ⌈height/2⌉`.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Luma plane.
    pub y: Vec<u8>,
    /// Cb plane.
    pub u: Vec<u8>,
    /// Cr plane.
    pub v: Vec<u8>,
}

impl Picture {
    /// Chroma plane width and height.
    pub fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// A picture of one flat colour (for tests and fill-ins).
    pub fn flat(width: u32, height: u32, y: u8, u: u8, v: u8) -> Picture {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        Picture {
            width,
            height,
            y: vec![y; (width * height) as usize],
            u: vec![u; (cw * ch) as usize],
            v: vec![v; (cw * ch) as usize],
        }
    }

    /// A moving test pattern (diagonal luma bands, chroma ramps) at time `t` (frames):
    /// for calibration and tests, something an encoder has to work on.
    pub fn pattern(width: u32, height: u32, t: u32) -> Picture {
        let mut p = Picture::flat(width, height, 0, 128, 128);
        for y in 0..height {
            for x in 0..width {
                p.y[(y * width + x) as usize] = ((x + y + 4 * t) % 256) as u8;
            }
        }
        let (cw, ch) = p.chroma_size();
        for y in 0..ch {
            for x in 0..cw {
                p.u[(y * cw + x) as usize] = (64 + (x * 2 + t) % 128) as u8;
                p.v[(y * cw + x) as usize] = (64 + (y * 2) % 128) as u8;
            }
        }
        p
    }

    fn from_decoded(d: &impl YUVSource) -> Picture {
        let (w, h) = d.dimensions();
        let (sy, su, sv) = d.strides();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let plane = |src: &[u8], stride: usize, pw: usize, ph: usize| {
            let mut out = Vec::with_capacity(pw * ph);
            for row in 0..ph {
                let start = row * stride;
                out.extend_from_slice(src.get(start..start + pw).unwrap_or(&[]));
            }
            out.resize(pw * ph, 0);
            out
        };
        Picture {
            width: w as u32,
            height: h as u32,
            y: plane(d.y(), sy, w, h),
            u: plane(d.u(), su, cw, ch),
            v: plane(d.v(), sv, cw, ch),
        }
    }
}

impl YUVSource for Picture {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let cw = self.chroma_size().0 as usize;
        (self.width as usize, cw, cw)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// A decoded picture and where it belongs in the source.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The picture.
    pub picture: std::sync::Arc<Picture>,
    /// Presentation time, ticks of the 90 kHz clock.
    pub pts: i64,
    /// The source frame was a keyframe (IDR): rungs start a GOP here.
    pub keyframe: bool,
    /// Arrival of the source frame, for latency.
    pub received: Instant,
}

/// Why OpenH264 cannot decode a stream of this configuration, or `None` when it can. It
/// decodes the Baseline, Main and High profiles (8-bit 4:2:0); not Extended, High 10,
/// High 4:2:2, High 4:4:4, or the scalable and multiview profiles (ISO/IEC 14496-10
/// Annex A, G, H).
pub fn unsupported_profile(c: &crate::media::h264::AvcConfig) -> Option<String> {
    let name = match c.profile_idc {
        66 | 77 | 100 => return None,
        88 => "Extended",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4 Intra",
        83 | 86 => "Scalable",
        118 | 128 | 134 | 135 | 138 | 139 => "Multiview",
        _ => "unknown",
    };
    Some(format!("{name} (profile_idc {})", c.profile_idc))
}

/// An OpenH264 decoder that hands pictures back in presentation order with their times.
///
/// OpenH264 reorders B-frames itself but does not carry timestamps through, so the
/// decoder keeps the presentation times of the frames it was given and gives each
/// picture out the smallest one pending: pictures leave a decoder in presentation order
/// (ISO/IEC 14496-10 §C.4.5.3).
pub struct VideoDecoder {
    decoder: Decoder,
    /// PTS of frames given and not yet output → (keyframe, arrival).
    pending: BTreeMap<i64, (bool, Instant)>,
    /// The parameter sets went in with the last keyframe; a new config sends them again.
    config: Option<Bytes>,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDecoder")
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// Pictures a decoder may hold before the oldest pending time is given up for lost
/// (a frame OpenH264 swallowed without output).
const MAX_PENDING: usize = 32;

impl VideoDecoder {
    /// A new decoder.
    ///
    /// # Errors
    /// [`VideoError::Decode`] when OpenH264 cannot start.
    pub fn new() -> Result<VideoDecoder, VideoError> {
        let decoder = Decoder::with_api_config(
            OpenH264API::from_source(),
            DecoderConfig::new().flush_after_decode(Flush::NoFlush),
        )
        .map_err(|e| VideoError::Decode(e.to_string()))?;
        Ok(VideoDecoder {
            decoder,
            pending: BTreeMap::new(),
            config: None,
        })
    }

    /// Decodes one access unit (`data`, AVCC for `config`) presented at `pts`; returns
    /// the pictures that became ready, in presentation order.
    ///
    /// # Errors
    /// [`VideoError::Decode`] for an access unit OpenH264 rejects; the caller should skip
    /// to the next keyframe. The decoder starts afresh: the pictures it held for
    /// reordering are dropped with their times, so no later picture gets a stale one.
    pub fn decode(
        &mut self,
        config: &AvcConfig,
        data: &[u8],
        pts: i64,
        keyframe: bool,
        received: Instant,
    ) -> Result<Vec<Decoded>, VideoError> {
        let fresh = self.config.as_ref() != Some(&config.record);
        let stream = config
            .annex_b(data, keyframe || fresh)
            .map_err(|e| VideoError::Decode(e.to_string()))?;
        if keyframe || fresh {
            self.config = Some(config.record.clone());
        }
        self.pending.insert(pts, (keyframe, received));
        let picture = match self.decoder.decode_with_options(
            &stream,
            DecodeOptions::new().flush_after_decode(Flush::NoFlush),
        ) {
            Ok(p) => p.map(|p| Picture::from_decoded(&p)),
            Err(e) => {
                // Start afresh: a decoder flushed after an error can fail on good input.
                if let Ok(d) = VideoDecoder::new() {
                    *self = d;
                }
                self.pending.clear();
                return Err(VideoError::Decode(e.to_string()));
            }
        };
        let mut out = Vec::new();
        if let Some(p) = picture {
            out.extend(self.timed(p));
        }
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
        Ok(out)
    }

    /// The pictures still held (the source ended or changed parameters).
    pub fn flush(&mut self) -> Vec<Decoded> {
        let pictures: Vec<Picture> = match self.decoder.flush_remaining() {
            Ok(rest) => rest.iter().map(Picture::from_decoded).collect(),
            Err(_) => Vec::new(),
        };
        let out = pictures.into_iter().filter_map(|p| self.timed(p)).collect();
        self.pending.clear();
        out
    }

    fn timed(&mut self, picture: Picture) -> Option<Decoded> {
        let (pts, (keyframe, received)) = self.pending.pop_first()?;
        Some(Decoded {
            picture: std::sync::Arc::new(picture),
            pts,
            keyframe,
            received,
        })
    }
}

/// How a rung's scaler and OpenH264 encoder trade CPU for picture quality. Each field
/// is one of OpenH264's own settings (`SEncParamExt` in its `codec_app_def.h`), or the
/// scaler's filter. `bench/quality.sh` measures them; [`Tuning::default`] is what rungs
/// use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// OpenH264's complexity mode: how hard it searches motion and modes, 0 (low) to 2
    /// (high).
    pub complexity: u8,
    /// Rate control: bitrate mode (`true`, the rung's budget) or OpenH264's quality mode
    /// (`false`, which may overshoot).
    pub bitrate_mode: bool,
    /// The smallest and largest quantiser (0-51).
    pub qp: (u8, u8),
    /// Adaptive quantisation: fewer bits for busy areas, more for flat ones.
    pub adaptive_quantization: bool,
    /// Background detection: fewer bits for areas that do not change.
    pub background_detection: bool,
    /// Scene-change detection: OpenH264 codes the picture at a cut as intra. Off in
    /// rungs so far, so that their keyframes are where the source's are.
    pub scene_change: bool,
    /// Entropy coding: CABAC in the Main profile (`true`) or CAVLC in Constrained
    /// Baseline (`false`). Every HLS and DASH player decodes Main.
    pub cabac: bool,
    /// The scaler's filter.
    pub filter: Filter,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            complexity: 0,
            bitrate_mode: true,
            qp: (0, 51),
            adaptive_quantization: true,
            background_detection: true,
            scene_change: false,
            cabac: false,
            filter: Filter::Bilinear,
        }
    }
}

impl Tuning {
    /// Applies `key=value` settings, comma-separated (`complexity=2,filter=lanczos3,
    /// qp=12-42,aq=on,background=off,scene=on,rc=bitrate|quality,entropy=cabac|cavlc`),
    /// over `self`, in order; `preset=efficient|balanced|best` sets all of them to that
    /// [`Quality`]'s.
    ///
    /// # Errors
    /// The setting that is not one of those, or out of range, in words.
    pub fn with(mut self, settings: &str) -> Result<Tuning, String> {
        let on = |v: &str| match v {
            "on" | "1" | "true" => Ok(true),
            "off" | "0" | "false" => Ok(false),
            _ => Err(format!("{v:?}: on or off")),
        };
        for kv in settings.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{kv:?}: key=value"))?;
            match k {
                "complexity" => {
                    self.complexity = v
                        .parse()
                        .ok()
                        .filter(|c| *c <= 2)
                        .ok_or_else(|| format!("complexity {v:?}: 0, 1 or 2"))?
                }
                "rc" => {
                    self.bitrate_mode = match v {
                        "bitrate" => true,
                        "quality" => false,
                        _ => return Err(format!("rc {v:?}: bitrate or quality")),
                    }
                }
                "qp" => {
                    self.qp = v
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                        .filter(|(a, b): &(u8, u8)| a <= b && *b <= 51)
                        .ok_or_else(|| format!("qp {v:?}: MIN-MAX within 0-51"))?
                }
                "aq" => self.adaptive_quantization = on(v)?,
                "background" => self.background_detection = on(v)?,
                "scene" => self.scene_change = on(v)?,
                "entropy" => {
                    self.cabac = match v {
                        "cabac" => true,
                        "cavlc" => false,
                        _ => return Err(format!("entropy {v:?}: cabac or cavlc")),
                    }
                }
                "filter" => {
                    self.filter = Filter::from_name(v).ok_or_else(|| {
                        format!("filter {v:?}: box, bilinear, mitchell, catmull-rom or lanczos3")
                    })?
                }
                "preset" => {
                    self = Quality::from_name(v)
                        .ok_or_else(|| format!("preset {v:?}: efficient, balanced or best"))?
                        .tuning()
                }
                _ => return Err(format!("{k:?} is not a setting")),
            }
        }
        Ok(self)
    }
}

/// The picture quality an ABR ladder's rungs are made at, as the admin picks it: each
/// preset is a [`Tuning`], dearer in CPU and better per bit than the one before it
/// (`bench/quality.sh` measures them; the README has the figures). The admission
/// control knows each one's cost (`transcode::cost`), and makes a rung one preset
/// cheaper rather than not at all when the machine cannot afford the one asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Quality {
    /// Today's rungs before presets existed: the least CPU.
    Efficient,
    /// Within reach of libx264 -preset veryfast at about its CPU.
    #[default]
    Balanced,
    /// The most OpenH264 and the scaler can give, at the most CPU.
    Best,
}

impl Quality {
    /// Every preset, cheapest first.
    pub const ALL: [Quality; 3] = [Quality::Efficient, Quality::Balanced, Quality::Best];

    /// Its name in the API, the CLI and the database: `efficient`, `balanced`, `best`.
    pub fn name(self) -> &'static str {
        match self {
            Quality::Efficient => "efficient",
            Quality::Balanced => "balanced",
            Quality::Best => "best",
        }
    }

    /// The preset named `name` (as [`Quality::name`] gives it).
    pub fn from_name(name: &str) -> Option<Quality> {
        Quality::ALL.into_iter().find(|q| q.name() == name)
    }

    /// Its position in [`Quality::ALL`] (0 for the cheapest).
    pub fn index(self) -> usize {
        self as usize
    }

    /// This preset and the cheaper ones, dearest first: what admission tries in turn.
    pub fn and_cheaper(self) -> impl Iterator<Item = Quality> {
        Quality::ALL[..=self.index()].iter().rev().copied()
    }

    /// The scaler and encoder settings of this preset.
    pub fn tuning(self) -> Tuning {
        let base = Tuning::default();
        match self {
            Quality::Efficient => base,
            // bench/quality.sh --sweep (2026-12-03): Catmull-Rom scaling gains 0.3-0.5
            // dB over bilinear at about the same CPU; without background detection
            // OpenH264 spends more of the rung's budget where it was under it (up to
            // 0.4 dB). Complexity 1 and 2 code alike (+0.05-0.1 dB) at more CPU.
            // CABAC (the Main profile) gains 0.4-0.7 dB at 1.1-1.15x the CPU
            // (2026-12-04); efficient stays Constrained Baseline, for the oldest players.
            Quality::Balanced => Tuning {
                filter: Filter::CatmullRom,
                background_detection: false,
                cabac: true,
                ..base
            },
            // Lanczos gains another 0.1 dB at 1.5-1.8x the scaler's CPU; complexity 2
            // the last 0.05-0.1 dB.
            Quality::Best => Tuning {
                complexity: 2,
                filter: Filter::Lanczos3,
                background_detection: false,
                cabac: true,
                ..base
            },
        }
    }
}

impl std::fmt::Display for Quality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Scales I420 pictures to one output size (each plane with a [`Filter`], with
/// fast_image_resize through [`streambox_scaler`]).
pub struct Scaler {
    planes: streambox_scaler::PlaneScaler,
    width: u32,
    height: u32,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scaler({}x{})", self.width, self.height)
    }
}

impl Scaler {
    /// A scaler to `width`×`height` pixels, bilinear.
    pub fn new(width: u32, height: u32) -> Scaler {
        Scaler::with_filter(width, height, Filter::Bilinear)
    }

    /// A scaler to `width`×`height` pixels with `filter`.
    pub fn with_filter(width: u32, height: u32, filter: Filter) -> Scaler {
        Scaler {
            planes: streambox_scaler::PlaneScaler::new(filter),
            width,
            height,
        }
    }

    /// `src` scaled to this scaler's size (the whole picture: the caller chose a size
    /// with the same aspect ratio).
    ///
    /// # Errors
    /// [`VideoError::Scale`] for an empty or inconsistent picture.
    pub fn scale(&mut self, src: &Picture) -> Result<Picture, VideoError> {
        let mut out = Picture::flat(self.width, self.height, 0, 128, 128);
        let (scw, sch) = src.chroma_size();
        let (dcw, dch) = out.chroma_size();
        let planes = [
            (
                &src.y,
                src.width,
                src.height,
                &mut out.y,
                self.width,
                self.height,
            ),
            (&src.u, scw, sch, &mut out.u, dcw, dch),
            (&src.v, scw, sch, &mut out.v, dcw, dch),
        ];
        for (s, sw, sh, d, dw, dh) in planes {
            self.planes
                .scale(s, sw, sh, d, dw, dh)
                .map_err(|e| VideoError::Scale(e.to_string()))?;
        }
        Ok(out)
    }
}

/// One encoded access unit.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// AVCC NAL units (4-byte lengths), without parameter sets.
    pub data: Bytes,
    /// An IDR picture.
    pub idr: bool,
}

/// An OpenH264 encoder for one rung.
pub struct VideoEncoder {
    encoder: Encoder,
    /// The SPS/PPS of the stream so far, as an avcC record.
    config: Option<AvcConfig>,
    /// Whether the rung codes with CABAC ([`Tuning::cabac`]).
    cabac: bool,
    /// The picture size (luma samples) the encoder was last switched to CABAC at.
    cabac_at: Option<(usize, usize)>,
}

impl std::fmt::Debug for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VideoEncoder")
    }
}

impl VideoEncoder {
    /// An encoder at `bitrate` bit/s for pictures at up to `fps` frames per second.
    /// Keyframes come only where [`VideoEncoder::encode`] asks for them.
    ///
    /// # Errors
    /// [`VideoError::Encode`] when OpenH264 cannot start.
    pub fn new(bitrate: u32, fps: f64) -> Result<VideoEncoder, VideoError> {
        VideoEncoder::with_tuning(bitrate, fps, &Tuning::default())
    }

    /// An encoder as [`VideoEncoder::new`] makes, with `tuning`'s encoder settings.
    ///
    /// # Errors
    /// [`VideoError::Encode`] when OpenH264 cannot start.
    pub fn with_tuning(
        bitrate: u32,
        fps: f64,
        tuning: &Tuning,
    ) -> Result<VideoEncoder, VideoError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(if tuning.bitrate_mode {
                RateControlMode::Bitrate
            } else {
                RateControlMode::Quality
            })
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(match tuning.complexity {
                0 => Complexity::Low,
                1 => Complexity::Medium,
                _ => Complexity::High,
            })
            .qp({
                // QpRange::new panics outside 0 ≤ min ≤ max ≤ 51.
                let max = tuning.qp.1.min(51);
                QpRange::new(tuning.qp.0.min(max), max)
            })
            .adaptive_quantization(tuning.adaptive_quantization)
            .background_detection(tuning.background_detection)
            .skip_frames(false)
            .scene_change_detect(tuning.scene_change)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| VideoError::Encode(e.to_string()))?;
        Ok(VideoEncoder {
            encoder,
            config: None,
            cabac: tuning.cabac,
            cabac_at: None,
        })
    }

    /// Encodes `picture` (shown at `pts_ms`); an IDR when `idr`. Returns the access
    /// unit, and the avcC config when it is new (the first picture, or new parameter
    /// sets). `None` when the encoder produced nothing for this picture.
    ///
    /// # Errors
    /// [`VideoError::Encode`].
    pub fn encode(
        &mut self,
        picture: &Picture,
        idr: bool,
        pts_ms: u64,
    ) -> Result<Option<(Encoded, Option<AvcConfig>)>, VideoError> {
        if self.cabac && self.cabac_at != Some(picture.dimensions()) {
            // The crate starts OpenH264 (CAVLC, Constrained Baseline) at the first picture
            // of a size; that picture's coding is thrown away, and the encoder restarted
            // with CABAC codes it again as an IDR.
            self.encoder
                .encode_at(picture, Timestamp::from_millis(pts_ms))
                .map_err(|e| VideoError::Encode(e.to_string()))?;
            super::entropy::switch_to_cabac(&mut self.encoder).map_err(VideoError::Encode)?;
            self.cabac_at = Some(picture.dimensions());
        }
        if idr {
            self.encoder.force_intra_frame();
        }
        let stream = self
            .encoder
            .encode_at(picture, Timestamp::from_millis(pts_ms))
            .map_err(|e| VideoError::Encode(e.to_string()))?
            .to_vec();
        let AnnexBUnit { data, idr, record } = AnnexBUnit::split(&stream);
        if data.is_empty() {
            return Ok(None);
        }
        let mut new_config = None;
        if let Some(record) = record {
            if self.config.as_ref().map(|c| &c.record) != Some(&record) {
                let c = AvcConfig::parse(record).map_err(|e| VideoError::Encode(e.to_string()))?;
                self.config = Some(c.clone());
                new_config = Some(c);
            }
        }
        if self.config.is_none() {
            return Err(VideoError::Encode(
                "the first picture came without SPS and PPS".into(),
            ));
        }
        Ok(Some((
            Encoded {
                data: Bytes::from(data),
                idr,
            },
            new_config,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(width: u32, height: u32, t: u32) -> Picture {
        Picture::pattern(width, height, t)
    }

    #[test]
    fn tunings_parse_and_refuse_what_is_not_a_setting() {
        let t = Tuning::default()
            .with("complexity=2,filter=lanczos3,qp=10-42,aq=off,background=off,scene=on,rc=quality,entropy=cabac")
            .expect("settings");
        assert_eq!(
            t,
            Tuning {
                complexity: 2,
                bitrate_mode: false,
                qp: (10, 42),
                adaptive_quantization: false,
                background_detection: false,
                scene_change: true,
                cabac: true,
                filter: Filter::Lanczos3,
            }
        );
        assert_eq!(Tuning::default().with(""), Ok(Tuning::default()));
        assert_eq!(
            Tuning::default().with("preset=best"),
            Ok(Quality::Best.tuning())
        );
        assert_eq!(
            t.with("preset=efficient,filter=mitchell").map(|t| t.filter),
            Ok(Filter::Mitchell)
        );
        for q in Quality::ALL {
            assert_eq!(Quality::from_name(q.name()), Some(q));
            assert_eq!(q.and_cheaper().next(), Some(q));
            assert_eq!(q.and_cheaper().last(), Some(Quality::Efficient));
        }
        for bad in [
            "complexity=3",
            "qp=42-10",
            "qp=0-52",
            "filter=nearest",
            "aq=maybe",
            "rc=cbr",
            "speed=1",
            "complexity",
            "preset=finest",
            "entropy=huffman",
        ] {
            assert!(Tuning::default().with(bad).is_err(), "{bad}");
        }
        for f in Filter::ALL {
            assert_eq!(Filter::from_name(f.name()), Some(f));
        }
        // Every tuning encodes: a rung with the dearest settings still makes pictures.
        let mut scaler = Scaler::with_filter(320, 180, t.filter);
        let mut enc = VideoEncoder::with_tuning(400_000, 25.0, &t).expect("encoder");
        let small = scaler.scale(&pattern(640, 360, 0)).expect("scale");
        let (au, config) = enc.encode(&small, true, 0).expect("encode").expect("an AU");
        assert!(au.idr && config.is_some() && !au.data.is_empty());
        // A QP range out of bounds, set field by field, is clamped, never a panic.
        let odd = Tuning {
            qp: (60, 55),
            ..Tuning::default()
        };
        VideoEncoder::with_tuning(400_000, 25.0, &odd).expect("a clamped QP range");
    }

    #[test]
    fn encode_scale_decode_round_trip_with_idrs_only_where_asked() {
        // Constrained Baseline (CAVLC) and Main (CABAC), which restarts OpenH264 after
        // its first picture.
        for (cabac, profile_idc) in [(false, 66), (true, 77)] {
            round_trip(
                &Tuning {
                    cabac,
                    ..Tuning::default()
                },
                profile_idc,
            );
        }
    }

    fn round_trip(tuning: &Tuning, profile_idc: u8) {
        let mut scaler = Scaler::new(320, 180);
        let mut enc = VideoEncoder::with_tuning(800_000, 25.0, tuning).expect("encoder");
        let mut dec = VideoDecoder::new().expect("decoder");
        let mut config = None;
        let mut idrs = Vec::new();
        let mut out = Vec::new();
        let t0 = Instant::now();
        for t in 0..30u32 {
            let src = pattern(640, 360, t);
            let small = scaler.scale(&src).expect("scale");
            assert_eq!(
                (small.width, small.height, small.y.len()),
                (320, 180, 320 * 180)
            );
            let key = t % 10 == 0;
            let (au, new) = enc
                .encode(&small, key, u64::from(t) * 40)
                .expect("encode")
                .expect("a picture");
            if let Some(c) = new {
                assert!(
                    config.is_none(),
                    "one set of parameters, at the first picture"
                );
                assert_eq!((c.width, c.height), (320, 180));
                assert_eq!(c.profile_idc, profile_idc);
                // The PPS (ids 0 and 0, each ue(v) "1") and its entropy_coding_mode_flag
                // (ISO/IEC 14496-10 §7.3.2.2).
                let pps = &c.pps[0];
                assert_eq!(pps[1] & 0xc0, 0xc0, "PPS and SPS id 0");
                assert_eq!(pps[1] & 0x20 != 0, tuning.cabac, "CABAC as tuned");
                config = Some(c);
            }
            if au.idr {
                idrs.push(t);
            }
            let c = config.as_ref().expect("config with the first picture");
            out.extend(
                dec.decode(c, &au.data, i64::from(t) * 3600, au.idr, t0)
                    .expect("decode"),
            );
        }
        out.extend(dec.flush());
        assert_eq!(idrs, [0, 10, 20], "an IDR where asked, nowhere else");
        assert_eq!(out.len(), 30);
        let pts: Vec<i64> = out.iter().map(|d| d.pts).collect();
        assert_eq!(pts, (0..30).map(|t| t * 3600).collect::<Vec<_>>());
        assert!(out[10].keyframe && !out[11].keyframe);
        // The decoded picture looks like the scaled source.
        let reference = scaler.scale(&pattern(640, 360, 29)).expect("scale");
        let db = crate::transcode::psnr(&out[29].picture.y, &reference.y);
        assert!(db > 30.0, "{db} dB");
    }

    #[test]
    fn a_rejected_frame_leaves_no_stale_time_behind() {
        let mut enc = VideoEncoder::new(400_000, 25.0).expect("encoder");
        let mut dec = VideoDecoder::new().expect("decoder");
        let mut config = None;
        let mut out = Vec::new();
        let t0 = Instant::now();
        for t in 0..20u32 {
            let (au, new) = enc
                .encode(&pattern(160, 96, t), t % 10 == 0, u64::from(t) * 40)
                .expect("encode")
                .expect("a picture");
            if new.is_some() {
                config = new;
            }
            let c = config.as_ref().expect("config");
            let pts = i64::from(t) * 3600;
            if t == 5 {
                // A P slice naming picture parameter set 5, which does not exist
                // (first_mb 0, slice_type P, pps id 5; ITU-T H.264 §7.3.3).
                let bad = [0, 0, 0, 4, 0x41, 0b1100_1100, 0x12, 0x34];
                assert!(dec.decode(c, &bad, pts, false, t0).is_err());
                continue;
            }
            if (6..10).contains(&t) {
                continue; // skipping to the next keyframe
            }
            out.extend(dec.decode(c, &au.data, pts, au.idr, t0).expect("decode"));
        }
        out.extend(dec.flush());
        let pts: Vec<i64> = out.iter().map(|d| d.pts / 3600).collect();
        assert_eq!(pts, [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
        assert!(out[5].keyframe && !out[6].keyframe);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let config = AvcConfig::parse(Bytes::from_static(crate::media::h264::tests::BBB_AVCC))
            .expect("avcC");
        let mut dec = VideoDecoder::new().expect("decoder");
        assert!(dec
            .decode(&config, &[0, 0, 0, 9, 0x65], 0, true, Instant::now())
            .is_err());
        let _ = dec.decode(&config, &[0, 0, 0, 2, 0x65, 0x88], 0, true, Instant::now());
        let _ = dec.flush();
        let mut s = Scaler::new(16, 16);
        let bad = Picture {
            width: 64,
            height: 64,
            y: vec![0; 10],
            u: vec![],
            v: vec![],
        };
        assert!(s.scale(&bad).is_err());
    }
}
