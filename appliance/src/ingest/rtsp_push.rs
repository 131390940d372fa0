//! RTSP publishers (RFC 2326 §10.3 ANNOUNCE, §10.11 RECORD): the state of one publish
//! session and the RTP it receives.
//!
//! The RTSP session ([`crate::rtsp::session`]) authenticates the ANNOUNCE, creates a
//! [`Publish`] from its SDP, binds each SETUP (`mode=record`, TCP-interleaved or UDP) to
//! a track, and on RECORD claims the stream's hub. Every RTP and RTCP packet then comes
//! through [`Publish::on_packet`]: RTCP sender reports anchor each track's RTP clock to
//! the sender's wall clock, so audio and video keep the timing they were sent with; RTP
//! is put back in order ([`Reorder`]), depacketized, and handed to the hub as frames.

use crate::hub::Publisher;
use crate::ingest::rtp_frames::{AudioInput, RtpFrames, RtpMediaError, RtpOut, VideoAu};
use crate::ingest::IngestMeter;
use crate::media::{TrackId, VIDEO_TIMESCALE};
use crate::rtsp::depacketize::{AacDepacketizer, DepacketizeError, H264Depacketizer};
use crate::rtsp::rtp_in::{parse_rtp, sender_reports, Ordered, Reorder, SenderReport};
use crate::rtsp::sdp::{AnnouncedMedia, Announcement};
use bytes::Bytes;
use std::time::{Duration, Instant};
use tracing::warn;

/// How long after RECORD a track's first RTP packets wait for its first sender report.
const REPORT_WAIT: Duration = Duration::from_millis(500);

/// How a track's packets arrive.
#[derive(Debug, Clone)]
pub enum Arrival {
    /// Interleaved on the RTSP connection, on these channels (RTP, RTCP).
    Interleaved(u8, u8),
    /// On our UDP port pair whose RTP port this is (RTCP's is the next).
    Udp(u16),
}

enum Depacketizer {
    H264(H264Depacketizer),
    Aac(AacDepacketizer),
    G711,
}

struct RecvTrack {
    media: AnnouncedMedia,
    arrival: Option<Arrival>,
    reorder: Reorder,
    depacketizer: Depacketizer,
    /// The widened RTP time of the track's time zero, and where that falls on the
    /// session's timeline (ticks of the track clock).
    anchor: Option<(i64, i64)>,
    /// The first sender report, if it came before the first packet.
    report: Option<SenderReport>,
    /// Packets or payloads refused.
    errors: u64,
    /// RTP packets (with their arrival) held until the track's first sender report.
    held: Vec<(Bytes, Instant)>,
}

/// One publish session: from ANNOUNCE until TEARDOWN or the connection closes.
pub struct Publish {
    /// The stream published to.
    pub name: String,
    /// The RTSP session ID given at the first SETUP.
    pub session_id: String,
    tracks: Vec<RecvTrack>,
    publisher: Option<Publisher>,
    frames: Option<RtpFrames>,
    meter: Option<IngestMeter>,
    /// When RECORD started; the fallback origin of the session's timeline.
    started: Instant,
    /// NTP time (seconds) of the session's timeline origin, from the first sender report.
    origin_ntp: Option<f64>,
    /// When the last packet arrived.
    pub last_packet: Instant,
    out: Vec<RtpOut>,
    ordered: Vec<Ordered>,
    video_aus: Vec<VideoAu>,
    audio_aus: Vec<(i64, Bytes)>,
}

impl Publish {
    /// A session publishing what was announced to stream `name`, whose RTSP session ID
    /// (RFC 2326 §12.37) is `session_id`.
    ///
    /// # Errors
    /// [`DepacketizeError::Fmtp`] when a track's format parameters cannot be used.
    pub fn new(
        name: &str,
        announced: Announcement,
        session_id: String,
    ) -> Result<Publish, DepacketizeError> {
        let mut tracks = Vec::new();
        for media in announced.medias {
            let depacketizer = match media.encoding.as_str() {
                "H264" => Depacketizer::H264(H264Depacketizer::new(media.fmtp.as_deref())?),
                "MPEG4-GENERIC" => Depacketizer::Aac(AacDepacketizer::new(media.fmtp.as_deref())?),
                _ => Depacketizer::G711,
            };
            tracks.push(RecvTrack {
                media,
                arrival: None,
                reorder: Reorder::new(),
                depacketizer,
                anchor: None,
                report: None,
                errors: 0,
                held: Vec::new(),
            });
        }
        Ok(Publish {
            name: name.to_string(),
            session_id,
            tracks,
            publisher: None,
            frames: None,
            meter: None,
            started: Instant::now(),
            origin_ntp: None,
            last_packet: Instant::now(),
            out: Vec::new(),
            ordered: Vec::new(),
            video_aus: Vec::new(),
            audio_aus: Vec::new(),
        })
    }

