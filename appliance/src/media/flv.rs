//! FLV audio and video tag bodies as RTMP carries them in its audio (type 8) and video
//! (type 9) messages: Adobe "Video File Format Specification" 10.1, §E.4.2.1 (AUDIODATA,
//! AACAUDIODATA) and §E.4.3.1 (VIDEODATA, AVCVIDEOPACKET); the Enhanced RTMP extension
//! (`IsExHeader`) is recognised only to name the codec it carries.

use bytes::Bytes;

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
