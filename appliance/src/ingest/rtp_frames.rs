//! Frames from RTP, whichever way they came: pulled from a camera (depacketized by
//! retina) or pushed by an RTSP publisher (depacketized by [`crate::rtsp::depacketize`]).
//! Both yield access units stamped with RTP time (RFC 6184 H.264, RFC 3640 AAC,
//! RFC 3551 G.711); [`RtpFrames`] turns those into [`Frame`]s on the stream's timeline.
//!
//! - Video: the RTP timestamp is the presentation time (RFC 6184 §5.1); decode times
//!   come from [`DtsFromPts`], with the reorder depth from the SPS.
//! - AAC: sample-exact through [`AudioClock`].
//! - G.711 (PCMA/PCMU), which HLS cannot carry: decoded and encoded to AAC-LC with
//!   [`AacEncoder`], keeping its timing.
//!
//! Other audio codecs are left out (the stream goes on with video only), and so is
//! video other than H.264.

use crate::media::aac::{AacError, AudioConfig};
use crate::media::h264::{AvcConfig, H264Error};
use crate::media::timeline::{AudioClock, DtsFromPts, MAX_JUMP_MS};
use crate::media::{Frame, TrackId, TrackParams, VIDEO_TIMESCALE};
use crate::transcode::aac::{AacEncodeError, AacEncoder};
use crate::transcode::g711::{self, Law};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// The earliest stream time (ms) RTP time zero maps to. Decode times of B-frame video
/// come before the presentation times RTP carries (by the reorder delay), and audio may
/// start before video; this keeps them all at or after zero on a new stream.
pub const MIN_BASE_MS: i64 = 1000;

/// One H.264 access unit from RTP.
#[derive(Debug, Clone)]
pub struct VideoAu {
    /// Presentation time: ticks of the 90 kHz RTP clock since RTP time zero (negative
    /// for a packet stamped before the session's start).
    pub pts: i64,
    /// Contains an IDR picture.
    pub is_sync: bool,
    /// NAL units, each with a 4-byte length prefix.
    pub data: Bytes,
    /// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), with the access
    /// unit whose parameters are new or changed.
    pub params: Option<Bytes>,
}

/// What an audio stream carries, decided from its SDP `rtpmap` (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioInput {
    /// AAC (`mpeg4-generic`, RFC 3640), passed through; with its AudioSpecificConfig
    /// (the `config` fmtp parameter).
    Aac(Bytes),
    /// G.711 (`PCMA`/`PCMU`, RFC 3551 §4.5.14): transcoded to AAC-LC.
    G711 {
        /// A-law or µ-law.
        law: Law,
        /// Samples per second (8000 in practice).
        sample_rate: u32,
        /// 1 or 2.
        channels: u16,
    },
}

impl AudioInput {
    /// The input for an SDP encoding name (any case), its clock rate in Hz and channel
    /// count, and for AAC its AudioSpecificConfig; `None` for audio streambox cannot
    /// carry or transcode.
    pub fn from_encoding(
        encoding_name: &str,
        clock_rate: u32,
        channels: u16,
        aac_config: Option<Bytes>,
    ) -> Option<Self> {
        let g711 = |law| AudioInput::G711 {
            law,
            sample_rate: clock_rate,
            channels,
        };
        match encoding_name.to_ascii_lowercase().as_str() {
            "mpeg4-generic" => aac_config.map(AudioInput::Aac),
            "pcma" => Some(g711(Law::A)),
            "pcmu" => Some(g711(Law::Mu)),
            _ => None,
        }
    }
}

/// What the hub should be given next.
#[derive(Debug)]
pub enum RtpOut {
    /// A track's parameters, before its first frame and whenever they change.
    Params(Arc<TrackParams>),
    /// An access unit on the stream timeline.
    Frame(Frame),
}

