//! Reading our CMAF segments back, and writing progressive MP4 (ISO/IEC 14496-12) from
//! them: the sample tables of every track in a `moov` ahead of one `mdat`, so a file
//! plays and seeks in any player before it has fully arrived.
//!
//! - [`read_init`] takes an init segment apart: the `stsd` box (kept verbatim: `avc1`/
//!   `avcC`, `mp4a`/`esds`), the timescale (`mdhd`), the handler and the picture size.
//! - [`read_fragments`] lists the samples of `moof` + `mdat` fragments (§8.8): per sample
//!   its byte range in the file, duration, composition offset and whether it is a sync
//!   sample, from `tfdt`, `tfhd` and `trun` with any of their optional fields.
//! - [`progressive_header`] writes `ftyp` + `moov` + the `mdat` header for tracks whose
//!   samples follow in chunks, with 64-bit chunk offsets (`co64`).

use super::fmp4::{handler_and_media_header, BoxWriter};
use bytes::Bytes;

/// A box that is not where or what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    /// A box overruns its parent or the data.
    #[error("truncated or overlong box at byte {0}")]
    Truncated(usize),
    /// A box the format requires is missing.
    #[error("no {0} box")]
    Missing(&'static str),
    /// A value outside what this reader supports.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// The boxes directly inside `data`: (fourcc, body start, body end), in order.
fn boxes(data: &[u8], base: usize) -> Result<Vec<([u8; 4], usize, usize)>, Mp4Error> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let at = base + pos;
        let head = data.get(pos..pos + 8).ok_or(Mp4Error::Truncated(at))?;
        let mut size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let kind = [head[4], head[5], head[6], head[7]];
        let mut header = 8;
        if size == 1 {
            let large = data.get(pos + 8..pos + 16).ok_or(Mp4Error::Truncated(at))?;
            size = u64::from_be_bytes(large.try_into().map_err(|_| Mp4Error::Truncated(at))?);
            header = 16;
        } else if size == 0 {
            size = (data.len() - pos) as u64;
        }
        let size = usize::try_from(size).map_err(|_| Mp4Error::Truncated(at))?;
        if size < header || pos + size > data.len() {
            return Err(Mp4Error::Truncated(at));
        }
        out.push((kind, base + pos + header, base + pos + size));
        pos += size;
    }
    Ok(out)
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4], name: &'static str) -> Result<&'a [u8], Mp4Error> {
    boxes(data, 0)?
        .into_iter()
        .find(|b| &b.0 == kind)
        .map(|b| &data[b.1..b.2])
        .ok_or(Mp4Error::Missing(name))
}

fn be32(d: &[u8], at: usize) -> Result<u32, Mp4Error> {
    d.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(Mp4Error::Truncated(at))
}

fn be64(d: &[u8], at: usize) -> Result<u64, Mp4Error> {
    Ok((u64::from(be32(d, at)?) << 32) | u64::from(be32(d, at + 4)?))
}

/// What a progressive file needs from one track's init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInfo {
    /// `vide` or `soun`.
    pub handler: [u8; 4],
    /// Ticks per second (`mdhd`).
    pub timescale: u32,
    /// Picture size in pixels (`tkhd`, 16.16 fixed point there); 0 for audio.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// The whole `stsd` box, header included.
    pub stsd: Bytes,
}

