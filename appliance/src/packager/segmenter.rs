//! Cuts a stream of [`Frame`]s into CMAF segments and LL-HLS partial segments.
//!
//! Rules (RFC 8216bis §4.4.4.9, §4.4.3.8; ISO/IEC 23000-19 §7.3):
//! - A segment starts at a video keyframe (any frame for audio-only streams) and is cut at
//!   the first keyframe at or after the target duration; a long-GOP source gives longer
//!   segments, never one that starts without a keyframe. Every track cuts its segment at
//!   the same moment, so media sequence numbers line up across playlists.
//! - A partial segment is flushed as soon as adding one more sample of the usual duration
//!   would exceed the part target, so parts never exceed PART-TARGET and are available
//!   one frame interval after their last frame arrives.
//! - A sample's duration is only known when the next sample of its track arrives, so each
//!   track holds back one frame.
//! - New track parameters start a new epoch: the open segment is closed, a new init
//!   segment is made, and the next segment carries a discontinuity.
//! - A segmenter that [follows](Segmenter::following) another stream (an ABR rung
//!   following its source) cuts exactly where the leader cut, at its own keyframe of the
//!   same decode time, and takes the leader's sequence number for the segment, so every
//!   rendition's segments have the same numbers and start times (RFC 8216bis §6.2.4).

use super::window::{Cut, Epoch, Part, Segment, TrackWindow, Window};
use crate::media::fmp4::{self, Sample};
use crate::media::{Frame, TrackId, TrackParams};
use crate::protect::{cenc, Sealing};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Something the segmenter made available, with the arrival time of its last frame, so
/// the caller can measure how long after that frame it became listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A partial segment of the track.
    Part(TrackId, Instant),
    /// A whole segment of the track.
    Segment(TrackId, Instant),
}

/// Segmenting targets, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    /// Target segment duration.
    pub segment_target: f64,
    /// Target partial segment duration (PART-TARGET).
    pub part_target: f64,
    /// Media kept in the window.
    pub window: f64,
}

#[derive(Debug)]
struct TrackState {
    timescale: u32,
    /// Last frame received, waiting for its duration.
    pending: Option<Arc<Frame>>,
    /// Samples of the part being built.
    ready: Vec<Sample>,
    ready_start: i64,
    ready_duration: u64,
    /// Arrival of the newest frame committed to the part / the segment being built.
    ready_received: Option<Instant>,
    segment_received: Option<Instant>,
    last_duration: u32,
    /// Decode time of the first sample of the open segment.
    segment_start: Option<i64>,
    /// Sample durations of the open segment (video only), for the frame rate.
    segment_durations: Vec<u32>,
    discontinuity_next: bool,
}

impl TrackState {
    fn new(params: &TrackParams) -> TrackState {
        let timescale = params.timescale();
        let last_duration = match params {
            TrackParams::Video(_) => timescale / 25,
            TrackParams::Audio(a) => a.frame_length,
        };
        TrackState {
            timescale,
            pending: None,
            ready: Vec::new(),
            ready_start: 0,
            ready_duration: 0,
            ready_received: None,
            segment_received: None,
            last_duration,
            segment_start: None,
            segment_durations: Vec::new(),
            discontinuity_next: false,
        }
    }

    fn ticks(&self, seconds: f64) -> u64 {
        (seconds * f64::from(self.timescale)) as u64
    }

    /// Duration of `pending` given the next decode time, falling back to the last good
    /// duration for gaps, overlaps and jumps (over five seconds).
    fn duration_until(&self, pending: &Frame, next_dts: i64) -> u32 {
        let d = next_dts - pending.dts;
        if d > 0 && d <= i64::from(self.timescale) * 5 {
            d as u32
        } else {
            self.last_duration
        }
    }

