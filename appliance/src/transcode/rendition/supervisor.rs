//! The supervisor's pipeline of one stream: which rungs run (admission against the
//! cost model and the CPU budget), dropping the lowest rung under load, and starting
//! dropped rungs again when there is room.

use super::*;

/// One rung of a running ladder: being made, or waiting for room.
pub(super) struct Slot {
    pub(super) r: Arc<Rendition>,
    pub(super) planned: Planned,
    /// The quality preset it runs at (or last ran at): the ladder's, or a cheaper one
    /// admission chose.
    pub(super) quality: Quality,
    /// Its thread, until a check finds it finished and joins it.
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
    /// When it stopped (dropped, or not admitted when the ladder started); `None` while
    /// it runs.
    pub(super) stopped_at: Option<Instant>,
    /// Times it was dropped while this ladder ran.
    pub(super) drops: u32,
    /// Its wait is over but there was no room for it, and the log said so (once per
    /// stop).
    pub(super) told_no_room: bool,
}

impl Slot {
    /// The cores it takes at `quality` from a source at `fps` (with its own frame rate
    /// cap), by the cost model.
    fn cores(&self, costs: &crate::transcode::cost::Costs, fps: f64, quality: Quality) -> f64 {
        let rate = self.planned.rung.max_fps.map_or(fps, |c| c.min(fps));
        costs.encode_cores(self.planned.width, self.planned.height, rate, quality)
    }
}

/// A running transcoder: the feeder task and the codec threads it feeds.
pub(super) struct Pipeline {
    pub(super) feeder: tokio::task::JoinHandle<()>,
    /// The decoder and audio threads.
    pub(super) threads: Vec<std::thread::JoinHandle<()>>,
    /// Every rung of the plan, in priority order, running or not.
    pub(super) slots: Vec<Slot>,
    /// Hands a restarted rung's queue (by slot index) to the decoder.
    pub(super) revive: Option<SyncSender<(usize, SyncSender<Job>)>>,
    pub(super) shed: Arc<Shed>,
    /// The audio rendition, when made.
    pub(super) audio: Vec<Arc<Rendition>>,
    /// The source's width, height (pixels) and frame rate (per second).
    pub(super) source: (u32, u32, f64),
    /// The ladder's quality preset.
    pub(super) quality: Quality,
    /// When a rung was last started.
    pub(super) last_start: Instant,
    /// Told by the feeder when the source's video changes size.
    pub(super) resized: Arc<tokio::sync::Notify>,
}

