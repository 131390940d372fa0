//! What transcoding costs on this machine, and admission of ABR ladders against the
//! budget (`abr.max_cpu`, 85 % of the cores by default).
//!
//! The model: decoding costs `decode` CPU-seconds per second of media per million
//! pixels per second of source (width × height × frame rate / 10⁶), and scaling plus
//! encoding a rung costs `encode[q]` per million pixels per second of the rung's output
//! at quality preset `q` ([`Quality`]). All start from a calibration run at start-up
//! (OpenH264 on a moving test pattern, on a thread of its own) and follow what the
//! running threads measure of themselves (their own CPU clocks), so they fit this
//! machine and the content it carries.
//!
//! Admission takes a ladder's rungs in priority order, each at the ladder's preset, or
//! at the dearest cheaper one that fits, or not at all: a machine that can afford the
//! quality asked for gets it, and one that cannot keeps real time with cheaper rungs
//! before it drops any.

use super::video::Quality;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Scheduling niceness of codec threads: below everything else in the service (and below
/// other processes on the box at the default 0), so a machine that cannot keep up takes
/// the time from the rungs, which are then dropped, never from ingest or packaging.
pub const CODEC_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`CODEC_NICE`] (Linux niceness is
/// per thread). A failure is logged and otherwise ignored.
pub fn lower_thread_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), CODEC_NICE) {
        tracing::warn!(error = %e, "cannot lower a codec thread's priority");
    }
}

/// CPU seconds used by the calling thread (CLOCK_THREAD_CPUTIME_ID).
pub fn thread_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Weight of a new measurement in the running estimate.
const SMOOTHING: f64 = 0.25;

#[derive(Debug)]
struct Model {
    /// CPU-s per media-s per Mpx/s of source, decoding.
    decode: f64,
    /// CPU-s per media-s per Mpx/s of output, scaling and encoding, by preset
    /// ([`Quality::index`]).
    encode: [f64; 3],
    /// Cores committed to each running ladder, by stream.
    committed: BTreeMap<String, f64>,
    /// Cores committed to each capture source's encoder, by source. These come first:
    /// a ladder is admitted in what they leave, and drops rungs when the machine is
    /// short; a capture source is refused only by other capture sources.
    ingest: BTreeMap<String, f64>,
}

/// The cost model and the cores committed to running ladders.
#[derive(Debug)]
pub struct Costs {
    model: Mutex<Model>,
}

impl Default for Costs {
    fn default() -> Self {
        // Until calibration: about what a 2-core x86-64 box with OpenH264's SIMD code
        // measures (1080p30 decode ≈ 0.2 core, 720p30 scale+encode ≈ 0.2 core at the
        // cheapest preset; balanced, with CABAC, about 1.3× that and best about 1.6×,
        // as bench/quality.sh measured them).
        Costs {
            model: Mutex::new(Model {
                decode: 0.0035,
                encode: [0.0075, 0.01, 0.012],
                committed: BTreeMap::new(),
                ingest: BTreeMap::new(),
            }),
        }
    }
}

/// Millions of pixels per second.
pub fn mpx_per_second(width: u32, height: u32, fps: f64) -> f64 {
    f64::from(width) * f64::from(height) * fps / 1e6
}

/// What one ladder was admitted with.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Indices of the rungs admitted, in priority order, each with the preset it was
    /// admitted at.
    pub admitted: Vec<(usize, Quality)>,
    /// Estimated cores of the admitted work (decoding included when any rung is).
    pub cores: f64,
    /// Estimated cores the whole ladder would need at the preset asked for.
    pub wanted: f64,
    /// Cores free for this stream's ladder before it started.
    pub free: f64,
}