    fn commit(&mut self, frame: &Frame, duration: u32) {
        if self.ready.is_empty() {
            self.ready_start = frame.dts;
        }
        if self.segment_start.is_none() {
            self.segment_start = Some(frame.dts);
        }
        let data = match &*frame.params {
            TrackParams::Video(cfg) if frame.is_sync => cfg.with_parameter_sets(&frame.data),
            _ => frame.data.clone(),
        };
        self.ready.push(Sample {
            duration,
            cts: frame.cts,
            is_sync: frame.is_sync,
            data,
        });
        self.ready_duration += u64::from(duration);
        self.ready_received = Some(frame.received);
        self.segment_received = Some(frame.received);
        if self.timescale == crate::media::VIDEO_TIMESCALE {
            self.segment_durations.push(duration);
        }
        self.last_duration = duration;
    }
}

/// Where a leader cut: given a keyframe's decode time (90 kHz ticks), the sequence number
/// of the leader's segment that starts at that time, if it cut there.
///
/// It is called with the follower's window write-locked and reads the leader's window,
/// so nothing may lock a follower's window while holding its leader's: readers of both
/// take the follower's first.
#[derive(Clone)]
pub struct Follow(pub Arc<dyn Fn(i64) -> Option<u64> + Send + Sync>);

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Follow")
    }
}

/// The segmenter of one stream. Feed it frames; it updates a [`Window`].
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    follow: Option<Follow>,
    /// Current epoch index and the parameters it was made for.
    epoch: Option<u32>,
    next_epoch: u32,
    params: BTreeMap<TrackId, Arc<TrackParams>>,
    tracks: BTreeMap<TrackId, TrackState>,
    waiting_for_keyframe: bool,
    /// Frames of other tracks received while waiting for the first video keyframe.
    preroll: Vec<Arc<Frame>>,
    fragment_sequence: u32,
    published: Vec<Published>,
    /// Whether the window changed since [`Segmenter::take_changed`]: most frames only
    /// join a part still being made, which no reader of the window can see.
    changed: bool,
}

/// At most this many frames are held while waiting for the first video keyframe.
const PREROLL_MAX: usize = 512;

impl Segmenter {
    /// A segmenter with the given targets.
    pub fn new(cfg: SegmenterConfig) -> Segmenter {
        Segmenter {
            cfg,
            follow: None,
            epoch: None,
            next_epoch: 0,
            params: BTreeMap::new(),
            tracks: BTreeMap::new(),
            waiting_for_keyframe: false,
            preroll: Vec::new(),
            fragment_sequence: 1,
            published: Vec::new(),
            changed: false,
        }
    }

    /// A segmenter that cuts where `follow` says its leader cut, with the leader's
    /// sequence numbers (its own targets only set the parts and the window).
    pub fn following(cfg: SegmenterConfig, follow: Follow) -> Segmenter {
        Segmenter {
            follow: Some(follow),
            ..Segmenter::new(cfg)
        }
    }

    /// The leader's sequence number for a segment starting at this video keyframe, if
    /// following and the leader cut there.
    fn leader_msn(&self, frame: &Frame) -> Option<u64> {
        let f = self.follow.as_ref()?;
        (frame.track == TrackId::Video && frame.is_sync)
            .then(|| (f.0)(frame.dts))
            .flatten()
    }

    /// Numbers the segment about to open `msn`, as the leader does. A jump forward (this
    /// stream missed some of the leader's segments) cannot be listed in one playlist, so
    /// the window starts afresh after a discontinuity.
    fn align(&mut self, msn: u64, w: &mut Window) {
        if msn <= w.next_msn {
            return; // the same, or (never expected) behind: keep counting
        }
        self.changed = true;
        if w.tracks.values().any(|t| !t.segments.is_empty()) {
            for tw in w.tracks.values_mut() {
                tw.discontinuity_sequence +=
                    tw.segments.iter().filter(|s| s.discontinuity).count() as u64;
                tw.segments.clear();
            }
            for t in self.tracks.values_mut() {
                t.discontinuity_next = true;
            }
        }
        w.next_msn = msn;
    }

