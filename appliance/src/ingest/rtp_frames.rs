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
//!
//! Timing follows [`crate::media::timeline`]'s policy: RTP time zero lands at least at
//! [`MIN_BASE_MS`], and a step of a track's RTP time by more than [`MAX_JUMP_MS`] either
//! way (a camera that steps its clock, a publisher that restarts it) is a discontinuity:
//! the track is re-anchored so its next frame follows its previous one by its usual
//! step, and the session goes on. The jump is counted ([`RtpFrames::jumps`]).

use crate::media::aac::{AacError, AudioConfig};
use crate::media::h264::{AvcConfig, H264Error};
pub use crate::media::timeline::MIN_BASE_MS;
use crate::media::timeline::{AudioClock, DtsFromPts, MAX_JUMP_MS};
use crate::media::{Frame, TrackId, TrackParams, VIDEO_TIMESCALE};
use crate::transcode::aac::{AacEncodeError, AacEncoder};
use crate::transcode::g711::{self, Law};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

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
    /// Linear PCM, signed 16-bit little-endian, interleaved (a capture card's, through
    /// ALSA): encoded to AAC-LC.
    Pcm {
        /// Samples per second per channel.
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
}

/// One track's RTP clock as seen so far: its last time (ms since RTP time zero, as
/// sent), the offset (ms) added since its last jump, its latest time with the offset
/// (B-frames make times go back and forth; the frame after a jump follows the latest),
/// and its usual step forward (ms).
#[derive(Debug, Clone, Copy)]
struct RtpClock {
    last_ms: i64,
    offset_ms: i64,
    top_ms: i64,
    step_ms: i64,
}

/// The step (ms) assumed between a track's frames before one was seen.
const DEFAULT_STEP_MS: i64 = 40;
/// The longest step (ms) kept as a track's usual one.
const MAX_STEP_MS: i64 = 1000;

struct VideoState {
    params: Arc<TrackParams>,
    dts: DtsFromPts<(bool, Bytes, Instant)>,
}