impl Pipeline {
    /// Plans `stored`'s ladder for the source `want` describes (no rungs when it cannot
    /// be decoded, or is not above any rung) and starts what admission lets run, at
    /// `stored`'s quality preset or cheaper.
    pub(super) fn start(
        ctx: &Transcoding,
        hub: &Arc<Hub>,
        source: &Arc<LiveStream>,
        renditions: &Renditions,
        want: &Want,
        stored: &ladder::Settings,
        life: &StreamLife,
    ) -> Pipeline {
        let quality = stored.quality;
        let mut planned = stored.ladder.plan(want.width, want.height);
        if let Some(why) = &want.undecodable {
            warn!(
                "ABR: the source's H.264 profile {why} cannot be decoded here (OpenH264 takes Baseline, Main and High, 8-bit 4:2:0): passthrough only"
            );
            planned.clear();
        } else if planned.is_empty() {
            info!(
                width = want.width,
                height = want.height,
                "the source is not above any rung of the ladder: passthrough only"
            );
        }
        let fps = source.read().frame_rate.unwrap_or(30.0).clamp(1.0, 120.0);
        let stream = hub.name();
        let admitted = admit(ctx, stream, want, quality, &planned, fps);
        let stereo = want.audio.is_some();
        let now = Instant::now();
        let mut slots = Vec::new();
        let mut senders = Vec::new();
        for (i, p) in planned.into_iter().enumerate() {
            let r = rendition(ctx, hub, source, renditions, &p.name, TrackId::Video, life);
            *r.planned.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
            let chosen = admitted.iter().find(|(a, _)| *a == i).map(|(_, q)| *q);
            let mut slot = Slot {
                r,
                planned: p,
                quality: chosen.unwrap_or(quality),
                thread: None,
                stopped_at: Some(now),
                drops: 0,
                told_no_room: false,
            };
            let tx = if chosen.is_some() {
                start_rung(ctx, stream, &mut slot, fps)
            } else {
                None
            };
            senders.push(tx);
            slots.push(slot);
        }
        let mut audio = Vec::new();
        let mut threads = Vec::new();
        let mut audio_tx = None;
        if stereo {
            let r = rendition(ctx, hub, source, renditions, STEREO, TrackId::Audio, life);
            r.running.store(true, Ordering::Relaxed);
            set_running_metric(ctx, stream, &r.name, true);
            let (tx, rx) = sync_channel::<Arc<Frame>>(AUDIO_QUEUE);
            let rr = r.clone();
            let name = stream.to_string();
            match std::thread::Builder::new()
                .name("abr-audio".into())
                .spawn(move || audio_thread(&name, &rr, rx))
            {
                Ok(t) => {
                    threads.push(t);
                    audio_tx = Some(tx);
                }
                Err(e) => warn!(error = %e, "cannot start the ABR audio thread"),
            }
            audio.push(r);
        }
        let shed = Arc::new(Shed {
            ctx: ctx.clone(),
            stream: stream.to_string(),
            rungs: slots.iter().map(|s| s.r.clone()).collect(),
        });
        let started: Vec<&str> = shed
            .rungs
            .iter()
            .chain(&audio)
            .filter(|r| r.running())
            .map(|r| r.name.as_str())
            .collect();
        if !started.is_empty() {
            info!(renditions = %started.join(","), "ABR ladder started");
        }
        // The decoder runs for the rungs, even while none is running (it then gets
        // nothing to decode), so that they can start again.
        let mut video_tx = None;
        let mut revive = None;
        if !slots.is_empty() {
            let (tx, rx) = sync_channel::<Arc<Frame>>(DECODE_QUEUE);
            let (revive_tx, revive_rx) = sync_channel(slots.len());
            let s2 = shed.clone();
            let mpx = crate::transcode::cost::mpx_per_second(want.width, want.height, fps);
            match std::thread::Builder::new()
                .name("abr-decoder".into())
                .spawn(move || decoder_thread(&s2, rx, senders, &revive_rx, mpx))
            {
                Ok(t) => {
                    threads.push(t);
                    video_tx = Some(tx);
                    revive = Some(revive_tx);
                }
                Err(e) => warn!(error = %e, "cannot start the ABR decoder thread"),
            }
        }
        let s3 = shed.clone();
        let resized = Arc::new(tokio::sync::Notify::new());
        let size = (want.width, want.height);
        let feeder = tokio::spawn(
            feed(hub.clone(), video_tx, audio_tx, s3, size, resized.clone()).in_current_span(),
        );
        Pipeline {
            feeder,
            resized,
            threads,
            slots,
            revive,
            shed,
            audio,
            source: (want.width, want.height, fps),
            quality,
            last_start: now,
        }
    }