/// Reads an init segment (`ftyp` + `moov` with one `trak`).
///
/// # Errors
/// [`Mp4Error`] when a box is missing or truncated.
pub fn read_init(data: &[u8]) -> Result<InitInfo, Mp4Error> {
    let moov = child(data, b"moov", "moov")?;
    let trak = child(moov, b"trak", "trak")?;
    let tkhd = child(trak, b"tkhd", "tkhd")?;
    let v1 = tkhd.first() == Some(&1);
    let size_at = if v1 { 88 } else { 76 };
    let (width, height) = (be32(tkhd, size_at)? >> 16, be32(tkhd, size_at + 4)? >> 16);
    let mdia = child(trak, b"mdia", "mdia")?;
    let mdhd = child(mdia, b"mdhd", "mdhd")?;
    let timescale = be32(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 })?;
    let hdlr = child(mdia, b"hdlr", "hdlr")?;
    let handler: [u8; 4] = hdlr
        .get(8..12)
        .and_then(|h| h.try_into().ok())
        .ok_or(Mp4Error::Truncated(8))?;
    let stbl = child(child(mdia, b"minf", "minf")?, b"stbl", "stbl")?;
    let stsd = child(stbl, b"stsd", "stsd")?;
    let mut whole = Vec::with_capacity(stsd.len() + 8);
    whole.extend_from_slice(&((stsd.len() + 8) as u32).to_be_bytes());
    whole.extend_from_slice(b"stsd");
    whole.extend_from_slice(stsd);
    if timescale == 0 {
        return Err(Mp4Error::Unsupported("timescale 0"));
    }
    Ok(InitInfo {
        handler,
        timescale,
        width,
        height,
        stsd: Bytes::from(whole),
    })
}

/// The AVCDecoderConfigurationRecord inside an `avc1` sample entry of `stsd` (the body
/// of its `avcC` box), if there is one.
pub fn avc_record(stsd: &[u8]) -> Option<Bytes> {
    let at = stsd.windows(4).position(|w| w == b"avcC")?;
    let size = be32(stsd, at.checked_sub(4)?).ok()? as usize;
    let body = stsd.get(at + 4..(at - 4).checked_add(size)?)?;
    Some(Bytes::copy_from_slice(body))
}

/// The AudioSpecificConfig inside an `mp4a` sample entry of `stsd`: the
/// DecoderSpecificInfo (tag 5) of the DecoderConfigDescriptor (tag 4) of the
/// ES_Descriptor (tag 3) in its `esds` box (ISO/IEC 14496-1 §7.2.6), if there is one.
pub fn aac_record(stsd: &[u8]) -> Option<Bytes> {
    let at = stsd.windows(4).position(|w| w == b"esds")?;
    let size = be32(stsd, at.checked_sub(4)?).ok()? as usize;
    // The box body after its version and flags.
    let body = stsd.get(at + 8..(at - 4).checked_add(size)?)?;
    // One descriptor at `d`: (tag, payload).
    fn descriptor(d: &[u8]) -> Option<(u8, &[u8])> {
        let (&tag, mut rest) = d.split_first()?;
        let mut len = 0usize;
        for _ in 0..4 {
            let (&b, r) = rest.split_first()?;
            rest = r;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Some((tag, rest.get(..len)?));
            }
        }
        None
    }
    let (tag, es) = descriptor(body)?;
    if tag != 0x03 {
        return None;
    }
    // ES_ID, then flags that announce optional fields (§7.2.6.5.1).
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR_ES_Id
    }
    let (tag, dcd) = descriptor(es.get(at..)?)?;
    if tag != 0x04 {
        return None;
    }
    // objectTypeIndication, streamType, bufferSizeDB, maxBitrate, avgBitrate.
    let (tag, dsi) = descriptor(dcd.get(13..)?)?;
    (tag == 0x05).then(|| Bytes::copy_from_slice(dsi))
}

/// The codec parameters of the one track of an init segment: H.264 from its `avcC`,
/// AAC from its `esds`.
///
/// # Errors
/// [`Mp4Error`] when a box is missing or truncated, or the track is neither.
pub fn track_params(init: &[u8]) -> Result<super::TrackParams, Mp4Error> {
    let info = read_init(init)?;
    match &info.handler {
        b"vide" => {
            let record = avc_record(&info.stsd).ok_or(Mp4Error::Missing("avcC"))?;
            super::h264::AvcConfig::parse(record)
                .map(super::TrackParams::Video)
                .map_err(|_| Mp4Error::Unsupported("H.264 parameters"))
        }
        b"soun" => {
            let asc = aac_record(&info.stsd).ok_or(Mp4Error::Missing("esds"))?;
            super::aac::AudioConfig::parse(asc)
                .map(super::TrackParams::Audio)
                .map_err(|_| Mp4Error::Unsupported("AAC parameters"))
        }
        _ => Err(Mp4Error::Unsupported(
            "a track that is neither video nor audio",
        )),
    }
}