    /// Whether the window changed (a part, a segment, an epoch, a cut or a renumbering)
    /// since the last call; clears the flag.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Takes the record of what became available since the last call.
    pub fn take_published(&mut self) -> Vec<Published> {
        std::mem::take(&mut self.published)
    }

    fn lead(&self) -> Option<TrackId> {
        self.tracks.keys().next().copied()
    }

    /// Adds one frame. `stream_params` gives the parameters of every track the stream
    /// currently has (from the hub); it is called only when a new epoch starts, to decide
    /// its track set.
    pub fn push(
        &mut self,
        frame: &Arc<Frame>,
        stream_params: impl FnOnce() -> BTreeMap<TrackId, Arc<TrackParams>>,
        w: &mut Window,
    ) {
        let same_params = self
            .params
            .get(&frame.track)
            .is_some_and(|p| Arc::ptr_eq(p, &frame.params));
        if self.epoch.is_none() || !same_params {
            self.finish(w);
            let mut params = stream_params();
            params.insert(frame.track, frame.params.clone());
            self.start_epoch(params, w);
        }
        if self.waiting_for_keyframe {
            let aligned = self.follow.is_none() || self.leader_msn(frame).is_some();
            if frame.track == TrackId::Video && frame.is_sync && aligned {
                self.waiting_for_keyframe = false;
                // Keep what the other tracks sent from the keyframe's time on.
                let start = frame.dts as f64 / f64::from(frame.params.timescale());
                for f in std::mem::take(&mut self.preroll) {
                    if f.dts as f64 / f64::from(f.params.timescale()) >= start {
                        self.add(&f, w);
                    }
                }
            } else {
                if frame.track != TrackId::Video && self.preroll.len() < PREROLL_MAX {
                    self.preroll.push(frame.clone());
                }
                return;
            }
        }
        self.add(frame, w);
    }

    fn add(&mut self, frame: &Arc<Frame>, w: &mut Window) {
        let lead = self.lead();
        let leader_msn = if lead == Some(frame.track) {
            self.leader_msn(frame)
        } else {
            None
        };
        let following = self.follow.is_some();
        let part_target = self.cfg.part_target;
        let segment_target = self.cfg.segment_target;
        let Some(t) = self.tracks.get_mut(&frame.track) else {
            return;
        };
        let mut duration = t.last_duration;
        if let Some(p) = t.pending.take() {
            duration = t.duration_until(&p, frame.dts);
            t.commit(&p, duration);
        }
        let segment_due = lead == Some(frame.track)
            && frame.is_sync
            && t.segment_start.is_some_and(|s| {
                if following {
                    leader_msn.is_some()
                } else {
                    (frame.dts - s) as f64 + f64::from(duration) / 2.0
                        >= segment_target * f64::from(t.timescale)
                }
            });
        let part_due = t.ready_duration + u64::from(duration) > t.ticks(part_target);
        let opens = t.segment_start.is_none() && t.ready.is_empty();
        t.pending = Some(frame.clone());
        if segment_due {
            self.close_segment(w);
        } else if part_due {
            self.flush_part(frame.track, w);
        }
        if let Some(msn) = leader_msn.filter(|_| segment_due || opens) {
            self.align(msn, w);
        }
        if lead == Some(frame.track) && frame.is_sync && (segment_due || opens) {
            let cut = Cut {
                dts: frame.dts,
                seconds: frame.dts as f64 / f64::from(frame.params.timescale()),
                msn: w.next_msn,
                key: w.sealing.clone(),
            };
            w.cuts.push_back(cut);
            self.changed = true;
            if w.cuts.len() > super::window::CUTS_KEPT {
                w.cuts.pop_front();
            }
        }
    }

    /// Flushes everything held (the publisher left, or parameters changed): commits the
    /// held-back frames with their last duration and closes the open segment.
    pub fn finish(&mut self, w: &mut Window) {
        if self.epoch.is_none() {
            return;
        }
        for t in self.tracks.values_mut() {
            if let Some(p) = t.pending.take() {
                let d = t.last_duration;
                t.commit(&p, d);
            }
        }
        self.close_segment(w);
        self.epoch = None;
    }

