//! The audio rendition's thread: the source's AAC decoded, down-mixed to stereo and
//! resampled to 48 kHz where needed, and encoded again (fdk-aac).

use super::*;

/// Decodes the source's audio, downmixed to stereo, resampled to 48 kHz unless it is at
/// 44.1 or 48 kHz, and encodes it to AAC-LC into the audio rendition's hub, at the
/// source's times.
pub(super) fn audio_thread(stream: &str, r: &Rendition, rx: Receiver<Arc<Frame>>) {
    crate::transcode::cost::lower_thread_priority();
    let publisher = match r.hub.publish("transcoder") {
        Ok(p) => p,
        Err(e) => {
            warn!(%stream, error = %e, "audio rendition hub busy");
            return;
        }
    };
    let mut decoder: Option<(Arc<TrackParams>, AacDecoder)> = None;
    let mut encoder: Option<(AacEncoder, Arc<TrackParams>)> = None;
    let mut resampler: Option<(u32, usize, Resampler)> = None;
    let mut failures = 0u64;
    while let Ok(f) = rx.recv() {
        if !r.running() {
            break;
        }
        let TrackParams::Audio(config) = &*f.params else {
            continue;
        };
        if !decoder
            .as_ref()
            .is_some_and(|(p, _)| Arc::ptr_eq(p, &f.params))
        {
            match AacDecoder::new(config) {
                Ok(d) => decoder = Some((f.params.clone(), d)),
                Err(e) => {
                    warn!(%stream, error = %e, "audio rendition: the source's AAC does not decode");
                    decoder = None;
                    continue;
                }
            }
        }
        let Some((_, dec)) = decoder.as_mut() else {
            continue;
        };
        let (pcm, channels) = match dec.decode(&f.data) {
            Ok(x) => x,
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    warn!(%stream, error = %e, failures, "audio rendition: an access unit was rejected");
                }
                continue;
            }
        };
        let rate = if is_common_rate(config.sample_rate) {
            config.sample_rate
        } else {
            48_000
        };
        let (pts, pcm): (i64, std::borrow::Cow<'_, [i16]>) = if rate == config.sample_rate {
            (f.dts, pcm.into())
        } else {
            let fits = resampler
                .as_ref()
                .is_some_and(|(hz, ch, _)| *hz == config.sample_rate && *ch == channels);
            if !fits {
                match Resampler::new(config.sample_rate, rate, channels) {
                    Ok(x) => resampler = Some((config.sample_rate, channels, x)),
                    Err(e) => {
                        warn!(%stream, error = %e, "audio rendition resampler");
                        continue;
                    }
                }
            }
            let Some((_, _, rs)) = resampler.as_mut() else {
                continue;
            };
            match rs.push(f.dts, pcm) {
                Ok(Some((t, converted))) => (t, converted.into()),
                Ok(None) => continue,
                Err(e) => {
                    warn!(%stream, error = %e, "audio rendition: resampling failed");
                    resampler = None;
                    continue;
                }
            }
        };
        let fits = encoder.as_ref().is_some_and(|(e, _)| {
            let c = e.config();
            usize::from(c.channels) == channels && c.sample_rate == rate
        });
        if !fits {
            match AacEncoder::new(rate, channels as u16) {
                Ok(e) => {
                    let params = Arc::new(TrackParams::Audio(e.config().clone()));
                    publisher.set_params(params.clone());
                    encoder = Some((e, params));
                }
                Err(e) => {
                    warn!(%stream, error = %e, "audio rendition encoder");
                    continue;
                }
            }
        }
        let Some((enc, params)) = encoder.as_mut() else {
            continue;
        };
        match enc.push(pts, &pcm) {
            Ok(units) => {
                for (t, au) in units {
                    publisher.send(Frame {
                        track: TrackId::Audio,
                        dts: t,
                        cts: 0,
                        is_sync: true,
                        params: params.clone(),
                        data: au,
                        received: f.received,
                    });
                }
            }
            Err(e) => {
                warn!(%stream, error = %e, "audio rendition encoder failed; starting a new one");
                encoder = None;
            }
        }
    }
}