/// The samples of the fragments in `data` ([`read_fragments`]), their bytes shared
/// with `data`, and the decode time of the first, in ticks (0 when there is none).
///
/// # Errors
/// As [`read_fragments`].
pub fn samples(data: &Bytes) -> Result<(u64, Vec<super::fmp4::Sample>), Mp4Error> {
    let refs = read_fragments(data)?;
    let first = refs.first().map_or(0, |s| s.dts);
    let samples = refs
        .iter()
        .map(|s| super::fmp4::Sample {
            duration: s.duration,
            cts: s.cts,
            is_sync: s.sync,
            // read_fragments checked each sample lies within the data.
            data: data.slice(s.offset as usize..(s.offset + u64::from(s.size)) as usize),
        })
        .collect();
    Ok((first, samples))
}

/// One sample of a fragmented file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRef {
    /// Byte offset of the sample in the file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u32,
    /// Decode time, ticks (from `tfdt` and the durations before it).
    pub dts: u64,
    /// Duration, ticks.
    pub duration: u32,
    /// Composition offset, ticks.
    pub cts: i32,
    /// A sync sample (random access point).
    pub sync: bool,
}

/// Lists the samples of the fragments (`moof` + `mdat`) in `data`: one track, with
/// `tfdt` and `default-base-is-moof` or explicit base offsets, as CMAF requires.
///
/// # Errors
/// [`Mp4Error`] for a truncated box, a missing `tfdt`, or samples outside the file.
pub fn read_fragments(data: &[u8]) -> Result<Vec<SampleRef>, Mp4Error> {
    let mut out = Vec::new();
    for (kind, start, end) in boxes(data, 0)? {
        if &kind != b"moof" {
            continue;
        }
        let moof_start = (start - 8) as u64;
        let moof = &data[start..end];
        for (k, s, e) in boxes(moof, start)? {
            if &k != b"traf" {
                continue;
            }
            let traf = &data[s..e];
            let tfhd = child(traf, b"tfhd", "tfhd")?;
            let tf_flags = be32(tfhd, 0)? & 0x00ff_ffff;
            let mut at = 8; // version/flags, track_ID
            let mut base = moof_start;
            if tf_flags & 0x01 != 0 {
                base = be64(tfhd, at)?;
                at += 8;
            }
            if tf_flags & 0x02 != 0 {
                at += 4; // sample_description_index
            }
            let default_duration = if tf_flags & 0x08 != 0 {
                let d = be32(tfhd, at)?;
                at += 4;
                d
            } else {
                0
            };
            let default_size = if tf_flags & 0x10 != 0 {
                let d = be32(tfhd, at)?;
                at += 4;
                d
            } else {
                0
            };
            let default_flags = if tf_flags & 0x20 != 0 {
                be32(tfhd, at)?
            } else {
                0
            };
            let tfdt = child(traf, b"tfdt", "tfdt")?;
            let mut dts = if tfdt.first() == Some(&1) {
                be64(tfdt, 4)?
            } else {
                u64::from(be32(tfdt, 4)?)
            };
            for (tk, ts, te) in boxes(traf, s)? {
                if &tk != b"trun" {
                    continue;
                }
                let trun = &data[ts..te];
                let version = trun.first().copied().unwrap_or(0);
                let flags = be32(trun, 0)? & 0x00ff_ffff;
                let count = be32(trun, 4)? as usize;
                let mut at = 8;
                let mut offset = base;
                if flags & 0x001 != 0 {
                    offset = base.wrapping_add_signed(i64::from(be32(trun, at)? as i32));
                    at += 4;
                }
                let first_flags = if flags & 0x004 != 0 {
                    let f = be32(trun, at)?;
                    at += 4;
                    Some(f)
                } else {
                    None
                };
                let per = [0x100, 0x200, 0x400, 0x800]
                    .iter()
                    .filter(|b| flags & *b != 0)
                    .count()
                    * 4;
                if count.saturating_mul(per) > trun.len() {
                    return Err(Mp4Error::Truncated(ts));
                }
                for i in 0..count {
                    let mut read = |bit: u32, default: u32| -> Result<u32, Mp4Error> {
                        if flags & bit != 0 {
                            let v = be32(trun, at)?;
                            at += 4;
                            Ok(v)
                        } else {
                            Ok(default)
                        }
                    };
                    let duration = read(0x100, default_duration)?;
                    let size = read(0x200, default_size)?;
                    let mut sflags = read(0x400, default_flags)?;
                    if i == 0 {
                        sflags = first_flags.unwrap_or(sflags);
                    }
                    let raw_cts = read(0x800, 0)?;
                    let cts = if version == 0 {
                        raw_cts.min(i32::MAX as u32) as i32
                    } else {
                        raw_cts as i32
                    };
                    if offset + u64::from(size) > data.len() as u64 {
                        return Err(Mp4Error::Truncated(offset as usize));
                    }
                    out.push(SampleRef {
                        offset,
                        size,
                        dts,
                        duration,
                        cts,
                        // sample_is_non_sync_sample is bit 16 of sample_flags.
                        sync: sflags & 0x0001_0000 == 0,
                    });
                    offset += u64::from(size);
                    dts += u64::from(duration);
                }
            }
        }
    }
    Ok(out)
}

