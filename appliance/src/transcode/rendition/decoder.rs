//! The feeder (hub frames to the decoder's queue) and the decoder thread, which
//! decodes the source once, scales for each rung and hands pictures to the rungs'
//! queues, keeping every rung's GOPs aligned with the source's keyframes.

use super::*;

/// Hands the source's video frames to the decoder without ever waiting: a full queue
/// drops a rung and skips to the next keyframe. While no rung runs, video is not decoded
/// at all, and it resumes at a keyframe. Audio goes to the audio thread, if any; a unit
/// it has no room for is dropped (the encoder fills the gap with silence). Ends when the
/// publisher leaves, or at a keyframe whose size is not `size` (width, height), after
/// telling `resized`.
pub(super) async fn feed(
    hub: Arc<Hub>,
    tx: Option<SyncSender<Arc<Frame>>>,
    audio: Option<SyncSender<Arc<Frame>>>,
    shed: Arc<Shed>,
    size: (u32, u32),
    resized: Arc<tokio::sync::Notify>,
) {
    let mut state = hub.state();
    // Not the GOP cache, whose burst would look like overload: from the next keyframe
    // on, at the pace it arrives. Unless the cached GOP has only just begun (a restart
    // for a new size, at its first keyframe).
    let (gop, mut rx) = hub.subscribe();
    let fresh = gop
        .first()
        .is_some_and(|f| f.received.elapsed() < FRESH_GOP);
    let mut skipping = true;
    let give = |f: Arc<Frame>, skipping: &mut bool| -> bool {
        if f.is_sync {
            if let TrackParams::Video(v) = &*f.params {
                if (v.width, v.height) != size {
                    info!(
                        width = v.width,
                        height = v.height,
                        "the source changed size; restarting the ladder"
                    );
                    resized.notify_one();
                    return false;
                }
            }
        }
        if f.track == TrackId::Audio {
            if let Some(a) = &audio {
                if let Err(TrySendError::Full(_)) = a.try_send(f) {
                    warn!("ABR audio fell behind; an access unit is lost");
                }
            }
            return true;
        }
        let Some(tx) = &tx else {
            return true;
        };
        if !shed.any_running() {
            *skipping = true;
            return true;
        }
        if *skipping && !f.is_sync {
            return true;
        }
        *skipping = false;
        match tx.try_send(f) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                shed.drop_lowest("the decoder fell behind");
                *skipping = true;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    };
    if tx.is_none() && audio.is_none() {
        return;
    }
    if fresh {
        for f in gop {
            if !give(f, &mut skipping) {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(f) => if !give(f, &mut skipping) { return },
                Err(broadcast::error::RecvError::Lagged(_)) => skipping = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = state.changed() => {
                if r.is_err() || matches!(*state.borrow_and_update(), PublishState::Idle) {
                    return;
                }
            }
        }
    }
}

/// A decoded picture for a rung, with the source's keyframe composition offset `D`.
pub(super) struct Job {
    pub(super) decoded: Decoded,
    pub(super) delay: i64,
}

/// Decodes the source once and hands each picture to every running rung. A rung
/// started again (its new queue arrives on `revive`, by index) gets pictures from the
/// next keyframe on.
pub(super) fn decoder_thread(
    shed: &Shed,
    rx: Receiver<Arc<Frame>>,
    mut senders: Vec<Option<SyncSender<Job>>>,
    revive: &Receiver<(usize, SyncSender<Job>)>,
    mpx: f64,
) {
    crate::transcode::cost::lower_thread_priority();
    let mut meter = Meter::default();
    let mut decoder = match VideoDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            warn!(stream = %shed.stream, error = %e, "ABR decoder");
            return;
        }
    };
    let mut delay: Option<i64> = None;
    let mut skip_to_keyframe = false;
    let mut rejected = 0u64;
    // Rungs started again that wait for a keyframe.
    let mut waiting = vec![false; senders.len()];
    let fan_out = |decoded: Decoded,
                   delay: i64,
                   senders: &mut Vec<Option<SyncSender<Job>>>,
                   waiting: &mut Vec<bool>| {
        for (i, slot) in senders.iter_mut().enumerate() {
            if !shed.rungs[i].running() {
                *slot = None; // its thread drains and ends
            }
            let Some(tx) = slot else { continue };
            if waiting[i] {
                if !decoded.keyframe {
                    continue;
                }
                waiting[i] = false;
            }
            let job = Job {
                decoded: decoded.clone(),
                delay,
            };
            let deadline = std::time::Instant::now() + RUNG_WAIT;
            let mut job = job;
            loop {
                match tx.try_send(job) {
                    Ok(()) => break,
                    Err(TrySendError::Full(j)) => {
                        if std::time::Instant::now() > deadline || !shed.rungs[i].running() {
                            shed.drop_lowest(&format!("rung {} fell behind", shed.rungs[i].name));
                            break;
                        }
                        job = j;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        *slot = None;
                        break;
                    }
                }
            }
        }
    };
    while let Ok(f) = rx.recv() {
        while let Ok((i, tx)) = revive.try_recv() {
            if let Some(slot) = senders.get_mut(i) {
                *slot = Some(tx);
                waiting[i] = true;
            }
        }
        let TrackParams::Video(config) = &*f.params else {
            continue;
        };
        if skip_to_keyframe && !f.is_sync {
            continue;
        }
        skip_to_keyframe = false;
        if f.is_sync {
            // A keyframe's composition offset: constant for a given encoder.
            let cts = i64::from(f.cts).max(0);
            if delay.is_some_and(|d| d != cts) {
                warn!(stream = %shed.stream, was = ?delay, now = cts, "source keyframe delay changed");
            }
            delay = Some(cts);
        }
        let Some(d) = delay else { continue };
        if let Some((cpu, media)) = meter.tick(f.dts) {
            shed.ctx.costs.measured_decode(cpu, media, mpx);
        }
        match decoder.decode(
            config,
            &f.data,
            f.dts + i64::from(f.cts),
            f.is_sync,
            f.received,
        ) {
            Ok(pictures) => {
                for p in pictures {
                    fan_out(p, d, &mut senders, &mut waiting);
                }
            }
            Err(e) => {
                rejected += 1;
                shed.ctx
                    .metrics
                    .abr_rejected_frames
                    .with_label_values(&[&shed.stream])
                    .inc();
                if rejected.is_power_of_two() {
                    warn!(stream = %shed.stream, error = %e, rejected, "ABR decoder rejected a frame; skipping to the next keyframe");
                }
                skip_to_keyframe = true;
            }
        }
    }
    if let Some(d) = delay {
        for p in decoder.flush() {
            fan_out(p, d, &mut senders, &mut waiting);
        }
    }
}

/// Measures the calling thread's CPU time against media time, every couple of seconds
/// of media.
#[derive(Debug, Default)]
pub(super) struct Meter {
    /// CPU seconds and media time (90 kHz ticks) at the start of the current span.
    pub(super) start: Option<(f64, i64)>,
}

impl Meter {
    /// At media time `t` (90 kHz ticks): the (CPU seconds, media seconds) of a span
    /// that just completed, if one did.
    /// The CPU clock is read only when a span starts or ends, not every frame.
    pub(super) fn tick(&mut self, t: i64) -> Option<(f64, f64)> {
        match self.start {
            Some((_, t0)) if t >= t0 && t - t0 < 2 * 90_000 => None,
            // Over 4 s means media was skipped (nothing to decode for a while): not a
            // measurement.
            Some((cpu, t0)) if t >= t0 && t - t0 <= 4 * 90_000 => {
                let now = crate::transcode::cost::thread_cpu_seconds();
                self.start = Some((now, t));
                Some((now - cpu, (t - t0) as f64 / 90_000.0))
            }
            // The first frame, a jump back in time, or a gap: start a span.
            _ => {
                self.start = Some((crate::transcode::cost::thread_cpu_seconds(), t));
                None
            }
        }
    }
}