    /// Every [`CHECK_EVERY`]: notices rungs that stopped, gives their cores back, and
    /// starts one waiting rung again when its wait is over and there is room for it both
    /// in the budget and on the machine (`idle`: idle cores measured since the last
    /// check, `None` when unknown).
    pub(super) fn check(&mut self, ctx: &Transcoding, idle: Option<f64>) {
        let now = Instant::now();
        for s in &mut self.slots {
            if !s.r.running() && s.stopped_at.is_none() {
                s.stopped_at = Some(now);
                s.drops += 1;
                s.told_no_room = false;
                set_running_metric(ctx, &self.shed.stream, &s.r.name, false);
            }
            if s.thread.as_ref().is_some_and(|t| t.is_finished()) {
                if let Some(t) = s.thread.take() {
                    let _ = t.join();
                }
            }
        }
        let stream = self.shed.stream.as_str();
        let (width, height, fps) = self.source;
        let costs = &ctx.costs;
        let rung_cores = |s: &Slot, q: Quality| s.cores(costs, fps, q);
        let decode = costs.decode_cores(width, height, fps);
        let any_running = self.slots.iter().any(|s| s.r.running());
        let own = self.own_cores(costs);
        costs.commit(stream, own);
        ctx.metrics.abr_cores.with_label_values(&[stream]).set(own);

        // One start at a time, and not before the last one shows in the measurements.
        let (Some(revive), Some(idle)) = (&self.revive, idle) else {
            return;
        };
        if now.duration_since(self.last_start) < 2 * CHECK_EVERY {
            return;
        }
        let room = costs.free_for(stream, ctx.abr.budget()) - own;
        let base = ctx.abr.retry_dropped_after;
        let need = |s: &Slot, q: Quality| rung_cores(s, q) + if any_running { 0.0 } else { decode };
        // The dearest preset, up to the ladder's, that fits now: for a stopped rung
        // (`from` None) all it needs, for a running one above its preset `from` what
        // the move adds.
        let fits = |s: &Slot, from: Option<Quality>| {
            self.quality
                .and_cheaper()
                .take_while(|q| from.is_none_or(|f| *q > f))
                .find(|q| {
                    let n = match from {
                        None => need(s, *q),
                        Some(f) => rung_cores(s, *q) - rung_cores(s, f),
                    };
                    n <= room && n * IDLE_MARGIN <= idle
                })
        };
        // Stopped, its thread gone, and its wait (doubling with each drop) over.
        let waited = |s: &Slot| {
            let wait = base * f64::from(1u32 << s.drops.saturating_sub(1).min(4));
            s.thread.is_none()
                && s.stopped_at
                    .is_some_and(|at| now.duration_since(at).as_secs_f64() >= wait)
        };
        let pick = self.slots.iter().enumerate().find_map(|(i, s)| {
            if waited(s) {
                fits(s, None).map(|q| (i, q))
            } else {
                None
            }
        });
        // Every rung running, one of them below the ladder's preset (admitted or
        // started again cheaper) and room now for a dearer one: it moves up at its next
        // keyframe. Rungs come before quality: not while one is stopped.
        let raise = || {
            if self.slots.iter().any(|s| !s.r.running()) {
                return None;
            }
            self.slots.iter().enumerate().find_map(|(i, s)| {
                (s.quality < self.quality)
                    .then(|| fits(s, Some(s.quality)))
                    .flatten()
                    .map(|q| (i, q))
            })
        };
        if pick.is_none() {
            if let Some((i, quality)) = raise() {
                let slot = &mut self.slots[i];
                info!(
                    rung = %slot.r.name,
                    from = %slot.quality,
                    to = %quality,
                    idle = format!("{idle:.2}"),
                    room = format!("{room:.2}"),
                    "ABR: room for better quality; the rung moves up at its next keyframe"
                );
                slot.quality = quality;
                slot.r.switch(Some(quality));
                self.last_start = now;
                return;
            }
        }
        let Some((i, quality)) = pick else {
            for s in &mut self.slots {
                if !s.told_no_room && waited(s) {
                    s.told_no_room = true;
                    info!(
                        rung = %s.r.name,
                        cores = format!("{:.2}", need(s, Quality::Efficient)),
                        idle = format!("{idle:.2}"),
                        room = format!("{room:.2}"),
                        "ABR: the rung's wait is over but there is no room for it; it stays dropped"
                    );
                }
            }
            return;
        };
        let cores = need(&self.slots[i], quality);
        let slot = &mut self.slots[i];
        slot.quality = quality;
        info!(
            rung = %slot.r.name,
            %quality,
            cores = format!("{cores:.2}"),
            idle = format!("{idle:.2}"),
            "ABR: room again; starting the rung at the next keyframe"
        );
        self.last_start = now;
        let Some(tx) = start_rung(ctx, stream, slot, fps) else {
            return;
        };
        if revive.try_send((i, tx)).is_err() {
            // The decoder has ended; the rung's thread ends with its queue.
            slot.r.running.store(false, Ordering::Relaxed);
        }
    }

    /// The cores this ladder takes now by the cost model: decoding and the running
    /// rungs at their presets (nothing while no rung runs).
    fn own_cores(&self, costs: &crate::transcode::cost::Costs) -> f64 {
        let (width, height, fps) = self.source;
        let running = self.slots.iter().filter(|s| s.r.running());
        if running.clone().next().is_none() {
            return 0.0;
        }
        costs.decode_cores(width, height, fps)
            + running.map(|s| s.cores(costs, fps, s.quality)).sum::<f64>()
    }