    /// The track a SETUP request URL names: the one whose `a=control` ends the URL
    /// (ffmpeg appends it even after a `?key=` query).
    pub fn track_for(&self, url: &str) -> Option<usize> {
        let url = url.trim_end_matches('/');
        self.tracks.iter().position(|t| {
            let c = t.media.control.trim_end_matches('/');
            !c.is_empty() && (url == c || url.ends_with(&format!("/{c}")))
        })
    }

    /// The announced media of track `i`.
    pub fn media(&self, i: usize) -> Option<&AnnouncedMedia> {
        self.tracks.get(i).map(|t| &t.media)
    }

    /// Records how track `i`'s packets will arrive; returns the UDP port the track was
    /// set up on before, which is no longer used.
    pub fn set_arrival(&mut self, i: usize, arrival: Arrival) -> Option<u16> {
        let t = self.tracks.get_mut(i)?;
        match t.arrival.replace(arrival) {
            Some(Arrival::Udp(port)) => Some(port),
            _ => None,
        }
    }

    /// The tracks set up over UDP: their index and our RTP port.
    pub fn udp_ports(&self) -> Vec<(usize, u16)> {
        self.tracks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.arrival {
                Some(Arrival::Udp(port)) => Some((i, *port)),
                _ => None,
            })
            .collect()
    }

    /// The track and kind (RTCP or not) of an interleaved channel.
    pub fn channel(&self, channel: u8) -> Option<(usize, bool)> {
        self.tracks
            .iter()
            .enumerate()
            .find_map(|(i, t)| match t.arrival {
                Some(Arrival::Interleaved(rtp, _)) if rtp == channel => Some((i, false)),
                Some(Arrival::Interleaved(_, rtcp)) if rtcp == channel => Some((i, true)),
                _ => None,
            })
    }

    /// Whether every announced track was set up.
    pub fn all_set_up(&self) -> bool {
        self.tracks.iter().all(|t| t.arrival.is_some())
    }

    /// Whether RECORD started.
    pub fn recording(&self) -> bool {
        self.publisher.is_some()
    }

    /// Starts recording into the hub claimed by `publisher`.
    pub fn start(&mut self, publisher: Publisher, meter: IngestMeter) {
        let audio = self
            .tracks
            .iter()
            .find(|t| t.media.track == TrackId::Audio)
            .and_then(|t| {
                let config = match &t.depacketizer {
                    Depacketizer::Aac(d) => Some(d.config().clone()),
                    _ => None,
                };
                AudioInput::from_encoding(
                    &t.media.encoding,
                    t.media.clock_rate,
                    t.media.channels,
                    config,
                )
            });
        let mut frames = RtpFrames::new(publisher.base_ms(), audio);
        // Every track the SDP describes is declared before the first frame, so the
        // packager starts with the whole set instead of restarting when one joins.
        let video = self.tracks.iter().find_map(|t| match &t.depacketizer {
            Depacketizer::H264(d) => d.announced_config(),
            _ => None,
        });
        if let Err(e) = frames.declare(video, &mut self.out) {
            warn!(stream = %self.name, error = %e, "announced parameters unusable; waiting for in-band ones");
        }
        self.frames = Some(frames);
        self.publisher = Some(publisher);
        self.publish_out();
        self.meter = Some(meter);
        self.started = Instant::now();
        self.last_packet = Instant::now();
    }

    /// Handles one packet of track `i` (RTP, or RTCP when `rtcp`). Malformed packets and
    /// payloads are counted and dropped, with a log line for the first few of each
    /// track.
    ///
    /// # Errors
    /// [`RtpMediaError`] when the media cannot go on (new parameters that do not parse,
    /// a jump in RTP time): the session must end.
    pub fn on_packet(&mut self, i: usize, rtcp: bool, data: Bytes) -> Result<(), RtpMediaError> {
        if self.frames.is_none() || i >= self.tracks.len() {
            return Ok(()); // before RECORD, or an unknown track
        }
        let now = Instant::now();
        self.last_packet = now;
        let track = &mut self.tracks[i];
        if rtcp {
            for sr in sender_reports(&data) {
                self.origin_ntp.get_or_insert(sr.ntp_secs);
                if track.anchor.is_none() && track.report.is_none() {
                    track.report = Some(sr);
                }
            }
            // Packets held for this report go now.
            for (data, arrived) in std::mem::take(&mut self.tracks[i].held) {
                self.on_rtp(i, data, arrived)?;
            }
            return Ok(());
        }
        // Over UDP a track's first packets may overtake its first sender report: hold
        // them a moment rather than anchor the track by arrival time.
        let track = &mut self.tracks[i];
        let waiting = track.anchor.is_none()
            && track.report.is_none()
            && self.started.elapsed() < REPORT_WAIT
            && track.held.len() < 512;
        if waiting {
            track.held.push((data, now));
            return Ok(());
        }
        for (data, arrived) in std::mem::take(&mut track.held) {
            self.on_rtp(i, data, arrived)?;
        }
        self.on_rtp(i, data, now)
    }

    /// One RTP packet of track `i`, which arrived at `arrived`.
    fn on_rtp(&mut self, i: usize, data: Bytes, arrived: Instant) -> Result<(), RtpMediaError> {
        let (Some(frames), Some(track)) = (self.frames.as_mut(), self.tracks.get_mut(i)) else {
            return Ok(());
        };
        let len = data.len();
        let packet = match parse_rtp(data) {
            Ok(p) if p.payload_type == track.media.payload_type => p,
            Ok(_) => return Ok(()), // another payload type (RTCP muxed, FEC): not ours
            Err(e) => {
                refuse(track, &self.name, None, len, &e);
                return Ok(());
            }
        };
        track.reorder.push(packet, &mut self.ordered);
        let clock = i64::from(track.media.clock_rate.max(1));
        for mut o in self.ordered.drain(..) {
            let (zero, offset) = *track.anchor.get_or_insert_with(|| {
                match (track.report, self.origin_ntp) {
                    // The sender's wall clock says where this track's RTP time sits.
                    (Some(sr), Some(origin)) => {
                        let sr_time = o.timestamp
                            + i64::from(sr.rtp_time.wrapping_sub(o.packet.timestamp) as i32);
                        (sr_time, ((sr.ntp_secs - origin) * clock as f64) as i64)
                    }
                    // No report: the first packet is as late as it arrived.
                    _ => (
                        o.timestamp,
                        (arrived
                            .saturating_duration_since(self.started)
                            .as_secs_f64()
                            * clock as f64) as i64,
                    ),
                }
            });
            // A sender report far from the first one puts the anchor anywhere in i64:
            // saturate, and let the timestamp policy re-anchor the jump.
            o.timestamp = o.timestamp.saturating_sub(zero).saturating_add(offset);
            let result = match &mut track.depacketizer {
                Depacketizer::H264(d) => d.push(&o, &mut self.video_aus),
                Depacketizer::Aac(d) => d.push(&o, &mut self.audio_aus),
                Depacketizer::G711 => {
                    self.audio_aus.push((o.timestamp, o.packet.payload.clone()));
                    Ok(())
                }
            };
            if let Err(e) = result {
                let (seq, len) = (o.packet.sequence, o.packet.payload.len());
                refuse(track, &self.name, Some(seq), len, &e);
            }
            for mut au in self.video_aus.drain(..) {
                au.pts = rescale(au.pts, i64::from(VIDEO_TIMESCALE), clock);
                frames.video(au, &mut self.out)?;
            }
            for (t, data) in self.audio_aus.drain(..) {
                frames.audio(t, track.media.clock_rate, &data, &mut self.out)?;
            }
        }
        self.publish_out();
        Ok(())
    }

    fn publish_out(&mut self) {
        let Some(publisher) = &self.publisher else {
            return;
        };
        for o in self.out.drain(..) {
            match o {
                RtpOut::Params(p) => publisher.set_params(p),
                RtpOut::Frame(f) => {
                    if let Some(m) = self.meter.as_mut() {
                        m.frame(f.track, f.data.len());
                    }
                    publisher.send(f);
                }
            }
        }
    }

    /// Ends the session: frames held for reordering go out, and the stream is released.
    pub fn finish(&mut self) {
        let Some(mut frames) = self.frames.take() else {
            return; // not recording, or finished already
        };
        frames.finish(&mut self.out);
        self.publish_out();
        self.publisher = None;
        self.meter = None;
        let lost: u64 = self.tracks.iter().map(|t| t.reorder.lost).sum();
        let refused: u64 = self.tracks.iter().map(|t| t.errors).sum();
        if lost > 0 || refused > 0 {
            warn!(stream = %self.name, lost, refused, "RTSP publisher's packets lost or refused");
        }
    }
}

/// `t` ticks of a `from` Hz clock in ticks of a `to` Hz clock, saturating at the ends
/// of i64 rather than overflowing.
fn rescale(t: i64, to: i64, from: i64) -> i64 {
    let r = i128::from(t) * i128::from(to) / i128::from(from.max(1));
    r.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Drop for Publish {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Logs the first few refused packets of a track, then only counts them: the packet's
/// RTP sequence number (when its header parsed) and its size (bytes of the packet, or of
/// the payload when the header parsed) go with the reason; the connection's span adds
/// the peer.
fn refuse(
    track: &mut RecvTrack,
    stream: &str,
    seq: Option<u16>,
    bytes: usize,
    why: &dyn std::fmt::Display,
) {
    track.errors += 1;
    if track.errors <= 5 || track.errors % 1000 == 0 {
        warn!(%stream, track = track.media.track.name(), seq, bytes, count = track.errors, error = %why, "dropped a packet from the RTSP publisher");
    }
}