impl Costs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Estimated cores to decode a `width`×`height` source at `fps`.
    pub fn decode_cores(&self, width: u32, height: u32, fps: f64) -> f64 {
        self.lock().decode * mpx_per_second(width, height, fps)
    }

    /// Estimated cores to scale and encode a `width`×`height` rung at `fps` at
    /// `quality`.
    pub fn encode_cores(&self, width: u32, height: u32, fps: f64, quality: Quality) -> f64 {
        self.lock().encode[quality.index()] * mpx_per_second(width, height, fps)
    }

    /// [`Costs::encode_cores`] at every preset, by [`Quality::index`].
    pub fn encode_cores_by_quality(&self, width: u32, height: u32, fps: f64) -> [f64; 3] {
        let m = self.lock();
        m.encode.map(|c| c * mpx_per_second(width, height, fps))
    }

    /// Takes in a decoder's measurement: `cpu` seconds for `media` seconds of a source
    /// of `mpx` million pixels per second.
    pub fn measured_decode(&self, cpu: f64, media: f64, mpx: f64) {
        if let Some(c) = per_mpx(cpu, media, mpx) {
            let mut m = self.lock();
            m.decode += SMOOTHING * (c - m.decode);
        }
    }

    /// Takes in a rung's measurement at `quality`, as [`Costs::measured_decode`].
    pub fn measured_encode(&self, quality: Quality, cpu: f64, media: f64, mpx: f64) {
        if let Some(c) = per_mpx(cpu, media, mpx) {
            let mut m = self.lock();
            let e = &mut m.encode[quality.index()];
            *e += SMOOTHING * (c - *e);
        }
    }

    /// Sets the coefficients (calibration): decoding, and encoding by preset.
    pub fn set(&self, decode: f64, encode: [f64; 3]) {
        let mut m = self.lock();
        m.decode = decode;
        m.encode = encode;
    }

    /// The coefficients: decoding, and encoding by preset.
    pub fn coefficients(&self) -> (f64, [f64; 3]) {
        let m = self.lock();
        (m.decode, m.encode)
    }

    /// Admits `rungs` (each one's estimated cores at every preset, by
    /// [`Quality::index`], in priority order) one by one while they fit, with decoding
    /// (`decode` cores), in what `budget` leaves after the other streams' ladders: each
    /// at `quality`, or at the dearest cheaper preset that fits; a rung that does not
    /// fit even at the cheapest is passed over for the ones after it. Commits the
    /// result for `stream` (replacing what it had).
    pub fn admit(
        &self,
        stream: &str,
        budget: f64,
        decode: f64,
        rungs: &[[f64; 3]],
        quality: Quality,
    ) -> Admission {
        let mut m = self.lock();
        m.committed.remove(stream);
        let free = budget - m.committed.values().sum::<f64>() - m.ingest.values().sum::<f64>();
        let wanted = decode + rungs.iter().map(|c| c[quality.index()]).sum::<f64>();
        let mut cores = decode;
        let mut admitted = Vec::new();
        for (i, c) in rungs.iter().enumerate() {
            if let Some(q) = quality.and_cheaper().find(|q| cores + c[q.index()] <= free) {
                cores += c[q.index()];
                admitted.push((i, q));
            }
        }
        if admitted.is_empty() {
            cores = 0.0;
        }
        m.committed.insert(stream.to_string(), cores);
        Admission {
            admitted,
            cores,
            wanted,
            free,
        }
    }

    /// Releases what `stream`'s ladder had committed.
    pub fn release(&self, stream: &str) {
        self.lock().committed.remove(stream);
    }

    /// Sets what `stream`'s ladder takes now (`cores`), after rungs were dropped or
    /// started again.
    pub fn commit(&self, stream: &str, cores: f64) {
        self.lock().committed.insert(stream.to_string(), cores);
    }

    /// Cores of `budget` not committed to other streams' ladders or to capture sources.
    pub fn free_for(&self, stream: &str, budget: f64) -> f64 {
        let m = self.lock();
        budget
            - m.committed
                .iter()
                .filter(|(s, _)| s.as_str() != stream)
                .map(|(_, c)| c)
                .sum::<f64>()
            - m.ingest.values().sum::<f64>()
    }

    /// Commits `cores` to capture source `source`'s encoder (replacing what it had) if
    /// they fit in what `budget` leaves after the other capture sources; ladders are not
    /// counted, they make room by dropping rungs.
    ///
    /// # Errors
    /// The cores free for it, when `cores` do not fit.
    pub fn admit_ingest(&self, source: &str, budget: f64, cores: f64) -> Result<(), f64> {
        let mut m = self.lock();
        m.ingest.remove(source);
        let free = budget - m.ingest.values().sum::<f64>();
        if cores > free {
            return Err(free.max(0.0));
        }
        m.ingest.insert(source.to_string(), cores);
        Ok(())
    }

    /// Sets what capture source `source` takes now (its encoder's measured `cores`);
    /// `None` releases it.
    pub fn commit_ingest(&self, source: &str, cores: Option<f64>) {
        let mut m = self.lock();
        match cores {
            Some(c) => m.ingest.insert(source.to_string(), c),
            None => m.ingest.remove(source),
        };
    }
}