    /// The ladder's preset changed to `quality`: each running rung moves to it at its
    /// next keyframe, or, moving up, to the dearest preset up to it that fits in the
    /// budget (as admission would start it); a stopped rung is started again at it
    /// when there is room. Nothing restarts: the rungs' segments go on, each with new
    /// parameter sets from its next IDR.
    pub(super) fn set_quality(&mut self, ctx: &Transcoding, quality: Quality) {
        self.quality = quality;
        let stream = self.shed.stream.as_str();
        let fps = self.source.2;
        let costs = &ctx.costs;
        let rung_cores = |s: &Slot, q: Quality| s.cores(costs, fps, q);
        let mut own = self.own_cores(costs);
        let free = costs.free_for(stream, ctx.abr.budget());
        for s in &mut self.slots {
            if !s.r.running() {
                s.quality = quality;
                continue;
            }
            let now = rung_cores(s, s.quality);
            let to = quality
                .and_cheaper()
                .find(|q| *q <= s.quality || own - now + rung_cores(s, *q) <= free)
                .unwrap_or(s.quality);
            if to == s.quality {
                continue;
            }
            own += rung_cores(s, to) - now;
            info!(rung = %s.r.name, from = %s.quality, %to, "ABR: the ladder's quality preset changed; the rung moves at its next keyframe");
            s.quality = to;
            s.r.switch(Some(to));
        }
    }

    /// Stops the feeder (if it has not ended by itself) and waits while the rest drains:
    /// the decoder hands its last pictures (those held back for B-frame reordering) to
    /// the rungs, whose threads then end and whose hubs go idle.
    pub(super) async fn stop(self) {
        self.feeder.abort();
        let _ = self.feeder.await;
        let mut threads = self.threads;
        threads.extend(self.slots.into_iter().filter_map(|s| s.thread));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        let (ctx, stream) = (&self.shed.ctx, &self.shed.stream);
        ctx.costs.release(stream);
        ctx.metrics.abr_cores.with_label_values(&[stream]).set(0.0);
        for r in self.shed.rungs.iter().chain(&self.audio) {
            r.running.store(false, Ordering::Relaxed);
            set_running_metric(ctx, stream, &r.name, false);
        }
        info!("ABR ladder stopped");
    }
}

