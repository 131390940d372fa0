//! FLV audio and video tag bodies as RTMP carries them in its audio (type 8) and video
//! (type 9) messages: Adobe "Video File Format Specification" 10.1, §E.4.2.1 (AUDIODATA,
//! AACAUDIODATA) and §E.4.3.1 (VIDEODATA, AVCVIDEOPACKET); the Enhanced RTMP extension
//! (`IsExHeader`) is recognised only to name the codec it carries.
//!
//! [`FlvDemuxer`] turns a publisher's tag bodies into [`Frame`]s: it parses sequence
//! headers into [`TrackParams`], widens the 32-bit millisecond timestamps once
//! ([`MsTimeline`]), stamps AAC frames sample-exactly ([`AudioClock`]) and checks every
//! access unit before it goes anywhere.

use super::aac::{AacError, AudioConfig};
use super::h264::{AvcConfig, H264Error};
use super::timeline::{AudioClock, MsTimeline};
use super::{Frame, TrackId, TrackParams, VIDEO_TIMESCALE};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// Why a tag body was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    /// The tag body is shorter than its header.
    #[error("{kind} tag of {len} bytes is shorter than its header")]
    Truncated {
        /// `audio` or `video`.
        kind: &'static str,
        /// Bytes present.
        len: usize,
    },
    /// A video codec other than H.264, named.
    #[error("unsupported video codec {0}; streambox ingests H.264 (AVC)")]
    UnsupportedVideoCodec(String),
    /// An audio codec other than AAC, named.
    #[error("unsupported audio codec {0}; streambox ingests AAC")]
    UnsupportedAudioCodec(String),
    /// An AVCPacketType / AACPacketType outside the spec.
    #[error("unknown {kind} packet type {value}")]
    PacketType {
        /// `AVC` or `AAC`.
        kind: &'static str,
        /// The value found.
        value: u8,
    },
}

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVCPacketType 0: an AVCDecoderConfigurationRecord.
    AvcSequenceHeader(Bytes),
    /// AVCPacketType 1: one access unit of AVCC NAL units.
    AvcNalu {
        /// FrameType 1 (keyframe).
        is_keyframe: bool,
        /// CompositionTime (SI24), milliseconds, `pts - dts`.
        cts_ms: i32,
        /// Length-prefixed NAL units.
        data: Bytes,
    },
    /// AVCPacketType 2, or a FrameType 5 info/command frame: carries no picture.
    NoPicture,
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AACPacketType 0: an AudioSpecificConfig.
    AacSequenceHeader(Bytes),
    /// AACPacketType 1: one raw AAC access unit.
    AacRaw(Bytes),
}

fn video_codec_name(id: u8) -> String {
    match id {
        2 => "Sorenson H.263".into(),
        3 => "Screen video".into(),
        4 => "On2 VP6".into(),
        5 => "On2 VP6 with alpha".into(),
        6 => "Screen video version 2".into(),
        12 => "HEVC (H.265)".into(),
        13 => "AV1".into(),
        id => format!("FLV video codec id {id}"),
    }
}

fn audio_codec_name(id: u8) -> String {
    match id {
        0 | 3 => "Linear PCM".into(),
        1 => "ADPCM".into(),
        2 | 14 => "MP3".into(),
        4..=6 => "Nellymoser".into(),
        7 => "G.711 A-law".into(),
        8 => "G.711 mu-law".into(),
        9 => "Enhanced RTMP audio (Opus/FLAC/AC-3/E-AC-3)".into(),
        11 => "Speex".into(),
        id => format!("FLV audio codec id {id}"),
    }
}

/// Parses a VIDEODATA tag body (§E.4.3.1).
///
/// # Errors
/// [`FlvError::Truncated`], [`FlvError::UnsupportedVideoCodec`] (with the codec's name),
/// or [`FlvError::PacketType`].
pub fn parse_video(body: &Bytes) -> Result<VideoTag, FlvError> {
    let truncated = FlvError::Truncated {
        kind: "video",
        len: body.len(),
    };
    let first = *body.first().ok_or(truncated.clone())?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: FrameType(3) PacketType(4) then a FourCC.
        let fourcc = body.get(1..5).ok_or(truncated)?;
        let name = match fourcc {
            b"hvc1" => "HEVC (H.265)".to_string(),
            b"av01" => "AV1".to_string(),
            b"vp09" => "VP9".to_string(),
            other => format!("Enhanced RTMP FourCC {}", String::from_utf8_lossy(other)),
        };
        return Err(FlvError::UnsupportedVideoCodec(name));
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if codec_id != 7 {
        return Err(FlvError::UnsupportedVideoCodec(video_codec_name(codec_id)));
    }
    if frame_type == 5 {
        return Ok(VideoTag::NoPicture);
    }
    if body.len() < 5 {
        return Err(truncated);
    }
    let cts = i32::from_be_bytes([0, body[2], body[3], body[4]]);
    let cts_ms = (cts << 8) >> 8; // sign-extend SI24
    match body[1] {
        0 => Ok(VideoTag::AvcSequenceHeader(body.slice(5..))),
        1 => Ok(VideoTag::AvcNalu {
            is_keyframe: frame_type == 1,
            cts_ms,
            data: body.slice(5..),
        }),
        2 => Ok(VideoTag::NoPicture),
        value => Err(FlvError::PacketType { kind: "AVC", value }),
    }
}