fn per_mpx(cpu: f64, media: f64, mpx: f64) -> Option<f64> {
    (cpu >= 0.0 && media > 0.5 && mpx > 0.0).then(|| cpu / media / mpx)
}

/// Measures the coefficients on this machine: 2 s of a 640x360 moving pattern at 30
/// fps, scaled to 480x270 and encoded at each preset, then decoded. Blocking (about
/// two seconds). Returns (decode, encode by [`Quality::index`]).
///
/// # Errors
/// A codec that does not start.
pub fn calibrate() -> Result<(f64, [f64; 3]), super::video::VideoError> {
    use super::video::{Picture, Scaler, VideoDecoder, VideoEncoder};
    const FRAMES: u32 = 60;
    let (w, h, fps) = (640, 360, 30.0);
    let pictures: Vec<Picture> = (0..FRAMES).map(|t| Picture::pattern(w, h, t)).collect();
    let mut big = VideoEncoder::new(1_000_000, fps)?;
    // The source to decode: the pattern at full size.
    let mut source = Vec::new();
    for (t, p) in pictures.iter().enumerate() {
        if let Some((au, config)) = big.encode(p, t % 60 == 0, t as u64 * 33)? {
            source.push((au, config));
        }
    }
    let media = f64::from(FRAMES) / fps;
    let mut encode = [0.0; 3];
    for q in Quality::ALL {
        let tuning = q.tuning();
        let mut scaler = Scaler::with_filter(480, 270, tuning.filter);
        let mut small = VideoEncoder::with_tuning(500_000, fps, &tuning)?;
        let start = thread_cpu_seconds();
        for (t, p) in pictures.iter().enumerate() {
            let s = scaler.scale(p)?;
            small.encode(&s, t % 60 == 0, t as u64 * 33)?;
        }
        encode[q.index()] = (thread_cpu_seconds() - start) / media / mpx_per_second(480, 270, fps);
    }
    let mut decoder = VideoDecoder::new()?;
    let mut config = None;
    let start = thread_cpu_seconds();
    for (t, (au, c)) in source.iter().enumerate() {
        if c.is_some() {
            config.clone_from(c);
        }
        if let Some(c) = &config {
            decoder.decode(
                c,
                &au.data,
                t as i64 * 3000,
                au.idr,
                std::time::Instant::now(),
            )?;
        }
    }
    decoder.flush();
    let decode = (thread_cpu_seconds() - start) / media / mpx_per_second(w, h, fps);
    Ok((decode, encode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rung that costs `c` cores at every preset.
    fn flat(c: &[f64]) -> Vec<[f64; 3]> {
        c.iter().map(|&c| [c; 3]).collect()
    }

    /// The indices admitted.
    fn which(a: &Admission) -> Vec<usize> {
        a.admitted.iter().map(|(i, _)| *i).collect()
    }

    #[test]
    fn admission_takes_what_fits_in_priority_order_after_other_streams() {
        let c = Costs::default();
        let q = Quality::Balanced;
        let a = c.admit("a", 2.0, 0.4, &flat(&[0.5, 0.3, 0.2]), q);
        assert_eq!(which(&a), [0, 1, 2]);
        assert!((a.cores - 1.4).abs() < 1e-9);
        // 0.6 left: decoding 0.4 and the first rung (0.5) do not fit; the second does.
        let b = c.admit("b", 2.0, 0.4, &flat(&[0.5, 0.1]), q);
        assert_eq!(which(&b), [1]);
        assert!((b.cores - 0.5).abs() < 1e-9);
        assert!((b.free - 0.6).abs() < 1e-9 && (b.wanted - 1.0).abs() < 1e-9);
        // Nothing fits: nothing is committed, not even decoding.
        let d = c.admit("d", 2.0, 0.4, &flat(&[0.5]), q);
        assert_eq!((which(&d), d.cores), (vec![], 0.0));
        // Restarting "a" replaces what it had committed.
        assert_eq!(
            which(&c.admit("a", 2.0, 0.4, &flat(&[0.5, 0.3]), q)),
            [0, 1]
        );
        c.release("a");
        c.release("d");
        assert_eq!(
            which(&c.admit("b", 2.0, 0.4, &flat(&[0.5, 0.1]), q)),
            [0, 1]
        );
        // A ladder that dropped a rung gives its cores back to the others.
        assert!((c.free_for("e", 2.0) - 1.0).abs() < 1e-9);
        c.commit("b", 0.5);
        assert!((c.free_for("e", 2.0) - 1.5).abs() < 1e-9);
        assert!((c.free_for("b", 2.0) - 2.0).abs() < 1e-9);
        // A capture source is admitted against other capture sources only, and ladders
        // are admitted in what it leaves.
        assert_eq!(c.admit_ingest("cam1", 2.0, 1.2), Ok(()));
        assert!((c.free_for("e", 2.0) - 0.3).abs() < 1e-9);
        assert_eq!(
            which(&c.admit("e", 2.0, 0.4, &flat(&[0.5]), q)),
            Vec::<usize>::new()
        );
        let free = c.admit_ingest("cam2", 2.0, 1.0).expect_err("does not fit");
        assert!((free - 0.8).abs() < 1e-9, "{free}");
        c.commit_ingest("cam1", Some(0.9));
        assert_eq!(c.admit_ingest("cam2", 2.0, 1.0), Ok(()));
        c.commit_ingest("cam1", None);
        c.commit_ingest("cam2", None);
        assert!((c.free_for("e", 2.0) - 1.5).abs() < 1e-9);
    }

    #[test]
    fn a_rung_the_machine_cannot_afford_at_its_preset_is_admitted_at_a_cheaper_one() {
        let c = Costs::default();
        // Efficient, balanced, best: 0.3, 0.4, 0.6 cores per rung.
        let rung = [0.3, 0.4, 0.6];
        // 1.5 free: decoding 0.2 and the first two rungs at best make 1.4; the third
        // would make 2.0 at best, 1.8 at balanced and 1.7 at efficient: passed over.
        let a = c.admit("a", 1.5, 0.2, &[rung, rung, rung], Quality::Best);
        assert_eq!(a.admitted, [(0, Quality::Best), (1, Quality::Best)]);
        assert!((a.cores - 1.4).abs() < 1e-9 && (a.wanted - 2.0).abs() < 1e-9);
        // With 1.3: the second drops to balanced (0.2 + 0.6 + 0.4), the third has no
        // room at any preset.
        let b = c.admit("a", 1.3, 0.2, &[rung, rung, rung], Quality::Best);
        assert_eq!(b.admitted, [(0, Quality::Best), (1, Quality::Balanced)]);
        // Never dearer than asked for, however much room there is.
        let e = c.admit("a", 8.0, 0.2, &[rung, rung], Quality::Efficient);
        assert_eq!(
            e.admitted,
            [(0, Quality::Efficient), (1, Quality::Efficient)]
        );
        assert!((e.cores - 0.8).abs() < 1e-9);
        // Each preset's measurements move only its own coefficient.
        let (_, before) = c.coefficients();
        for _ in 0..20 {
            c.measured_encode(Quality::Best, 1.0, 2.0, 10.0);
        }
        let (_, after) = c.coefficients();
        assert!((after[2] - 0.05).abs() < 0.001, "{after:?}");
        assert_eq!((after[0], after[1]), (before[0], before[1]));
    }

    #[test]
    fn measurements_move_the_model_and_calibration_measures_something() {
        let c = Costs::default();
        let before = c.decode_cores(1920, 1080, 30.0);
        for _ in 0..20 {
            c.measured_decode(1.0, 2.0, mpx_per_second(1920, 1080, 30.0));
        }
        let after = c.decode_cores(1920, 1080, 30.0);
        assert!((after - 0.5).abs() < 0.01, "{before} -> {after}");
        // A measurement over too little media does not count.
        let encode = c.encode_cores(1280, 720, 30.0, Quality::Balanced);
        c.measured_encode(Quality::Balanced, 1.0, 0.1, 1.0);
        assert_eq!(c.encode_cores(1280, 720, 30.0, Quality::Balanced), encode);
        // Calibration decodes and encodes real pictures and reports what that cost;
        // how much depends on the machine (the README's benchmark has the figures).
        let (d, e) = calibrate().expect("calibration");
        assert!(
            d.is_finite() && d > 0.0 && e.iter().all(|e| e.is_finite() && *e > 0.0),
            "{d} {e:?}"
        );
    }
}
