//! One rung's thread: encodes the decoder's pictures (OpenH264) at the rung's size and
//! bitrate and publishes them into the rung's hub.

use super::*;

/// Scales and encodes one rung's pictures at `quality` and publishes them into its
/// hub. At a keyframe, moves to the preset the supervisor asked for
/// ([`Rendition::switch`]): a new scaler and encoder from that IDR on, so the rung's
/// segments stay aligned and nothing is missed (parameter sets that differ, as a new
/// profile's do, start a new epoch, as a publisher's new codec parameters do).
pub(super) fn rung_thread(
    stream: &str,
    r: &Rendition,
    p: &Planned,
    fps: f64,
    mut quality: Quality,
    costs: &crate::transcode::cost::Costs,
    rx: Receiver<Job>,
) {
    /// However the thread ends, the rung is no longer being made.
    struct Stopped<'a>(&'a Rendition);
    impl Drop for Stopped<'_> {
        fn drop(&mut self) {
            self.0.running.store(false, Ordering::Relaxed);
        }
    }
    let _stopped = Stopped(r);
    crate::transcode::cost::lower_thread_priority();
    let mut meter = Meter::default();
    let rate = p.rung.max_fps.map_or(fps, |c| c.min(fps));
    let mpx = crate::transcode::cost::mpx_per_second(p.width, p.height, rate);
    let publisher = match r.hub.publish("transcoder") {
        Ok(p) => p,
        Err(e) => {
            warn!(%stream, rung = %r.name, error = %e, "rung hub busy");
            return;
        }
    };
    let fps = p.rung.max_fps.map_or(fps, |cap| cap.min(fps));
    let tuning = quality.tuning();
    let mut scaler = Scaler::with_filter(p.width, p.height, tuning.filter);
    let mut encoder = match VideoEncoder::with_tuning(p.rung.bitrate, fps, &tuning) {
        Ok(e) => e,
        Err(e) => {
            warn!(%stream, rung = %r.name, error = %e, "rung encoder");
            return;
        }
    };
    // The shortest picture interval kept under a frame rate cap, 90 kHz ticks (a little
    // under, so timestamp jitter does not halve the rate).
    let min_interval = p.rung.max_fps.map(|cap| (90_000.0 / cap * 0.9) as i64);
    let mut last_kept: Option<i64> = None;
    let mut params: Option<Arc<TrackParams>> = None;
    let mut need_idr = true;
    let mut failures = 0u64;
    while let Ok(job) = rx.recv() {
        if !r.running() {
            break;
        }
        let d = &job.decoded;
        if let (Some(min), Some(last)) = (min_interval, last_kept) {
            if !d.keyframe && d.pts - last < min {
                continue;
            }
        }
        last_kept = Some(d.pts);
        // A preset asked for is taken at a keyframe, where the new encoder's IDR goes.
        if let Some(q) = d
            .keyframe
            .then(|| r.take_switch())
            .flatten()
            .filter(|q| *q != quality)
        {
            let tuning = q.tuning();
            match VideoEncoder::with_tuning(p.rung.bitrate, fps, &tuning) {
                Ok(e) => {
                    info!(%stream, rung = %r.name, from = %quality, to = %q, "ABR: the rung moves to another quality preset at this keyframe");
                    encoder = e;
                    scaler = Scaler::with_filter(p.width, p.height, tuning.filter);
                    quality = q;
                    *r.quality.lock().unwrap_or_else(|e| e.into_inner()) = q;
                    // CPU measured from here on is the new preset's.
                    meter = Meter::default();
                }
                Err(e) => {
                    warn!(%stream, rung = %r.name, error = %e, "rung encoder at another preset; the rung stays as it was");
                }
            }
        }
        if let Some((cpu, media)) = meter.tick(d.pts) {
            costs.measured_encode(quality, cpu, media, mpx);
        }
        let encoded = scaler.scale(&d.picture).and_then(|small| {
            encoder.encode(&small, d.keyframe || need_idr, (d.pts.max(0) / 90) as u64)
        });
        match encoded {
            Ok(Some((au, config))) => {
                if let Some(c) = config {
                    let new = Arc::new(TrackParams::Video(c));
                    publisher.set_params(new.clone());
                    params = Some(new);
                }
                let Some(params) = params.clone() else {
                    continue;
                };
                need_idr = false;
                publisher.send(Frame {
                    track: TrackId::Video,
                    dts: d.pts - job.delay,
                    cts: i32::try_from(job.delay).unwrap_or(0),
                    is_sync: au.idr,
                    params,
                    data: au.data,
                    received: d.received,
                });
            }
            Ok(None) => {}
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    warn!(%stream, rung = %r.name, error = %e, failures, "rung picture lost");
                }
                need_idr = true;
            }
        }
    }
}