/// Parses an AUDIODATA tag body (§E.4.2.1).
///
/// # Errors
/// [`FlvError::Truncated`], [`FlvError::UnsupportedAudioCodec`] (with the codec's name),
/// or [`FlvError::PacketType`].
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated {
        kind: "audio",
        len: body.len(),
    })?;
    let format = first >> 4;
    if format != 10 {
        return Err(FlvError::UnsupportedAudioCodec(audio_codec_name(format)));
    }
    match body.get(1) {
        Some(0) => Ok(AudioTag::AacSequenceHeader(body.slice(2..))),
        Some(1) => Ok(AudioTag::AacRaw(body.slice(2..))),
        Some(&value) => Err(FlvError::PacketType { kind: "AAC", value }),
        None => Err(FlvError::Truncated {
            kind: "audio",
            len: body.len(),
        }),
    }
}

/// Why a tag body could not become a frame.
#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    /// The tag itself: truncated, an unsupported codec, an unknown packet type.
    #[error(transparent)]
    Tag(#[from] FlvError),
    /// A bad AVC sequence header or access unit.
    #[error("H.264: {0}")]
    H264(#[from] H264Error),
    /// A bad AAC sequence header.
    #[error("AAC: {0}")]
    Aac(#[from] AacError),
    /// Media of a track before its sequence header.
    #[error("{0} frame before its sequence header")]
    NoSequenceHeader(&'static str),
}

/// What one tag body produced.
#[derive(Debug)]
pub enum Demuxed {
    /// A sequence header with new parameters: a new `Arc`, so a new init segment.
    NewParams(Arc<TrackParams>),
    /// One access unit.
    Frame(Frame),
    /// Nothing to pass on: a repeated sequence header, an end-of-sequence, an empty AAC
    /// frame, an audio frame overlapping earlier audio (see
    /// [`AudioClock::stamp`](super::timeline::AudioClock::stamp)), an info frame.
    Nothing,
}

/// Turns one publisher's FLV audio and video tag bodies into [`Frame`]s (sans-IO).
#[derive(Debug)]
pub struct FlvDemuxer {
    timeline: MsTimeline,
    video: Option<Arc<TrackParams>>,
    audio: Option<(Arc<TrackParams>, AudioClock)>,
}

impl FlvDemuxer {
    /// A demuxer whose first timestamp maps to `base_ms` milliseconds of stream time
    /// (at least [`super::timeline::MIN_BASE_MS`]).
    pub fn new(base_ms: i64) -> FlvDemuxer {
        FlvDemuxer {
            timeline: MsTimeline::new(base_ms),
            video: None,
            audio: None,
        }
    }

    /// How many timestamp discontinuities were re-anchored so far
    /// ([`MsTimeline::jumps`]).
    pub fn jumps(&self) -> u32 {
        self.timeline.jumps()
    }

    /// Handles a VIDEODATA body with wire timestamp `wire_ms` (RTMP milliseconds), which
    /// arrived at `received`.
    ///
    /// # Errors
    /// [`DemuxError`]: a bad tag, a bad AVC record or access unit, or a frame before the
    /// sequence header.
    pub fn video(
        &mut self,
        body: &Bytes,
        wire_ms: u32,
        received: Instant,
    ) -> Result<Demuxed, DemuxError> {
        match parse_video(body)? {
            VideoTag::AvcSequenceHeader(record) => {
                let cfg = AvcConfig::parse(record)?;
                if matches!(self.video.as_deref(), Some(TrackParams::Video(old)) if old.record == cfg.record)
                {
                    return Ok(Demuxed::Nothing);
                }
                let params = Arc::new(TrackParams::Video(cfg));
                self.video = Some(params.clone());
                Ok(Demuxed::NewParams(params))
            }
            VideoTag::AvcNalu {
                is_keyframe,
                cts_ms,
                data,
            } => {
                let params = self
                    .video
                    .clone()
                    .ok_or(DemuxError::NoSequenceHeader("video"))?;
                if let TrackParams::Video(cfg) = &*params {
                    cfg.check_access_unit(&data)?;
                }
                let ticks_per_ms = i64::from(VIDEO_TIMESCALE / 1000);
                Ok(Demuxed::Frame(Frame {
                    track: TrackId::Video,
                    dts: self.timeline.map(TrackId::Video, wire_ms) * ticks_per_ms,
                    cts: cts_ms.saturating_mul(ticks_per_ms as i32),
                    is_sync: is_keyframe,
                    params,
                    data,
                    received,
                }))
            }
            VideoTag::NoPicture => Ok(Demuxed::Nothing),
        }
    }

    /// Handles an AUDIODATA body with wire timestamp `wire_ms`, which arrived at
    /// `received`.
    ///
    /// # Errors
    /// [`DemuxError`]: a bad tag, a bad AudioSpecificConfig, or a frame before the
    /// sequence header.
    pub fn audio(
        &mut self,
        body: &Bytes,
        wire_ms: u32,
        received: Instant,
    ) -> Result<Demuxed, DemuxError> {
        match parse_audio(body)? {
            AudioTag::AacSequenceHeader(asc) => {
                let cfg = AudioConfig::parse(asc)?;
                if matches!(self.audio.as_ref().map(|(p, _)| &**p), Some(TrackParams::Audio(old)) if old.asc == cfg.asc)
                {
                    return Ok(Demuxed::Nothing);
                }
                let clock = AudioClock::new(cfg.sample_rate, cfg.frame_length);
                let params = Arc::new(TrackParams::Audio(cfg));
                self.audio = Some((params.clone(), clock));
                Ok(Demuxed::NewParams(params))
            }
            AudioTag::AacRaw(data) if data.is_empty() => Ok(Demuxed::Nothing),
            AudioTag::AacRaw(data) => {
                let ms = self.timeline.map(TrackId::Audio, wire_ms);
                let (params, clock) = self
                    .audio
                    .as_mut()
                    .ok_or(DemuxError::NoSequenceHeader("audio"))?;
                let Some(dts) = clock.stamp(ms) else {
                    return Ok(Demuxed::Nothing);
                };
                Ok(Demuxed::Frame(Frame {
                    track: TrackId::Audio,
                    dts,
                    cts: 0,
                    is_sync: true,
                    params: params.clone(),
                    data,
                    received,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_tags() {
        let nalu = Bytes::from_static(&[0x17, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x65]);
        assert_eq!(
            parse_video(&nalu),
            Ok(VideoTag::AvcNalu {
                is_keyframe: true,
                cts_ms: -40,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            })
        );
        let seq = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            parse_video(&seq),
            Ok(VideoTag::AvcSequenceHeader(Bytes::from_static(&[1, 2])))
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x12, 0])),
            Err(FlvError::UnsupportedVideoCodec("Sorenson H.263".into()))
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1'])),
            Err(FlvError::UnsupportedVideoCodec("HEVC (H.265)".into()))
        );
        assert!(matches!(
            parse_video(&Bytes::from_static(&[0x17, 1, 0])),
            Err(FlvError::Truncated { .. })
        ));
        assert!(parse_video(&Bytes::new()).is_err());
    }

    #[test]
    fn demuxer_orders_and_dedups_sequence_headers() {
        let mut d = FlvDemuxer::new(1000);
        let now = Instant::now();
        let nalu = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        assert!(matches!(
            d.video(&nalu, 0, now),
            Err(DemuxError::NoSequenceHeader("video"))
        ));
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend_from_slice(crate::media::h264::tests::BBB_AVCC);
        let seq = Bytes::from(seq);
        assert!(matches!(d.video(&seq, 0, now), Ok(Demuxed::NewParams(_))));
        assert!(matches!(d.video(&seq, 0, now), Ok(Demuxed::Nothing)));
        match d.video(&nalu, 40, now) {
            Ok(Demuxed::Frame(f)) => assert_eq!((f.dts, f.is_sync), (1000 * 90, true)),
            other => panic!("{other:?}"),
        }
        let bad = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 9, 0x41]);
        assert!(matches!(d.video(&bad, 80, now), Err(DemuxError::H264(_))));
    }

    #[test]
    fn audio_tags() {
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 0, 0x11, 0xb0])),
            Ok(AudioTag::AacSequenceHeader(Bytes::from_static(&[
                0x11, 0xb0
            ])))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0x2f, 0])),
            Err(FlvError::UnsupportedAudioCodec("MP3".into()))
        );
        assert!(parse_audio(&Bytes::from_static(&[0xaf])).is_err());
    }
}