    fn start_epoch(&mut self, params: BTreeMap<TrackId, Arc<TrackParams>>, w: &mut Window) {
        let idx = self.next_epoch;
        self.next_epoch += 1;
        self.changed = true;
        let same_tracks = w.tracks.keys().eq(params.keys());
        if !same_tracks {
            // The multivariant playlist changes: start the window afresh.
            w.tracks = params
                .keys()
                .map(|k| (*k, TrackWindow::default()))
                .collect();
            w.epochs.clear();
        }
        let had_media = w.tracks.values().any(|t| !t.segments.is_empty());
        w.epochs.insert(
            idx,
            Epoch {
                tracks: params
                    .iter()
                    .map(|(k, p)| (*k, (p.clone(), fmp4::init_segment(p))))
                    .collect(),
            },
        );
        self.tracks = params
            .iter()
            .map(|(k, p)| {
                let mut t = TrackState::new(p);
                t.discontinuity_next = had_media;
                (*k, t)
            })
            .collect();
        self.waiting_for_keyframe = params.contains_key(&TrackId::Video);
        self.preroll.clear();
        self.params = params;
        self.epoch = Some(idx);
    }

    fn flush_part(&mut self, track: TrackId, w: &mut Window) {
        let Some(epoch) = self.epoch else { return };
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.ready.is_empty() {
            return;
        }
        self.changed = true;
        let base = u64::try_from(t.ready_start).unwrap_or(0);
        let sequence = self.fragment_sequence;
        let bytes = fmp4::fragment(sequence, track, base, &t.ready);
        self.fragment_sequence = self.fragment_sequence.wrapping_add(1);
        let (duration, independent) = (t.ready_duration, t.ready[0].is_sync);
        t.ready_duration = 0;
        if let Some(at) = t.ready_received.take() {
            self.published.push(Published::Part(track, at));
        }
        let msn = w.next_msn;
        let pdt = w.wall_clock(base as f64 / f64::from(t.timescale));
        let tw = w.tracks.entry(track).or_default();
        let open = tw
            .segments
            .back()
            .is_some_and(|s| !s.complete && s.msn == msn);
        if !open {
            tw.segments.push_back(Segment {
                msn,
                epoch,
                discontinuity: std::mem::take(&mut t.discontinuity_next),
                start: base,
                timescale: t.timescale,
                duration: 0,
                parts: Vec::new(),
                complete: false,
                pdt,
                sealing: w.sealing.clone().map(|k| Sealing::new(k, msn)),
                sealed: None,
            });
        }
        if let Some(s) = tw.segments.back_mut() {
            s.duration += duration;
            let cenc = s
                .sealing
                .as_ref()
                .map(|x| cenc::fragment(&x.key.key, sequence, track, base, &t.ready));
            s.parts.push(Part {
                sealed: s.sealing.as_ref().map(|x| x.seal([&bytes[..]])),
                cenc,
                bytes,
                duration,
                independent,
            });
        }
        t.ready.clear();
    }

    fn close_segment(&mut self, w: &mut Window) {
        self.changed = true;
        let tracks: Vec<TrackId> = self.tracks.keys().copied().collect();
        for track in &tracks {
            self.flush_part(*track, w);
        }
        let msn = w.next_msn;
        let mut closed = false;
        for (track, t) in self.tracks.iter_mut() {
            if let Some(s) = w
                .tracks
                .get_mut(track)
                .and_then(|tw| tw.segments.back_mut())
                .filter(|s| s.msn == msn && !s.complete)
            {
                s.complete = true;
                s.sealed = s
                    .sealing
                    .as_ref()
                    .map(|x| x.seal(s.parts.iter().map(|p| &p.bytes[..])));
                closed = true;
                if let Some(at) = t.segment_received {
                    self.published.push(Published::Segment(*track, at));
                }
                if *track == TrackId::Video {
                    if let Some(fps) = frame_rate(&mut t.segment_durations, t.timescale) {
                        w.frame_rate = Some(fps);
                    }
                }
            }
            t.segment_start = None;
            t.segment_received = None;
            t.segment_durations.clear();
        }
        if closed {
            w.next_msn += 1;
            if let Some(next) = w.sealing_after.take() {
                w.sealing = next;
            }
            self.trim(w);
        }
    }