enum AudioState {
    Aac {
        params: Arc<TrackParams>,
        clock: AudioClock,
    },
    /// Encoded to AAC here: G.711 (`law`), or 16-bit PCM (`None`).
    Encoded {
        law: Option<Law>,
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
    /// Each track's RTP clock, to catch and re-anchor jumps.
    clocks: [Option<RtpClock>; 2],
    jumps: u32,
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
            clocks: [None; 2],
            jumps: 0,
        }
    }

    /// How many RTP clock jumps were re-anchored so far.
    pub fn jumps(&self) -> u32 {
        self.jumps
    }

    /// The offset (ms) to add to a frame of `track` stamped `ticks` at `rate` Hz since
    /// RTP time zero: zero until the track's clock jumps by more than [`MAX_JUMP_MS`],
    /// then what puts the frame its usual step after the previous one.
    fn anchor(&mut self, track: TrackId, ticks: i64, rate: i64) -> i64 {
        let ms = ticks.saturating_mul(1000) / rate.max(1);
        let clock = &mut self.clocks[track as usize];
        let next = match *clock {
            None => RtpClock {
                last_ms: ms,
                offset_ms: 0,
                top_ms: ms,
                step_ms: DEFAULT_STEP_MS,
            },
            Some(c) if (ms - c.last_ms).abs() > MAX_JUMP_MS => {
                self.jumps += 1;
                tracing::warn!(
                    track = track.name(),
                    jump_ms = ms - c.last_ms,
                    "RTP time jumped; the track goes on from its last frame"
                );
                RtpClock {
                    last_ms: ms,
                    offset_ms: c.top_ms + c.step_ms - ms,
                    top_ms: c.top_ms + c.step_ms,
                    step_ms: c.step_ms,
                }
            }
            Some(c) => RtpClock {
                last_ms: ms,
                offset_ms: c.offset_ms,
                top_ms: c.top_ms.max(ms + c.offset_ms),
                step_ms: if ms > c.last_ms && ms - c.last_ms <= MAX_STEP_MS {
                    ms - c.last_ms
                } else {
                    c.step_ms
                },
            },
        };
        *clock = Some(next);
        next.offset_ms
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
            } => encoded(Some(law), sample_rate, channels)?,
            AudioInput::Pcm {
                sample_rate,
                channels,
            } => encoded(None, sample_rate, channels)?,
        };
        let (AudioState::Aac { params, .. } | AudioState::Encoded { params, .. }) = &state;
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
    /// [`RtpMediaError::Video`] when new parameters do not parse.
    pub fn video(&mut self, au: VideoAu, out: &mut Vec<RtpOut>) -> Result<(), RtpMediaError> {
        if let Some(record) = au.params {
            self.set_video_params(record, out)?;
        }
        if self.video.is_none() || (!self.seen_keyframe && !au.is_sync) {
            // No parameters or no keyframe yet: nothing a player could decode.
            return Ok(());
        }
        self.seen_keyframe = true;
        let time = within_range(au.pts);
        let offset_ms = self.anchor(TrackId::Video, time, i64::from(VIDEO_TIMESCALE));
        let Some(state) = self.video.as_mut() else {
            return Ok(());
        };
        let pts = (self.base_ms + offset_ms) * 90 + time;
        if let Some(f) = state.dts.push(pts, (au.is_sync, au.data, Instant::now())) {
            out.push(video_frame(&state.params, f));
        }
        Ok(())
    }

    /// Takes one audio frame (a raw AAC access unit, G.711 samples, or 16-bit
    /// little-endian PCM, interleaved) stamped `time`
    /// ticks of its `clock_rate` (Hz) since RTP time zero; appends what the hub should
    /// get to `out`.
    ///
    /// # Errors
    /// [`RtpMediaError::Audio`] for an AudioSpecificConfig that does not parse,
    /// [`RtpMediaError::Encode`] when transcoding fails.
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
        let time = within_range(time);
        let rate = i64::from(clock_rate.max(1));
        let base_ms = self.base_ms + self.anchor(TrackId::Audio, time, rate);
        self.audio_state(out)?;
        let received = Instant::now();
        match self.audio.as_mut() {
            Some(AudioState::Aac { params, clock }) => {
                let ms = base_ms + time * 1000 / rate;
                if let Some(dts) = clock.stamp(ms) {
                    out.push(audio_frame(
                        params,
                        dts,
                        Bytes::copy_from_slice(data),
                        received,
                    ));
                }
            }
            Some(AudioState::Encoded {
                law,
                params,
                encoder,
                pcm,
            }) => {
                // On the ingest task: measured at 11 µs mean, 67 µs p99 per 20 ms packet
                // (8 kHz mono, fdk-aac), below what a task may hold a worker for; a
                // thread of its own would cost more in hand-offs than it saves.
                match law {
                    Some(law) => g711::decode(*law, data, pcm),
                    None => {
                        pcm.clear();
                        pcm.extend(
                            data.chunks_exact(2)
                                .map(|b| i16::from_le_bytes([b[0], b[1]])),
                        );
                    }
                }
                let start = base_ms * rate / 1000 + time;
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

/// The state of an audio track encoded here, from `law` (G.711) or 16-bit PCM.
fn encoded(law: Option<Law>, sample_rate: u32, channels: u16) -> Result<AudioState, RtpMediaError> {
    let encoder = AacEncoder::new(sample_rate, channels)?;
    Ok(AudioState::Encoded {
        law,
        params: Arc::new(TrackParams::Audio(encoder.config().clone())),
        encoder,
        pcm: Vec::new(),
    })
}

/// The largest RTP time taken as it is, either way, in ticks: 2^44, six years at 90 kHz.
/// Beyond it (a sender report or clock step that puts a packet anywhere in i64) a time
/// is held at the bound, a jump the timestamp policy re-anchors, so no arithmetic on it
/// overflows (times 1000, or a clock rate, it stays far below 2^63).
const MAX_TICKS: i64 = 1 << 44;

/// `t` held within ±[`MAX_TICKS`].
fn within_range(t: i64) -> i64 {
    t.clamp(-MAX_TICKS, MAX_TICKS)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Big Buck Bunny's avcC (Main, no B-frames).
    fn bbb() -> Bytes {
        Bytes::from_static(crate::media::h264::tests::BBB_AVCC)
    }

    /// The decode times of `track`'s frames in `out`.
    fn frames(out: &[RtpOut], track: TrackId) -> Vec<i64> {
        out.iter()
            .filter_map(|o| match o {
                RtpOut::Frame(f) if f.track == track => Some(f.dts),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_clock_step_is_re_anchored_and_the_session_goes_on() {
        let asc = Bytes::from_static(&[0x11, 0x90]); // AAC-LC, 48 kHz, stereo
        let mut f = RtpFrames::new(0, Some(AudioInput::Aac(asc)));
        let mut out = Vec::new();
        f.declare(Some(bbb()), &mut out).expect("declare");
        let au = |pts: i64, sync: bool| VideoAu {
            pts,
            is_sync: sync,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            params: None,
        };
        // 2 s of 25 fps video and 48 kHz AAC (1024 samples a frame); halfway, the camera
        // steps its clock an hour ahead.
        let hour = 3_600;
        for i in 0..50i64 {
            let jump = if i >= 25 { hour * 90_000 } else { 0 };
            f.video(au(i * 3600 + jump, i % 25 == 0), &mut out)
                .expect("video");
        }
        for i in 0..94i64 {
            let jump = if i >= 47 { hour * 48_000 } else { 0 };
            f.audio(i * 1024 + jump, 48_000, &[0x21, 0x10], &mut out)
                .expect("audio, after a jump too");
        }
        f.finish(&mut out);
        assert_eq!(f.jumps(), 2, "one per track");
        let video = frames(&out, TrackId::Video);
        let audio = frames(&out, TrackId::Audio);
        assert_eq!(video.len(), 50);
        assert!(video.windows(2).all(|w| w[1] > w[0]), "{video:?}");
        // Across the jump, one frame's step, as before it.
        assert!(video.windows(2).all(|w| w[1] - w[0] == 3600), "{video:?}");
        assert_eq!(audio.len(), 94);
        assert!(
            audio.windows(2).all(|w| w[1] - w[0] == 1024),
            "audio jumped: {audio:?}"
        );
        // Never below the minimum base: decode times are never negative.
        assert!(video[0] >= MIN_BASE_MS * 90 - 3600, "{video:?}");
    }

    #[test]
    fn pcm_captured_with_a_frame_plays_with_it() {
        // A capture card's sound: 16-bit stereo at 48 kHz, read 20 ms at a time, with
        // pictures at 25 fps, both from 1 s after the capture's origin.
        let pcm = AudioInput::Pcm {
            sample_rate: 48_000,
            channels: 2,
        };
        let mut f = RtpFrames::new(0, Some(pcm));
        let mut out = Vec::new();
        f.declare(Some(bbb()), &mut out).expect("declare");
        for i in 0..50i64 {
            let au = VideoAu {
                pts: 90_000 + i * 3600,
                is_sync: i == 0,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
                params: None,
            };
            f.video(au, &mut out).expect("video");
        }
        let tone: Vec<u8> = (0..960 * 2)
            .flat_map(|i: i32| (((i / 2) % 48 * 600) as i16).to_le_bytes())
            .collect();
        for i in 0..100i64 {
            f.audio(48_000 + i * 960, 48_000, &tone, &mut out)
                .expect("pcm");
        }
        f.finish(&mut out);
        let first = |track| {
            out.iter().find_map(|o| match o {
                RtpOut::Frame(fr) if fr.track == track => Some(fr.dts + i64::from(fr.cts)),
                _ => None,
            })
        };
        let video = first(TrackId::Video).expect("video frames") as f64 / 90_000.0;
        let audio = first(TrackId::Audio).expect("AAC frames") as f64 / 48_000.0;
        assert!(
            (video - audio).abs() <= 0.001,
            "the first picture at {video:.4} s, the first sound at {audio:.4} s"
        );
        let aac = frames(&out, TrackId::Audio);
        assert!(
            aac.len() >= 90,
            "2 s of sound is 93 AAC frames: {}",
            aac.len()
        );
        assert!(aac.windows(2).all(|w| w[1] - w[0] == 1024), "{aac:?}");
    }
}