/// Indices of the rungs of `planned` (in priority order) that fit in the transcoding
/// budget with what other streams' ladders take, each with the quality preset it fits
/// at (the ladder's, or cheaper: logged); the rest are refused with a log line saying
/// what the ladder needs, what is free, and what fits.
pub(super) fn admit(
    ctx: &Transcoding,
    stream: &str,
    want: &Want,
    quality: Quality,
    planned: &[Planned],
    fps: f64,
) -> Vec<(usize, Quality)> {
    let costs = &ctx.costs;
    let decode = costs.decode_cores(want.width, want.height, fps);
    let rungs: Vec<[f64; 3]> = planned
        .iter()
        .map(|p| {
            let rate = p.rung.max_fps.map_or(fps, |cap| cap.min(fps));
            costs.encode_cores_by_quality(p.width, p.height, rate)
        })
        .collect();
    let budget = ctx.abr.budget();
    let a = costs.admit(stream, budget, decode, &rungs, quality);
    ctx.metrics
        .abr_cores
        .with_label_values(&[stream])
        .set(a.cores);
    let (admitted, refused): (Vec<_>, Vec<_>) = planned
        .iter()
        .enumerate()
        .partition(|(i, _)| a.admitted.iter().any(|(j, _)| j == i));
    if !refused.is_empty() {
        let names = |ps: &[(usize, &Planned)]| {
            ps.iter()
                .map(|(_, p)| p.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let fits = if admitted.is_empty() {
            "nothing".to_string()
        } else {
            names(&admitted)
        };
        warn!(
            "ABR: the ladder needs {:.2} cores and {:.2} of the {budget:.2} for transcoding (abr.max_cpu) are free: refused {}; what fits: {fits}",
            a.wanted,
            a.free,
            names(&refused),
        );
        for (_, p) in &refused {
            set_running_metric(ctx, stream, &p.name, false);
        }
    }
    let lowered: Vec<String> = a
        .admitted
        .iter()
        .filter(|(_, q)| *q != quality)
        .map(|(i, q)| format!("{} at {q}", planned[*i].name))
        .collect();
    if !lowered.is_empty() {
        info!(
            "ABR: the machine cannot afford every rung at {} quality (abr.max_cpu): {}",
            quality,
            lowered.join(", ")
        );
    }
    a.admitted
}

/// Starts `slot`'s rung thread on a new queue, which it returns; marks the rung running.
/// `None` (logged) when the thread cannot start.
pub(super) fn start_rung(
    ctx: &Transcoding,
    stream: &str,
    slot: &mut Slot,
    fps: f64,
) -> Option<SyncSender<Job>> {
    let (tx, rx) = sync_channel::<Job>(RUNG_QUEUE);
    let (r, p, quality) = (slot.r.clone(), slot.planned.clone(), slot.quality);
    let (name, costs) = (stream.to_string(), ctx.costs.clone());
    *slot.r.quality.lock().unwrap_or_else(|e| e.into_inner()) = quality;
    slot.r.switch(None);
    // Running before the thread exists: a thread that fails at once marks it stopped.
    slot.r.running.store(true, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name(format!("rung-{}", p.name))
        .spawn(move || rung_thread(&name, &r, &p, fps, quality, &costs, rx));
    match spawned {
        Ok(t) => {
            set_running_metric(ctx, stream, &slot.r.name, true);
            slot.thread = Some(t);
            slot.stopped_at = None;
            Some(tx)
        }
        Err(e) => {
            warn!(rung = %slot.r.name, error = %e, "cannot start the rung's thread");
            slot.r.running.store(false, Ordering::Relaxed);
            None
        }
    }
}

pub(super) fn set_running_metric(ctx: &Transcoding, stream: &str, rung: &str, running: bool) {
    ctx.metrics
        .rendition_running
        .with_label_values(&[stream, rung])
        .set(i64::from(running));
}

/// The rendition `name` of `track`, created (hub and packager) on first use. A video
/// rung's segments follow the source's; the audio rendition cuts its own.
pub(super) fn rendition(
    ctx: &Transcoding,
    hub: &Arc<Hub>,
    source: &Arc<LiveStream>,
    renditions: &Renditions,
    name: &str,
    track: TrackId,
    life: &StreamLife,
) -> Arc<Rendition> {
    let mut list = renditions.list.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = list.iter().find(|r| r.name == name) {
        return r.clone();
    }
    let rung_hub = Hub::follower(hub, &format!("{}/{}", hub.name(), name));
    let leader = source.clone();
    let follow = Follow(Arc::new(move |dts| {
        let w = leader.read();
        w.cuts.iter().rev().find(|c| c.dts == dts).map(|c| c.msn)
    }));
    let output = packager::spawn_following(
        rung_hub.clone(),
        ctx.live.clone(),
        ctx.metrics.clone(),
        (track == TrackId::Video).then_some(follow),
        packager::Keys::Leader(source.clone()),
        life,
    );
    let r = Arc::new(Rendition {
        name: name.to_string(),
        track,
        hub: rung_hub,
        output,
        planned: Mutex::new(None),
        quality: Mutex::new(Quality::default()),
        switch_to: Mutex::new(None),
        running: AtomicBool::new(false),
    });
    list.push(r.clone());
    r
}

/// Drops rungs when the machine falls behind, lowest priority first.
pub(super) struct Shed {
    pub(super) ctx: Transcoding,
    pub(super) stream: String,
    pub(super) rungs: Vec<Arc<Rendition>>,
}

impl Shed {
    /// Drops the lowest-priority rung still running, saying why.
    pub(super) fn drop_lowest(&self, why: &str) {
        if let Some(r) = self.rungs.iter().rev().find(|r| r.running()) {
            r.running.store(false, Ordering::Relaxed);
            set_running_metric(&self.ctx, &self.stream, &r.name, false);
            warn!(rung = %r.name, "ABR: {why}; dropping the lowest-priority rung");
        }
    }

    pub(super) fn any_running(&self) -> bool {
        self.rungs.iter().any(|r| r.running())
    }
}
