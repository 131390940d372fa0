//! CMAF (ISO/IEC 23000-19) fragmented MP4 muxing, one track per file: init segments
//! (`ftyp` + `moov`) and fragments (`moof` + `mdat`), boxes per ISO/IEC 14496-12 and
//! sample entries per ISO/IEC 14496-15 §5.4 (`avc1`/`avcC`) and ISO/IEC 14496-14 §5.6
//! (`mp4a`/`esds`).
//!
//! Tracks may also be written protected with Common Encryption (ISO/IEC 23001-7, the
//! `cenc` scheme): [`protected_init_segment`] (`encv`/`enca` with `sinf`, and a `pssh`)
//! and [`protected_fragment`] (`saiz`, `saio` and `senc` in the `traf`). The cipher is
//! not here ([`crate::protect::cenc`]): these only lay out the boxes.
//!
//! A fragment is one LL-HLS partial segment; a segment is its fragments concatenated.
//! `tfdt` precedes `trun` (Safari insists), and `trun` is version 1 so composition offsets
//! may be negative.

use super::{TrackId, TrackParams};
use bytes::Bytes;

/// One sample (access unit) of a fragment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Duration in track timescale ticks.
    pub duration: u32,
    /// Composition offset `pts - dts` in ticks.
    pub cts: i32,
    /// Random access point (IDR); every audio sample is one.
    pub is_sync: bool,
    /// The sample bytes: AVCC NAL units or one raw AAC access unit.
    pub data: Bytes,
}

/// `sample_flags` (ISO/IEC 14496-12 §8.8.3.1) of a sync sample: depends on no other.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: depends on others, `sample_is_non_sync_sample`.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// A byte buffer with nested box bookkeeping (ISO/IEC 14496-12 §4.2 box headers).
pub(crate) struct BoxWriter {
    pub(crate) buf: Vec<u8>,
    open: Vec<usize>,
}

impl BoxWriter {
    pub(crate) fn new() -> Self {
        BoxWriter {
            buf: Vec::with_capacity(1024),
            open: Vec::new(),
        }
    }
    pub(crate) fn start(&mut self, fourcc: &[u8; 4]) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(fourcc);
    }
    /// A whole `ftyp` box (ISO/IEC 14496-12 §4.3): major brand, minor version, and the
    /// compatible brands.
    pub(crate) fn ftyp(&mut self, major: &[u8; 4], minor: u32, compatible: &[&[u8; 4]]) {
        self.start(b"ftyp");
        self.bytes(major);
        self.u32(minor);
        for brand in compatible {
            self.bytes(*brand);
        }
        self.end();
    }
    pub(crate) fn start_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) {
        self.start(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    }
    pub(crate) fn end(&mut self) {
        if let Some(at) = self.open.pop() {
            let size = (self.buf.len() - at) as u32;
            self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }
    /// An MPEG-4 descriptor (ISO/IEC 14496-1 §8.3.3) with a 4-byte size field.
    fn descriptor(&mut self, tag: u8, body: &[u8]) {
        self.u8(tag);
        let n = body.len() as u32;
        self.bytes(&[
            0x80 | ((n >> 21) & 0x7f) as u8,
            0x80 | ((n >> 14) & 0x7f) as u8,
            0x80 | ((n >> 7) & 0x7f) as u8,
            (n & 0x7f) as u8,
        ]);
        self.bytes(body);
    }
}

/// The W3C Common PSSH box's system ID (W3C "Common SystemID and PSSH Box Format"),
/// which ClearKey reads its key IDs from: `1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`.
pub const COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];

/// Bytes of the per-sample IV of [`protected_fragment`]s (ISO/IEC 23001-7 §9.1: 8 or 16
/// for `cenc`; 8 leaves the low 64 bits of the counter block to the block counter).
pub const IV_SIZE: u8 = 8;

/// Builds the init segment (`ftyp` + `moov` with one `trak` and `mvex`) of one track.
pub fn init_segment(params: &TrackParams) -> Bytes {
    init(params, None)
}

/// Builds the init segment of one track protected with Common Encryption's `cenc`
/// scheme under key ID `kid` (ISO/IEC 23001-7 §8): the sample entry becomes `encv` or
/// `enca` with a `sinf` (`frma` with the original format, `schm` `cenc` 1.0, `tenc`
/// with `kid` as default, protected, 8-byte IVs), and the `moov` carries a version 1
/// `pssh` of the W3C common system naming `kid`, from which a browser's ClearKey asks
/// for the key.
pub fn protected_init_segment(params: &TrackParams, kid: &[u8; 16]) -> Bytes {
    init(params, Some(kid))
}

