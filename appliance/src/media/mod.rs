//! Sans-IO media layer: the [`Frame`] every ingest produces, codec parameter parsing
//! (H.264, AAC), FLV tag bodies, and CMAF (fragmented MP4) muxing.
//!
//! Nothing here touches sockets, files or tokio, so it can be fuzzed and benchmarked
//! on its own.
//!
//! | spec | where |
//! | --- | --- |
//! | ISO/IEC 14496-10 §7.3.2.1 (SPS) | [`h264`] |
//! | ISO/IEC 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord) | [`h264`] |
//! | ISO/IEC 14496-3 §1.6.2.1 (AudioSpecificConfig) | [`aac`] |
//! | Adobe FLV 10.1 §E.4.2–E.4.3 (audio/video tag bodies) | [`flv`] |
//! | ISO/IEC 14496-12, ISO/IEC 23000-19 (CMAF) | [`fmp4`] |
//! | ISO/IEC 14496-12 (progressive MP4, reading fragments) | [`mp4`] |
//! | RFC 6381 §3 (codecs parameter) | [`TrackParams::codec_string`] |

pub mod aac;
pub(crate) mod bits;
pub mod flv;
pub mod fmp4;
pub mod h264;
pub mod mp4;
pub mod timeline;

use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// Timescale of every video track: ticks of a 90 kHz clock.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Which track of a stream a frame belongs to. A live stream has at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackId {
    /// The H.264 video track (timescale [`VIDEO_TIMESCALE`]).
    Video,
    /// The AAC audio track (timescale = the sample rate).
    Audio,
}

impl TrackId {
    /// Both tracks, video first: the order of `trak` boxes and of playlists.
    pub const ALL: [TrackId; 2] = [TrackId::Video, TrackId::Audio];

    /// The lowercase name used in URLs and metrics labels: `video` or `audio`.
    pub fn name(self) -> &'static str {
        match self {
            TrackId::Video => "video",
            TrackId::Audio => "audio",
        }
    }

    /// Parses a name produced by [`TrackId::name`].
    pub fn from_name(name: &str) -> Option<TrackId> {
        match name {
            "video" => Some(TrackId::Video),
            "audio" => Some(TrackId::Audio),
            _ => None,
        }
    }

    /// The `track_ID` of this track in our init segments (ISO/IEC 14496-12 §8.3.2).
    pub fn mp4_track_id(self) -> u32 {
        match self {
            TrackId::Video => 1,
            TrackId::Audio => 2,
        }
    }
}

/// Decoder parameters of one track. A new `Arc<TrackParams>` on a frame means a new init
/// segment (and, downstream, a discontinuity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackParams {
    /// H.264 parameters from an AVCDecoderConfigurationRecord.
    Video(h264::AvcConfig),
    /// AAC parameters from an AudioSpecificConfig.
    Audio(aac::AudioConfig),
}

impl TrackParams {
    /// The track these parameters describe.
    pub fn track(&self) -> TrackId {
        match self {
            TrackParams::Video(_) => TrackId::Video,
            TrackParams::Audio(_) => TrackId::Audio,
        }
    }

    /// Ticks per second of this track's timestamps: 90 000 for video, the sample rate
    /// (Hz) for audio.
    pub fn timescale(&self) -> u32 {
        match self {
            TrackParams::Video(_) => VIDEO_TIMESCALE,
            TrackParams::Audio(a) => a.sample_rate,
        }
    }

    /// The RFC 6381 §3 `codecs` value, e.g. `avc1.4d401f` or `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        match self {
            TrackParams::Video(v) => v.codec_string(),
            TrackParams::Audio(a) => a.codec_string(),
        }
    }
}

/// One access unit of one track, as every ingest path produces it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Video or audio track of this stream.
    pub track: TrackId,
    /// Decode time, unwrapped and rebased to the stream's timeline, in ticks of the
    /// track timescale ([`TrackParams::timescale`]).
    pub dts: i64,
    /// Composition offset `pts - dts` in the same ticks; positive with B-frames, and
    /// negative values occur in the wild.
    pub cts: i32,
    /// IDR / random access point. Every AAC frame is one.
    pub is_sync: bool,
    /// SPS/PPS or AudioSpecificConfig in force for this frame.
    pub params: Arc<TrackParams>,
    /// AVCC (length-prefixed) NAL units, or one raw AAC access unit.
    pub data: Bytes,
    /// Arrival time, for latency metrics and wall-clock mapping.
    pub received: Instant,
}
