//! What a capture source's pipeline ([`streambox::ingest::capture::pipeline`]) costs:
//! frames on standard input, as a V4L2 device delivers them (raw `YUYV`, or Motion-JPEG
//! one JPEG after another), converted and encoded as the running source does; prints
//! one JSON line with the CPU time the pipeline took. `bench/capture_cost.sh` runs it
//! beside ffmpeg doing the same. With `PCM`, a sound card's samples instead (16-bit
//! little-endian, interleaved), read 20 ms at a time and encoded to AAC-LC as a capture
//! source with sound does ([`streambox::transcode::aac::AacEncoder`]).
//!
//! ```sh
//! capture_cost YUYV|MJPG WIDTH HEIGHT FPS BITRATE < frames
//! capture_cost PCM RATE CHANNELS < samples
//! ```

use std::io::Read;
use std::time::Instant;
use streambox::ingest::capture::{choose, pipeline::Pipeline};
use streambox::system::hardware::v4l2::Negotiated;
use streambox::transcode::cost::thread_cpu_seconds;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [pcm, rate, channels] = args.as_slice() {
        anyhow::ensure!(
            pcm == "PCM",
            "usage: capture_cost PCM RATE CHANNELS < samples"
        );
        return sound(rate.parse()?, channels.parse()?);
    }
    let [fourcc, width, height, fps, bitrate] = args.as_slice() else {
        anyhow::bail!("usage: capture_cost YUYV|MJPG WIDTH HEIGHT FPS BITRATE < frames");
    };
    let fourcc = match fourcc.as_str() {
        "YUYV" => choose::YUYV,
        "MJPG" => choose::MJPG,
        other => anyhow::bail!("{other}: YUYV or MJPG"),
    };
    let (width, height): (u32, u32) = (width.parse()?, height.parse()?);
    let (fps, bitrate): (f64, u32) = (fps.parse()?, bitrate.parse()?);
    let format = Negotiated {
        fourcc,
        width,
        height,
        stride: if fourcc == choose::YUYV {
            width as usize * 2
        } else {
            0
        },
        rate: None,
    };
    let mut pipeline = Pipeline::new(format, bitrate, fps)?;
    let mut input = std::io::stdin().lock();
    let mut frames = 0u64;
    let (mut cpu, mut bytes, mut slowest) = (0.0f64, 0usize, 0.0f64);
    let mut push = |data: &[u8], frames: &mut u64| -> anyhow::Result<()> {
        let pts = (*frames as f64 * 90_000.0 / fps) as i64;
        let (c0, t0) = (thread_cpu_seconds(), Instant::now());
        let au = pipeline.push(data, pts)?;
        cpu += thread_cpu_seconds() - c0;
        slowest = slowest.max(t0.elapsed().as_secs_f64());
        bytes += au.map_or(0, |a| a.data.len());
        *frames += 1;
        Ok(())
    };
    if fourcc == choose::YUYV {
        let mut frame = vec![0u8; width as usize * height as usize * 2];
        while input.read_exact(&mut frame).is_ok() {
            push(&frame, &mut frames)?;
        }
    } else {
        // One JPEG runs from its start-of-image marker to the next one's.
        let mut all = Vec::new();
        input.read_to_end(&mut all)?;
        let mut starts: Vec<usize> = all
            .windows(3)
            .enumerate()
            .filter(|(_, w)| *w == [0xff, 0xd8, 0xff])
            .map(|(i, _)| i)
            .collect();
        starts.push(all.len());
        for s in starts.windows(2) {
            push(&all[s[0]..s[1]], &mut frames)?;
        }
    }
    let media = frames as f64 / fps;
    println!(
        "{{\"frames\": {frames}, \"media_s\": {media:.3}, \"cpu_s\": {cpu:.3}, \"bitrate\": {:.0}, \"slowest_frame_ms\": {:.1}}}",
        bytes as f64 * 8.0 / media.max(1e-9),
        slowest * 1000.0
    );
    Ok(())
}

/// The sound case: 20 ms reads of `channels` x 16-bit samples at `rate` Hz encoded to
/// AAC-LC; one JSON line as for pictures (`frames` are the reads).
fn sound(rate: u32, channels: u16) -> anyhow::Result<()> {
    let mut encoder = streambox::transcode::aac::AacEncoder::new(rate, channels)?;
    let read = rate as usize / 50 * usize::from(channels);
    let mut bytes = vec![0u8; read * 2];
    let mut samples = vec![0i16; read];
    let mut input = std::io::stdin().lock();
    let (mut reads, mut cpu, mut out, mut slowest) = (0i64, 0.0f64, 0usize, 0.0f64);
    while input.read_exact(&mut bytes).is_ok() {
        for (s, b) in samples.iter_mut().zip(bytes.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        let pts = reads * i64::from(rate) / 50;
        let (c0, t0) = (thread_cpu_seconds(), Instant::now());
        let aus = encoder.push(pts, &samples)?;
        cpu += thread_cpu_seconds() - c0;
        slowest = slowest.max(t0.elapsed().as_secs_f64());
        out += aus.iter().map(|(_, a)| a.len()).sum::<usize>();
        reads += 1;
    }
    let media = reads as f64 / 50.0;
    println!(
        "{{\"frames\": {reads}, \"media_s\": {media:.3}, \"cpu_s\": {cpu:.4}, \"bitrate\": {:.0}, \"slowest_frame_ms\": {:.2}}}",
        out as f64 * 8.0 / media.max(1e-9),
        slowest * 1000.0
    );
    Ok(())
}