fn init(params: &TrackParams, kid: Option<&[u8; 16]>) -> Bytes {
    let track = params.track();
    let mut w = BoxWriter::new();
    w.ftyp(b"iso6", 0, &[b"iso6", b"cmfc", b"mp41", b"dash"]);
    w.start(b"moov");
    w.start_full(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(1000); // timescale
    w.u32(0); // duration: fragmented
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    w.matrix();
    w.zeros(24); // pre_defined
    w.u32(track.mp4_track_id() + 1); // next_track_ID
    w.end();

    w.start(b"trak");
    w.start_full(b"tkhd", 0, 0x3); // enabled, in movie
    w.u32(0);
    w.u32(0);
    w.u32(track.mp4_track_id());
    w.u32(0); // reserved
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(if track == TrackId::Audio { 0x0100 } else { 0 });
    w.u16(0);
    w.matrix();
    let (width, height) = match params {
        TrackParams::Video(v) => (v.width, v.height),
        TrackParams::Audio(_) => (0, 0),
    };
    w.u32(width << 16);
    w.u32(height << 16);
    w.end();

    w.start(b"mdia");
    w.start_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(params.timescale());
    w.u32(0);
    w.u16(0x55c4); // 'und'
    w.u16(0);
    w.end();
    handler_and_media_header(&mut w, track == TrackId::Video);
    w.start(b"stbl");
    w.start_full(b"stsd", 0, 0);
    w.u32(1);
    sample_entry(&mut w, params, kid);
    w.end();
    for empty in [b"stts", b"stsc", b"stco"] {
        w.start_full(empty, 0, 0);
        w.u32(0);
        w.end();
    }
    w.start_full(b"stsz", 0, 0);
    w.u32(0);
    w.u32(0);
    w.end();
    w.end(); // stbl
    w.end(); // minf
    w.end(); // mdia
    w.end(); // trak

    w.start(b"mvex");
    w.start_full(b"trex", 0, 0);
    w.u32(track.mp4_track_id());
    w.u32(1); // default_sample_description_index
    w.u32(0);
    w.u32(0);
    w.u32(0);
    w.end();
    w.end();
    if let Some(kid) = kid {
        w.start_full(b"pssh", 1, 0);
        w.bytes(&COMMON_SYSTEM_ID);
        w.u32(1); // KID_count
        w.bytes(kid);
        w.u32(0); // DataSize
        w.end();
    }
    w.end(); // moov
    Bytes::from(w.buf)
}

/// The `sinf` of a `cenc`-protected sample entry whose original format is `format`
/// (ISO/IEC 14496-12 §8.12, ISO/IEC 23001-7 §8.2).
fn protection_scheme_info(w: &mut BoxWriter, format: &[u8; 4], kid: &[u8; 16]) {
    w.start(b"sinf");
    w.start(b"frma");
    w.bytes(format);
    w.end();
    w.start_full(b"schm", 0, 0);
    w.bytes(b"cenc");
    w.u32(0x0001_0000); // scheme_version 1.0
    w.end();
    w.start(b"schi");
    w.start_full(b"tenc", 0, 0);
    w.u8(0); // reserved
    w.u8(0); // reserved (version 0: no pattern)
    w.u8(1); // default_isProtected
    w.u8(IV_SIZE); // default_Per_Sample_IV_Size
    w.bytes(kid);
    w.end();
    w.end();
    w.end();
}

/// Writes `hdlr`, then opens `minf` and writes its `vmhd`/`smhd` and `dinf` (media in
/// the same file); the caller adds `stbl` and closes `minf`.
pub(crate) fn handler_and_media_header(w: &mut BoxWriter, video: bool) {
    w.start_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(if video { b"vide" } else { b"soun" });
    w.zeros(12);
    w.bytes(if video {
        b"streambox video\0"
    } else {
        b"streambox audio\0"
    });
    w.end();
    w.start(b"minf");
    if video {
        w.start_full(b"vmhd", 0, 1);
        w.zeros(8);
    } else {
        w.start_full(b"smhd", 0, 0);
        w.zeros(4);
    }
    w.end();
    w.start(b"dinf");
    w.start_full(b"dref", 0, 0);
    w.u32(1);
    w.start_full(b"url ", 0, 1); // media in the same file
    w.end();
    w.end();
    w.end();
}

fn sample_entry(w: &mut BoxWriter, params: &TrackParams, kid: Option<&[u8; 16]>) {
    match params {
        TrackParams::Video(v) => {
            w.start(if kid.is_some() { b"encv" } else { b"avc1" });
            w.zeros(6);
            w.u16(1); // data_reference_index
            w.zeros(16); // pre_defined, reserved
            w.u16(v.width.min(0xffff) as u16);
            w.u16(v.height.min(0xffff) as u16);
            w.u32(0x0048_0000); // 72 dpi
            w.u32(0x0048_0000);
            w.u32(0);
            w.u16(1); // frame_count
            w.zeros(32); // compressorname
            w.u16(0x0018); // depth
            w.u16(0xffff); // pre_defined = -1
            w.start(b"avcC");
            w.bytes(&v.record);
            w.end();
            if let Some(kid) = kid {
                protection_scheme_info(w, b"avc1", kid);
            }
            w.end();
        }
        TrackParams::Audio(a) => {
            w.start(if kid.is_some() { b"enca" } else { b"mp4a" });
            w.zeros(6);
            w.u16(1);
            w.zeros(8);
            w.u16(u16::from(a.channels));
            w.u16(16); // samplesize
            w.u32(0);
            w.u32(a.sample_rate.min(0xffff) << 16);
            w.start_full(b"esds", 0, 0);
            let mut dsi = BoxWriter::new();
            dsi.descriptor(0x05, &a.asc);
            let mut dcd = BoxWriter::new();
            dcd.u8(0x40); // objectTypeIndication: MPEG-4 Audio
            dcd.u8(0x15); // streamType audio (5) << 2 | 1
            dcd.bytes(&[0, 0, 0]); // bufferSizeDB
            dcd.u32(0); // maxBitrate
            dcd.u32(0); // avgBitrate
            dcd.bytes(&dsi.buf);
            let mut es = BoxWriter::new();
            es.u16(0); // ES_ID
            es.u8(0); // flags
            es.descriptor(0x04, &dcd.buf);
            es.descriptor(0x06, &[0x02]); // SLConfigDescriptor, predefined MP4
            w.descriptor(0x03, &es.buf);
            w.end();
            if let Some(kid) = kid {
                protection_scheme_info(w, b"mp4a", kid);
            }
            w.end();
        }
    }
}

/// The sample auxiliary information of one `cenc`-encrypted sample (ISO/IEC 23001-7
/// §7.2): its IV and, for video, its subsamples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleEncryption {
    /// The sample's IV: the high 64 bits of its first AES-CTR counter block.
    pub iv: [u8; IV_SIZE as usize],
    /// (clear bytes, protected bytes) in order, covering the whole sample; empty when
    /// the whole sample is protected (audio).
    pub subsamples: Vec<(u16, u32)>,
}