/// One track of a progressive file: its init information, its samples in order, and its
/// chunks as `(number of samples, offset of the chunk within the mdat payload)`.
#[derive(Debug, Clone)]
pub struct TrackTable {
    /// From the init segment.
    pub init: InitInfo,
    /// `(size, duration, cts, sync)` of each sample.
    pub samples: Vec<(u32, u32, i32, bool)>,
    /// `(samples in the chunk, byte offset in the mdat payload)`, in order.
    pub chunks: Vec<(u32, u64)>,
}

/// `ftyp`, `moov` and the header of an `mdat` whose payload is `payload_len` bytes: the
/// chunks of every track, at the offsets their [`TrackTable::chunks`] give within the
/// payload. The samples follow in that order; nothing else is needed to play the file.
pub fn progressive_header(tracks: &[TrackTable], payload_len: u64) -> Vec<u8> {
    // The moov's size does not depend on the chunk offsets (co64), so write it once with
    // a base of zero to measure, then for real.
    let measure = header_with(tracks, payload_len, 0);
    header_with(tracks, payload_len, measure.len() as u64)
}

/// The header with chunk offsets counted from `payload_at`, the header's own length
/// (the `mdat` header included), once known.
fn header_with(tracks: &[TrackTable], payload_len: u64, payload_at: u64) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.ftyp(b"isom", 0x200, &[b"isom", b"iso2", b"avc1", b"mp41"]);
    const MOVIE_TIMESCALE: u64 = 1000;
    let duration_of = |t: &TrackTable| t.samples.iter().map(|s| u64::from(s.1)).sum::<u64>();
    let movie_duration = tracks
        .iter()
        .map(|t| duration_of(t) * MOVIE_TIMESCALE / u64::from(t.init.timescale.max(1)))
        .max()
        .unwrap_or(0);
    w.start(b"moov");
    w.start_full(b"mvhd", 1, 0);
    w.u64(0);
    w.u64(0);
    w.u32(MOVIE_TIMESCALE as u32);
    w.u64(movie_duration);
    w.u32(0x0001_0000);
    w.u16(0x0100);
    w.zeros(10);
    w.matrix();
    w.zeros(24);
    w.u32(tracks.len() as u32 + 1);
    w.end();
    for (i, t) in tracks.iter().enumerate() {
        let video = &t.init.handler == b"vide";
        let media_duration = duration_of(t);
        w.start(b"trak");
        w.start_full(b"tkhd", 1, 0x3);
        w.u64(0);
        w.u64(0);
        w.u32(i as u32 + 1);
        w.u32(0);
        w.u64(media_duration * MOVIE_TIMESCALE / u64::from(t.init.timescale.max(1)));
        w.zeros(8);
        w.u16(0);
        w.u16(0);
        w.u16(if video { 0 } else { 0x0100 });
        w.u16(0);
        w.matrix();
        w.u32(t.init.width << 16);
        w.u32(t.init.height << 16);
        w.end();
        w.start(b"mdia");
        w.start_full(b"mdhd", 1, 0);
        w.u64(0);
        w.u64(0);
        w.u32(t.init.timescale);
        w.u64(media_duration);
        w.u16(0x55c4);
        w.u16(0);
        w.end();
        handler_and_media_header(&mut w, video);
        w.start(b"stbl");
        w.bytes(&t.init.stsd);
        // stts: runs of equal durations.
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for s in &t.samples {
            match runs.last_mut() {
                Some((n, d)) if *d == s.1 => *n += 1,
                _ => runs.push((1, s.1)),
            }
        }
        w.start_full(b"stts", 0, 0);
        w.u32(runs.len() as u32);
        for (n, d) in &runs {
            w.u32(*n);
            w.u32(*d);
        }
        w.end();
        if t.samples.iter().any(|s| s.2 != 0) {
            let negative = t.samples.iter().any(|s| s.2 < 0);
            let mut runs: Vec<(u32, i32)> = Vec::new();
            for s in &t.samples {
                match runs.last_mut() {
                    Some((n, c)) if *c == s.2 => *n += 1,
                    _ => runs.push((1, s.2)),
                }
            }
            w.start_full(b"ctts", u8::from(negative), 0);
            w.u32(runs.len() as u32);
            for (n, c) in &runs {
                w.u32(*n);
                w.u32(*c as u32);
            }
            w.end();
        }
        if t.samples.iter().any(|s| !s.3) {
            let syncs: Vec<u32> = (1..=t.samples.len() as u32)
                .filter(|i| t.samples[*i as usize - 1].3)
                .collect();
            w.start_full(b"stss", 0, 0);
            w.u32(syncs.len() as u32);
            for i in syncs {
                w.u32(i);
            }
            w.end();
        }
        // stsc: one entry per run of chunks with the same sample count.
        let mut stsc: Vec<(u32, u32)> = Vec::new();
        for (i, (n, _)) in t.chunks.iter().enumerate() {
            if stsc.last().is_none_or(|(_, m)| m != n) {
                stsc.push((i as u32 + 1, *n));
            }
        }
        w.start_full(b"stsc", 0, 0);
        w.u32(stsc.len() as u32);
        for (first, n) in stsc {
            w.u32(first);
            w.u32(n);
            w.u32(1);
        }
        w.end();
        w.start_full(b"stsz", 0, 0);
        w.u32(0);
        w.u32(t.samples.len() as u32);
        for s in &t.samples {
            w.u32(s.0);
        }
        w.end();
        w.start_full(b"co64", 0, 0);
        w.u32(t.chunks.len() as u32);
        for (_, off) in &t.chunks {
            w.u64(payload_at + off);
        }
        w.end();
        w.end(); // stbl
        w.end(); // minf
        w.end(); // mdia
        w.end(); // trak
    }
    w.end(); // moov
    if payload_len + 8 > u64::from(u32::MAX) {
        w.u32(1);
        w.bytes(b"mdat");
        w.u64(payload_len + 16);
    } else {
        w.u32((payload_len + 8) as u32);
        w.bytes(b"mdat");
    }
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::AudioConfig;
    use crate::media::fmp4::{fragment, init_segment, Sample};
    use crate::media::h264::{tests::BBB_AVCC, AvcConfig};
    use crate::media::{TrackId, TrackParams};

    #[test]
    fn our_fragments_read_back() {
        let init = init_segment(&TrackParams::Video(
            AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("avcC"),
        ));
        let info = read_init(&init).expect("init");
        assert_eq!(
            (&info.handler, info.timescale, info.width, info.height),
            (b"vide", 90_000, 1280, 720)
        );
        assert_eq!(avc_record(&info.stsd).as_deref(), Some(BBB_AVCC));
        let samples: Vec<Sample> = (0..3)
            .map(|i| Sample {
                duration: 3600,
                cts: if i == 1 { 7200 } else { -3600 },
                is_sync: i == 0,
                data: Bytes::from(vec![i as u8; 10 + i]),
            })
            .collect();
        let mut file = fragment(1, TrackId::Video, 90_000, &samples[..2]).to_vec();
        file.extend_from_slice(&fragment(2, TrackId::Video, 97_200, &samples[2..]));
        let got = read_fragments(&file).expect("read");
        assert_eq!(got.len(), 3);
        assert_eq!(
            got.iter().map(|s| s.dts).collect::<Vec<_>>(),
            [90_000, 93_600, 97_200]
        );
        assert_eq!(
            got.iter().map(|s| s.cts).collect::<Vec<_>>(),
            [-3600, 7200, -3600]
        );
        assert_eq!(
            got.iter().map(|s| s.sync).collect::<Vec<_>>(),
            [true, false, false]
        );
        for (s, want) in got.iter().zip(&samples) {
            assert_eq!(
                &file[s.offset as usize..(s.offset + u64::from(s.size)) as usize],
                &want.data[..]
            );
        }
        // Truncation anywhere is an error, never a panic.
        for n in 0..file.len() {
            let _ = read_fragments(&file[..n]);
        }
        let audio = init_segment(&TrackParams::Audio(
            AudioConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc"),
        ));
        assert_eq!(read_init(&audio).expect("audio").timescale, 48_000);
        assert!(read_init(&audio[..audio.len() - 5]).is_err());
    }

    #[test]
    fn track_parameters_and_samples_read_back_from_our_files() {
        let video =
            TrackParams::Video(AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("avcC"));
        let audio =
            TrackParams::Audio(AudioConfig::parse(Bytes::from_static(&[0x11, 0xb0])).expect("asc"));
        for params in [&video, &audio] {
            let init = init_segment(params);
            assert_eq!(track_params(&init).as_ref(), Ok(params));
            // Truncated anywhere: an error, never a panic.
            for n in 0..init.len() {
                assert!(track_params(&init[..n]).is_err(), "{n} bytes");
            }
        }
        // An esds with no DecoderSpecificInfo, and no esds at all.
        assert_eq!(aac_record(b"\0\0\0\x11esds\0\0\0\0\x03\x03\0\0\0"), None);
        assert_eq!(aac_record(b"nothing here"), None);

        let samples: Vec<Sample> = (0..3)
            .map(|i| Sample {
                duration: 1024,
                cts: 0,
                is_sync: true,
                data: Bytes::from(vec![i as u8 + 1; 7 + i]),
            })
            .collect();
        let mut file = fragment(7, TrackId::Audio, 48_000, &samples[..1]).to_vec();
        file.extend_from_slice(&fragment(8, TrackId::Audio, 49_024, &samples[1..]));
        let (first, got) = super::samples(&Bytes::from(file)).expect("samples");
        assert_eq!(first, 48_000);
        assert_eq!(got.len(), 3);
        for (g, want) in got.iter().zip(&samples) {
            assert_eq!(
                (g.duration, g.cts, g.is_sync, &g.data),
                (1024, 0, true, &want.data)
            );
        }
    }
}