    /// Drops the oldest segments (in every track at once) beyond the window, keeping at
    /// least three complete ones, and the epochs no segment refers to any more.
    fn trim(&self, w: &mut Window) {
        let Some(lead) = w.lead() else { return };
        loop {
            let Some(lt) = w.tracks.get(&lead) else {
                return;
            };
            let complete: Vec<&Segment> = lt.segments.iter().filter(|s| s.complete).collect();
            let total: f64 = complete.iter().map(|s| s.seconds()).sum();
            let Some(first) = complete.first() else {
                return;
            };
            if complete.len() <= 3 || total - first.seconds() < self.cfg.window {
                break;
            }
            let drop_msn = first.msn;
            for tw in w.tracks.values_mut() {
                while tw.segments.front().is_some_and(|s| s.msn <= drop_msn) {
                    if let Some(s) = tw.segments.pop_front() {
                        if s.discontinuity {
                            tw.discontinuity_sequence += 1;
                        }
                    }
                }
            }
        }
        let oldest = w
            .tracks
            .values()
            .filter_map(|t| t.segments.front().map(|s| s.epoch))
            .min();
        if let Some(oldest) = oldest {
            w.epochs.retain(|e, _| *e >= oldest);
        }
    }
}

/// Frames per second from sample durations: the mean duration of the samples within 25 %
/// of the median, so gaps and jitter from millisecond timestamps (33/34 ms at 29.97 fps)
/// do not skew it.
fn frame_rate(durations: &mut [u32], timescale: u32) -> Option<f64> {
    if durations.is_empty() {
        return None;
    }
    durations.sort_unstable();
    let median = f64::from(durations[durations.len() / 2]);
    let (sum, n) = durations
        .iter()
        .map(|&d| f64::from(d))
        .filter(|d| (d - median).abs() <= median * 0.25)
        .fold((0.0, 0u32), |(s, n), d| (s + d, n + 1));
    (sum > 0.0).then(|| f64::from(timescale) * f64::from(n) / sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::AudioConfig;
    use crate::media::h264::AvcConfig;
    use bytes::Bytes;
    use std::time::{Instant, SystemTime};

    fn video_params() -> Arc<TrackParams> {
        Arc::new(TrackParams::Video(
            AvcConfig::parse(Bytes::from_static(crate::media::h264::tests::BBB_AVCC))
                .expect("avcC"),
        ))
    }

    fn audio_params() -> Arc<TrackParams> {
        Arc::new(TrackParams::Audio(
            AudioConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc"),
        ))
    }

    fn frame(track: TrackId, dts: i64, is_sync: bool, params: &Arc<TrackParams>) -> Arc<Frame> {
        Arc::new(Frame {
            track,
            dts,
            cts: 0,
            is_sync,
            params: params.clone(),
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            received: Instant::now(),
        })
    }

    fn cfg() -> SegmenterConfig {
        SegmenterConfig {
            segment_target: 2.0,
            part_target: 0.333,
            window: 12.0,
        }
    }

    /// 25 fps video with a keyframe every `gop` frames and 48 kHz AAC, for `secs`.
    fn feed(
        s: &mut Segmenter,
        w: &mut Window,
        secs: i64,
        gop: i64,
        v: &Arc<TrackParams>,
        a: &Arc<TrackParams>,
    ) {
        let params: BTreeMap<_, _> =
            [(TrackId::Video, v.clone()), (TrackId::Audio, a.clone())].into();
        let mut next_audio = 0i64;
        for i in 0..secs * 25 {
            let vdts = i * 3600;
            while next_audio * 90_000 / 48_000 <= vdts {
                s.push(
                    &frame(TrackId::Audio, next_audio, true, a),
                    || params.clone(),
                    w,
                );
                next_audio += 1024;
            }
            s.push(
                &frame(TrackId::Video, vdts, i % gop == 0, v),
                || params.clone(),
                w,
            );
        }
    }

    /// Readers of the window wake on [`Segmenter::take_changed`]: it must be set by every
    /// frame that changes what they can see (a part, a segment closed, an epoch opened),
    /// and by no other, so that most frames (joining the part being made) wake nobody.
    #[test]
    fn only_a_frame_that_changes_the_window_says_so() {
        let v = video_params();
        let params: BTreeMap<_, _> = [(TrackId::Video, v.clone())].into();
        let mut s = Segmenter::new(cfg());
        let mut w = Window::new(SystemTime::now());
        let shape = |w: &Window| {
            let segs = || w.tracks.values().flat_map(|t| t.segments.iter());
            (
                w.next_msn,
                segs().count(),
                segs().map(|s| s.parts.len()).sum::<usize>(),
                segs().filter(|s| s.complete).count(),
            )
        };
        let mut changes = 0;
        for i in 0..10 * 25 {
            let before = shape(&w);
            s.push(
                &frame(TrackId::Video, i * 3600, i % 50 == 0, &v),
                || params.clone(),
                &mut w,
            );
            let changed = s.take_changed();
            // The first frame opens the epoch: the window has its init segment then.
            assert_eq!(changed, i == 0 || shape(&w) != before, "frame {i}");
            changes += usize::from(changed);
        }
        // 10 s of 25 fps in parts of 8 frames (0.333 s), 2 s segments.
        assert!(
            (30..=40).contains(&changes),
            "{changes} changes in 250 frames"
        );
        assert!(!s.take_changed(), "taking clears it");
    }

    #[test]
    fn a_follower_cuts_where_its_leader_cut_with_its_numbers() {
        // The leader: 1 s GOPs, 2 s target: it cuts at every other keyframe.
        let (v, a) = (video_params(), audio_params());
        let long = SegmenterConfig {
            window: 60.0,
            ..cfg()
        };
        let mut lead = Segmenter::new(long);
        let leader = Arc::new(std::sync::Mutex::new(Window::new(SystemTime::now())));
        feed(&mut lead, &mut leader.lock().expect("lock"), 20, 25, &v, &a);
        // The follower: video only, keyframes every second too, joining 3.5 s in.
        let l = leader.clone();
        let follow = Follow(Arc::new(move |dts| {
            let w = l.lock().expect("lock");
            w.cuts.iter().find(|c| c.dts == dts).map(|c| c.msn)
        }));
        let mut s = Segmenter::following(long, follow);
        let mut w = Window::new(SystemTime::now());
        let params: BTreeMap<_, _> = [(TrackId::Video, v.clone())].into();
        for i in 88..20 * 25 {
            s.push(
                &frame(TrackId::Video, i * 3600, i % 25 == 0, &v),
                || params.clone(),
                &mut w,
            );
        }
        let complete = |w: &Window| -> Vec<(u64, u64, u64)> {
            w.tracks[&TrackId::Video]
                .segments
                .iter()
                .filter(|s| s.complete)
                .map(|s| (s.msn, s.start, s.duration))
                .collect()
        };
        let theirs = complete(&leader.lock().expect("lock"));
        let ours = complete(&w);
        assert!(ours.len() >= 4, "{ours:?}");
        // Joining at 3.52 s, the first whole segment of the leader it can match is the
        // one from 4 s on; from there on, the same numbers, starts and durations.
        assert_eq!(ours[0].1, 4 * 90_000, "{ours:?}");
        let from = theirs
            .iter()
            .position(|t| *t == ours[0])
            .expect("same first segment");
        assert_eq!(&theirs[from..from + ours.len()], &ours[..]);
    }

    #[test]
    fn segments_start_at_keyframes_and_align() {
        let (v, a) = (video_params(), audio_params());
        let mut s = Segmenter::new(cfg());
        let mut w = Window::new(SystemTime::now());
        feed(&mut s, &mut w, 20, 50, &v, &a);
        let video = &w.tracks[&TrackId::Video];
        let audio = &w.tracks[&TrackId::Audio];
        let complete: Vec<_> = video.segments.iter().filter(|s| s.complete).collect();
        assert!(complete.len() >= 6, "{}", complete.len());
        for seg in &complete {
            assert!(
                seg.parts[0].independent,
                "segment {} starts without a keyframe",
                seg.msn
            );
            assert!((seg.seconds() - 2.0).abs() < 1e-9, "{}", seg.seconds());
            for p in &seg.parts {
                assert!(p.duration as f64 / 90_000.0 <= 0.333 + 1e-9);
            }
            assert!(
                audio.segment(seg.msn).is_some(),
                "audio lacks msn {}",
                seg.msn
            );
        }
        for p in &audio.segments[1].parts {
            assert!(p.duration as f64 / 48_000.0 <= 0.333 + 1e-9);
        }
    }

    #[test]
    fn long_gop_gives_long_segments_and_window_trims() {
        let (v, a) = (video_params(), audio_params());
        let mut s = Segmenter::new(cfg());
        let mut w = Window::new(SystemTime::now());
        // One keyframe per 5.32 s, as in bigbuckbunny.mp4.
        feed(&mut s, &mut w, 60, 133, &v, &a);
        let video = &w.tracks[&TrackId::Video];
        for seg in video.segments.iter().filter(|s| s.complete) {
            assert!((seg.seconds() - 5.32).abs() < 1e-9, "{}", seg.seconds());
        }
        let total: f64 = video.segments.iter().map(|s| s.seconds()).sum();
        assert!(
            total < 12.0 + 2.0 * 5.32 + 1e-9,
            "window not trimmed: {total}"
        );
        let first = video.segments.front().expect("segments").msn;
        assert_eq!(
            w.tracks[&TrackId::Audio]
                .segments
                .front()
                .expect("audio")
                .msn,
            first
        );
    }

    #[test]
    fn frame_rate_ignores_gaps_and_ms_jitter() {
        let mut d = vec![3600; 49];
        d.push(90_000); // a one-second gap
        assert_eq!(frame_rate(&mut d, 90_000), Some(25.0));
        // 29.97 fps carried in milliseconds: 33, 33, 34 ms ...
        let mut d: Vec<u32> = (0..300)
            .map(|i| if i % 3 == 2 { 34 * 90 } else { 33 * 90 })
            .collect();
        let fps = frame_rate(&mut d, 90_000).expect("fps");
        assert!((fps - 29.97).abs() < 0.05, "{fps}");
    }

    #[test]
    fn new_params_make_a_discontinuity() {
        let (v, a) = (video_params(), audio_params());
        let mut s = Segmenter::new(cfg());
        let mut w = Window::new(SystemTime::now());
        feed(&mut s, &mut w, 4, 50, &v, &a);
        let v2 = video_params(); // same content, new Arc: a new sequence header
        feed(&mut s, &mut w, 4, 50, &v2, &a);
        let video = &w.tracks[&TrackId::Video];
        let disc: Vec<_> = video.segments.iter().filter(|s| s.discontinuity).collect();
        assert_eq!(disc.len(), 1);
        assert_eq!(disc[0].epoch, 1);
        assert!(w.epochs.contains_key(&1));
        // Media sequence numbers only grow.
        assert!(video
            .segments
            .iter()
            .zip(video.segments.iter().skip(1))
            .all(|(a, b)| b.msn == a.msn + 1));
    }
}