/// An access unit could not be turned into a frame.
#[derive(Debug, thiserror::Error)]
pub enum RtpMediaError {
    /// The H.264 parameters did not parse.
    #[error("video parameters: {0}")]
    Video(#[from] H264Error),
    /// The AAC AudioSpecificConfig did not parse.
    #[error("audio parameters: {0}")]
    Audio(#[from] AacError),
    /// G.711 could not be transcoded to AAC.
    #[error("audio transcode: {0}")]
    Encode(#[from] AacEncodeError),
    /// RTP time jumped by more than [`MAX_JUMP_MS`] either way: the source restarted
    /// its clock. The session ends; the next one continues with a discontinuity.
    #[error("{track} RTP time jumped by {jump_ms} ms")]
    Jump {
        /// `video` or `audio`.
        track: &'static str,
        /// The jump in milliseconds.
        jump_ms: i64,
    },
}

struct VideoState {
    params: Arc<TrackParams>,
    dts: DtsFromPts<(bool, Bytes, Instant)>,
}

enum AudioState {
    Aac {
        params: Arc<TrackParams>,
        clock: AudioClock,
    },
    G711 {
        law: Law,
        params: Arc<TrackParams>,
        encoder: AacEncoder,
        pcm: Vec<i16>,
    },
}

/// Turns one RTP session's access units into frames on the stream timeline.
pub struct RtpFrames {
    /// Stream time, in ms, of RTP time zero (NPT 0 of the session).
    base_ms: i64,
    audio_input: Option<AudioInput>,
    video: Option<VideoState>,
    audio: Option<AudioState>,
    /// Video frames are dropped until the first keyframe.
    seen_keyframe: bool,
    /// Last RTP time of each track, in ms since RTP time zero, to catch jumps.
    last_ms: [Option<i64>; 2],
}

impl RtpFrames {
    /// A converter mapping RTP time zero to `base_ms` ms of stream time (the
    /// publisher's [`crate::hub::Publisher::base_ms`], but at least [`MIN_BASE_MS`]);
    /// `audio` is the audio stream's kind, if it has one streambox can carry.
    pub fn new(base_ms: i64, audio: Option<AudioInput>) -> RtpFrames {
        RtpFrames {
            base_ms: base_ms.max(MIN_BASE_MS),
            audio_input: audio,
            video: None,
            audio: None,
            seen_keyframe: false,
            last_ms: [None; 2],
        }
    }

    /// Checks a frame's RTP time (`ticks` at `rate` Hz since RTP time zero) against the
    /// track's previous one.
    fn check_jump(&mut self, track: TrackId, ticks: i64, rate: i64) -> Result<(), RtpMediaError> {
        let ms = ticks * 1000 / rate.max(1);
        let last = &mut self.last_ms[track as usize];
        if let Some(prev) = *last {
            if (ms - prev).abs() > MAX_JUMP_MS {
                return Err(RtpMediaError::Jump {
                    track: track.name(),
                    jump_ms: ms - prev,
                });
            }
        }
        *last = Some(ms);
        Ok(())
    }

    /// Declares the tracks before any frame: the audio track (whose parameters the SDP
    /// gives), and the video track when its AVCDecoderConfigurationRecord is known from
    /// the SDP. A track that appears later would restart the packager's output.
    ///
    /// # Errors
    /// [`RtpMediaError`] when the parameters do not parse or the transcoder cannot
    /// start; nothing is declared then, and media may still bring its own.
    pub fn declare(
        &mut self,
        video: Option<Bytes>,
        out: &mut Vec<RtpOut>,
    ) -> Result<(), RtpMediaError> {
        if let Some(record) = video {
            self.set_video_params(record, out)?;
        }
        self.audio_state(out)?;
        Ok(())
    }

    fn set_video_params(
        &mut self,
        record: Bytes,
        out: &mut Vec<RtpOut>,
    ) -> Result<(), RtpMediaError> {
        let cfg = AvcConfig::parse(record)?;
        let changed = self
            .video
            .as_ref()
            .is_none_or(|s| *s.params != TrackParams::Video(cfg.clone()));
        if changed {
            self.flush_video(out);
            let depth = cfg.max_num_reorder_frames;
            let params = Arc::new(TrackParams::Video(cfg));
            out.push(RtpOut::Params(params.clone()));
            self.video = Some(VideoState {
                params,
                dts: DtsFromPts::new(depth),
            });
        }
        Ok(())
    }

    /// Sets up the audio track on first use.
    fn audio_state(&mut self, out: &mut Vec<RtpOut>) -> Result<(), RtpMediaError> {
        if self.audio.is_some() {
            return Ok(());
        }
        let Some(input) = self.audio_input.clone() else {
            return Ok(());
        };
        let state = match input {
            AudioInput::Aac(asc) => {
                let cfg = AudioConfig::parse(asc)?;
                AudioState::Aac {
                    clock: AudioClock::new(cfg.sample_rate, cfg.frame_length),
                    params: Arc::new(TrackParams::Audio(cfg)),
                }
            }
            AudioInput::G711 {
                law,
                sample_rate,
                channels,
            } => {
                let encoder = AacEncoder::new(sample_rate, channels)?;
                AudioState::G711 {
                    law,
                    params: Arc::new(TrackParams::Audio(encoder.config().clone())),
                    encoder,
                    pcm: Vec::new(),
                }
            }
        };
        let (AudioState::Aac { params, .. } | AudioState::G711 { params, .. }) = &state;
        out.push(RtpOut::Params(params.clone()));
        self.audio = Some(state);
        Ok(())
    }

    /// Whether video parameters are known yet.
    pub fn has_video_params(&self) -> bool {
        self.video.is_some()
    }

    /// Takes one H.264 access unit; appends what the hub should get to `out`.
    ///
    /// # Errors
    /// [`RtpMediaError::Video`] when new parameters do not parse, [`RtpMediaError::Jump`]
    /// when RTP time jumped.
    pub fn video(&mut self, au: VideoAu, out: &mut Vec<RtpOut>) -> Result<(), RtpMediaError> {
        if let Some(record) = au.params {
            self.set_video_params(record, out)?;
        }
        if self.video.is_none() || (!self.seen_keyframe && !au.is_sync) {
            // No parameters or no keyframe yet: nothing a player could decode.
            return Ok(());
        }
        self.seen_keyframe = true;
        self.check_jump(TrackId::Video, au.pts, i64::from(VIDEO_TIMESCALE))?;
        let Some(state) = self.video.as_mut() else {
            return Ok(());
        };
        let pts = self.base_ms * 90 + au.pts;
        if let Some(f) = state.dts.push(pts, (au.is_sync, au.data, Instant::now())) {
            out.push(video_frame(&state.params, f));
        }
        Ok(())
    }

    /// Takes one audio frame (a raw AAC access unit, or G.711 samples) stamped `time`
    /// ticks of its `clock_rate` (Hz) since RTP time zero; appends what the hub should
    /// get to `out`.
    ///
    /// # Errors
    /// [`RtpMediaError::Audio`] for an AudioSpecificConfig that does not parse,
    /// [`RtpMediaError::Encode`] when transcoding fails, [`RtpMediaError::Jump`] when
    /// RTP time jumped.
    pub fn audio(
        &mut self,
        time: i64,
        clock_rate: u32,
        data: &[u8],
        out: &mut Vec<RtpOut>,
    ) -> Result<(), RtpMediaError> {
        if self.audio_input.is_none() {
            return Ok(());
        }
        let rate = i64::from(clock_rate.max(1));
        self.check_jump(TrackId::Audio, time, rate)?;
        self.audio_state(out)?;
        let received = Instant::now();
        match self.audio.as_mut() {
            Some(AudioState::Aac { params, clock }) => {
                let ms = self.base_ms + time * 1000 / rate;
                if let Some(dts) = clock.stamp(ms) {
                    out.push(audio_frame(
                        params,
                        dts,
                        Bytes::copy_from_slice(data),
                        received,
                    ));
                }
            }
            Some(AudioState::G711 {
                law,
                params,
                encoder,
                pcm,
            }) => {
                g711::decode(*law, data, pcm);
                let start = self.base_ms * rate / 1000 + time;
                for (dts, data) in encoder.push(start, pcm)? {
                    out.push(audio_frame(params, dts, data, received));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Releases the video frames held for reordering; call when the session ends.
    pub fn finish(&mut self, out: &mut Vec<RtpOut>) {
        self.flush_video(out);
    }

    fn flush_video(&mut self, out: &mut Vec<RtpOut>) {
        if let Some(state) = self.video.as_mut() {
            for f in state.dts.flush() {
                out.push(video_frame(&state.params, f));
            }
        }
    }
}

/// An AAC access unit at `dts` samples.
fn audio_frame(params: &Arc<TrackParams>, dts: i64, data: Bytes, received: Instant) -> RtpOut {
    RtpOut::Frame(Frame {
        track: TrackId::Audio,
        dts,
        cts: 0,
        is_sync: true,
        params: params.clone(),
        data,
        received,
    })
}

/// A video access unit leaving [`DtsFromPts`]: decode time, presentation time, and
/// (keyframe, data, arrival).
type Released = (i64, i64, (bool, Bytes, Instant));

fn video_frame(params: &Arc<TrackParams>, released: Released) -> RtpOut {
    let (dts, pts, (is_sync, data, received)) = released;
    RtpOut::Frame(Frame {
        track: TrackId::Video,
        dts,
        cts: i32::try_from(pts - dts).unwrap_or(if pts > dts { i32::MAX } else { i32::MIN }),
        is_sync,
        params: params.clone(),
        data,
        received,
    })
}
