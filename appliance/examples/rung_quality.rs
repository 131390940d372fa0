//! One ABR rung made offline, for `bench/quality.sh`: I420 pictures on standard input
//! (`SRC_W`×`SRC_H`, as the rung's decoder hands them on), scaled and encoded as a rung
//! thread does ([`streambox::transcode::video::Scaler`] and
//! [`streambox::transcode::video::VideoEncoder`], with a
//! [`streambox::transcode::video::Tuning`]), an IDR every `GOP` pictures. The H.264
//! elementary stream (Annex B, ISO/IEC 14496-10 §B) goes to standard output; one JSON
//! line to standard error: pictures, CPU seconds of the scaler and of the encoder, and
//! the bitrate on average and in the busiest second (bit/s).
//!
//! ```sh
//! rung_quality SRC_W SRC_H FPS DST_W DST_H BITRATE GOP [complexity=2,filter=lanczos3,…] < i420 > rung.h264
//! ```

use std::io::{Read, Write};
use streambox::transcode::cost::thread_cpu_seconds;
use streambox::transcode::video::{Picture, Scaler, Tuning, VideoEncoder};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (fixed, settings) = match args.len() {
        7 => (&args[..], ""),
        8 => (&args[..7], args[7].as_str()),
        _ => anyhow::bail!(
            "usage: rung_quality SRC_W SRC_H FPS DST_W DST_H BITRATE GOP [SETTINGS] < i420 > rung.h264"
        ),
    };
    let n = |i: usize| -> anyhow::Result<u32> { Ok(fixed[i].parse()?) };
    let (sw, sh, dw, dh, bitrate, gop) = (n(0)?, n(1)?, n(3)?, n(4)?, n(5)?, n(6)?.max(1));
    let fps: f64 = fixed[2].parse()?;
    let tuning = Tuning::default()
        .with(settings)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut scaler = Scaler::with_filter(dw, dh, tuning.filter);
    let mut encoder = VideoEncoder::with_tuning(bitrate, fps, &tuning)?;
    let (luma, chroma) = (
        sw as usize * sh as usize,
        sw.div_ceil(2) as usize * sh.div_ceil(2) as usize,
    );
    let mut frame = vec![0u8; luma + 2 * chroma];
    let mut input = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut pictures, mut scale_cpu, mut encode_cpu) = (0u64, 0.0f64, 0.0f64);
    let mut avc: Option<streambox::media::h264::AvcConfig> = None;
    // Bytes of each second of pictures (`fps` pictures).
    let mut seconds: Vec<usize> = Vec::new();
    while input.read_exact(&mut frame).is_ok() {
        let picture = Picture {
            width: sw,
            height: sh,
            y: frame[..luma].to_vec(),
            u: frame[luma..luma + chroma].to_vec(),
            v: frame[luma + chroma..].to_vec(),
        };
        let c0 = thread_cpu_seconds();
        let small = scaler.scale(&picture)?;
        let c1 = thread_cpu_seconds();
        let pts_ms = (pictures as f64 * 1000.0 / fps) as u64;
        let encoded = encoder.encode(&small, pictures % u64::from(gop) == 0, pts_ms)?;
        encode_cpu += thread_cpu_seconds() - c1;
        scale_cpu += c1 - c0;
        let second = (pictures as f64 / fps) as usize;
        if seconds.len() <= second {
            seconds.resize(second + 1, 0);
        }
        pictures += 1;
        let Some((au, config)) = encoded else {
            continue;
        };
        if config.is_some() {
            avc = config;
        }
        let current = avc
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the first picture came without SPS and PPS"))?;
        out.write_all(&current.annex_b(&au.data, au.idr)?)?;
        seconds[second] += au.data.len();
    }
    out.flush()?;
    let media = pictures as f64 / fps;
    // The busiest whole second (a last, partial one would read low, never high).
    let peak = seconds
        .iter()
        .take((media.floor() as usize).max(1))
        .max()
        .copied()
        .unwrap_or(0) as f64
        * 8.0;
    let total: usize = seconds.iter().sum();
    eprintln!(
        "{{\"pictures\": {pictures}, \"media_s\": {media:.3}, \"scale_cpu_s\": {scale_cpu:.3}, \"encode_cpu_s\": {encode_cpu:.3}, \"bitrate\": {:.0}, \"peak_second_bitrate\": {peak:.0}}}",
        total as f64 * 8.0 / media.max(1e-9)
    );
    Ok(())
}