/// Builds one fragment (`moof` + `mdat`) of `track` holding `samples`, the first of which
/// decodes at `base_dts` ticks (`tfdt`, ISO/IEC 14496-12 §8.8.12). `sequence` is the
/// `mfhd` sequence number (§8.8.5), which must grow from fragment to fragment.
pub fn fragment(sequence: u32, track: TrackId, base_dts: u64, samples: &[Sample]) -> Bytes {
    write_fragment(sequence, track, base_dts, samples, None)
}

/// Builds one fragment as [`fragment`] does, of `samples` already encrypted, with
/// `encryption` (one per sample) as their sample auxiliary information: a `saiz`
/// (§8.7.8) and a `saio` (§8.7.9) pointing at the IVs in a `senc` (ISO/IEC 23001-7
/// §7.2), whose `flags` say when there are subsamples. Pairs with
/// [`protected_init_segment`].
pub fn protected_fragment(
    sequence: u32,
    track: TrackId,
    base_dts: u64,
    samples: &[Sample],
    encryption: &[SampleEncryption],
) -> Bytes {
    write_fragment(sequence, track, base_dts, samples, Some(encryption))
}

fn write_fragment(
    sequence: u32,
    track: TrackId,
    base_dts: u64,
    samples: &[Sample],
    encryption: Option<&[SampleEncryption]>,
) -> Bytes {
    let video = track == TrackId::Video;
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut w = BoxWriter::new();
    w.buf.reserve(256 + 24 * samples.len() + payload);
    w.start(b"moof");
    w.start_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.end();
    w.start(b"traf");
    w.start_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
    w.u32(track.mp4_track_id());
    w.end();
    w.start_full(b"tfdt", 1, 0);
    w.u64(base_dts);
    w.end();
    // data-offset, sample-duration, sample-size, and for video sample-flags and
    // sample-composition-time-offset.
    w.start_full(b"trun", 1, if video { 0x0f01 } else { 0x0301 });
    w.u32(samples.len() as u32);
    let data_offset_at = w.buf.len();
    w.u32(0); // data_offset, set below
    for s in samples {
        w.u32(s.duration);
        w.u32(s.data.len() as u32);
        if video {
            w.u32(if s.is_sync {
                FLAGS_SYNC
            } else {
                FLAGS_NON_SYNC
            });
            w.u32(s.cts as u32);
        }
    }
    w.end();
    if let Some(enc) = encryption {
        sample_encryption_boxes(&mut w, enc);
    }
    w.end(); // traf
    w.end(); // moof
    let data_offset = (w.buf.len() + 8) as u32;
    w.buf[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    w.u32((8 + payload) as u32);
    w.bytes(b"mdat");
    for s in samples {
        w.bytes(&s.data);
    }
    Bytes::from(w.buf)
}

/// `saiz`, `saio` and `senc` for `enc`, in a `traf` of a `moof` that starts at byte 0
/// of `w` (`saio` offsets count from it: `tfhd` says default-base-is-moof).
fn sample_encryption_boxes(w: &mut BoxWriter, enc: &[SampleEncryption]) {
    let subsamples = enc.iter().any(|e| !e.subsamples.is_empty());
    let info_size = |e: &SampleEncryption| {
        usize::from(IV_SIZE)
            + if subsamples {
                2 + 6 * e.subsamples.len()
            } else {
                0
            }
    };
    w.start_full(b"saiz", 0, 0);
    let first = enc.first().map_or(0, info_size);
    let uniform = enc.iter().all(|e| info_size(e) == first) && first <= 255;
    w.u8(if uniform { first as u8 } else { 0 });
    w.u32(enc.len() as u32);
    if !uniform {
        for e in enc {
            w.u8(info_size(e).min(255) as u8);
        }
    }
    w.end();
    w.start_full(b"saio", 0, 0);
    w.u32(1); // entry_count
    let offset_at = w.buf.len();
    w.u32(0); // offset, set below
    w.end();
    w.start_full(b"senc", 0, if subsamples { 0x2 } else { 0 });
    w.u32(enc.len() as u32);
    let first_iv = w.buf.len() as u32;
    w.buf[offset_at..offset_at + 4].copy_from_slice(&first_iv.to_be_bytes());
    for e in enc {
        w.bytes(&e.iv);
        if subsamples {
            w.u16(e.subsamples.len() as u16);
            for (clear, protected) in &e.subsamples {
                w.u16(*clear);
                w.u32(*protected);
            }
        }
    }
    w.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::AudioConfig;

    /// Walks top-level boxes, returning (fourcc, size) and checking sizes add up.
    fn boxes(b: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let size = u32::from_be_bytes(b[pos..pos + 4].try_into().expect("4")) as usize;
            out.push((
                String::from_utf8_lossy(&b[pos + 4..pos + 8]).into_owned(),
                size,
            ));
            assert!(size >= 8 && pos + size <= b.len());
            pos += size;
        }
        out
    }

    #[test]
    fn fragment_layout() {
        let samples = vec![
            Sample {
                duration: 3600,
                cts: -3600,
                is_sync: true,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            },
            Sample {
                duration: 3600,
                cts: 7200,
                is_sync: false,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            },
        ];
        let f = fragment(7, TrackId::Video, 1 << 33, &samples);
        let top = boxes(&f);
        assert_eq!(top[0].0, "moof");
        assert_eq!(top[1], ("mdat".to_string(), 18));
        // trun data_offset points at the first sample byte.
        let trun = f.windows(4).position(|w| w == b"trun").expect("trun") - 4;
        let off = u32::from_be_bytes(f[trun + 16..trun + 20].try_into().expect("4")) as usize;
        assert_eq!(&f[off..off + 5], &[0, 0, 0, 1, 0x65]);
        // tfdt before trun
        assert!(f.windows(4).position(|w| w == b"tfdt") < Some(trun));
    }

    #[test]
    fn audio_init_has_esds_with_asc() {
        let cfg = AudioConfig::parse(Bytes::from_static(&[0x11, 0xb0])).expect("asc");
        let init = init_segment(&TrackParams::Audio(cfg));
        let top = boxes(&init);
        assert_eq!(
            top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        let esds = init.windows(4).position(|w| w == b"esds").expect("esds");
        assert!(init[esds..].windows(2).any(|w| w == [0x11, 0xb0]));
    }
}
