//! Common Encryption (ISO/IEC 23001-7), the `cenc` scheme, for DASH: AES-128 in counter
//! mode over the protected bytes of each sample, a fresh 8-byte IV per sample, and
//! subsample encryption for H.264 (§10.2: every NAL unit's length and header stay in
//! the clear, so are non-VCL NAL units whole; a slice's protected bytes are a whole
//! number of 16-byte blocks, the rest of it clear ahead of them). AAC samples are
//! encrypted whole.
//!
//! A sample's protected bytes, taken together in order, are one counter-mode stream:
//! the counter block is the IV followed by a 64-bit block counter from 0 (§9.1, §9.5.2).
//! The fragment around them is laid out by [`crate::media::fmp4::protected_fragment`].
//!
//! The key is the stream's content key, the one its HLS segments are sealed with in
//! CBC mode: the two uses never meet on the same counter block in practice (random
//! 64-bit IVs against CBC's chained blocks), and a viewer is handed one key per period
//! whichever player asks.

use crate::media::fmp4::{Sample, SampleEncryption, IV_SIZE};
use crate::media::mp4::Mp4Error;
use crate::media::TrackId;
use aes::cipher::{KeyIvInit, StreamCipher};
use bytes::Bytes;

type Aes128Ctr = ctr::Ctr64BE<aes::Aes128>;

/// The most subsamples one sample's auxiliary information may list: `saiz` gives each
/// sample's size in one byte (ISO/IEC 14496-12 §8.7.8), and an entry is 8 + 2 + 6 × n.
pub const MAX_SUBSAMPLES: usize = (255 - IV_SIZE as usize - 2) / 6;

/// `samples` of `track` encrypted under `key` for one fragment, with their auxiliary
/// information: each sample's IV is `first_iv` plus its index (IVs must never repeat
/// under one key; the caller starts each fragment at a random number).
pub fn encrypt(
    key: &[u8; 16],
    track: TrackId,
    first_iv: u64,
    samples: &[Sample],
) -> (Vec<Sample>, Vec<SampleEncryption>) {
    let mut out = Vec::with_capacity(samples.len());
    let mut info = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let iv = first_iv.wrapping_add(i as u64).to_be_bytes();
        let subsamples = match track {
            TrackId::Video => avc_subsamples(&s.data),
            TrackId::Audio => Vec::new(),
        };
        let mut data = s.data.to_vec();
        encrypt_sample(key, &iv, &mut data, &subsamples);
        out.push(Sample {
            data: Bytes::from(data),
            ..s.clone()
        });
        info.push(SampleEncryption { iv, subsamples });
    }
    (out, info)
}

/// One fragment (`moof` + `mdat`) of `track` holding `samples` encrypted under `key`,
/// as [`crate::media::fmp4::protected_fragment`] lays it out; its samples' IVs count
/// up from a random number from the thread's CSPRNG.
pub fn fragment(
    key: &[u8; 16],
    sequence: u32,
    track: TrackId,
    base_dts: u64,
    samples: &[Sample],
) -> Bytes {
    let (encrypted, info) = encrypt(key, track, rand::random(), samples);
    crate::media::fmp4::protected_fragment(sequence, track, base_dts, &encrypted, &info)
}

/// A recorded segment of `track` (our fragments, in the clear, as the recorder keeps
/// them) as one fragment in Common Encryption under `key`, with fragment sequence
/// number `sequence`, its decode times as recorded: time-shift and recordings served
/// to DASH players.
///
/// # Errors
/// [`Mp4Error`] when the file is not fragments this reads.
pub fn recorded_segment(
    key: &[u8; 16],
    sequence: u32,
    track: TrackId,
    segment: &Bytes,
) -> Result<Bytes, Mp4Error> {
    let (base, samples) = crate::media::mp4::samples(segment)?;
    Ok(fragment(key, sequence, track, base, &samples))
}

/// A recorded init segment as the init segment of its track in Common Encryption
/// under key ID `kid` ([`crate::media::fmp4::protected_init_segment`]).
///
/// # Errors
/// [`Mp4Error`] when the file is not an init segment of H.264 or AAC.
pub fn recorded_init(init: &[u8], kid: &[u8; 16]) -> Result<Bytes, Mp4Error> {
    Ok(crate::media::fmp4::protected_init_segment(
        &crate::media::mp4::track_params(init)?,
        kid,
    ))
}

/// Encrypts the protected bytes of `data` in place: all of it without `subsamples`,
/// else the protected byte counts of each (clear, protected) pair, as one counter-mode
/// stream.
fn encrypt_sample(key: &[u8; 16], iv: &[u8; 8], data: &mut [u8], subsamples: &[(u16, u32)]) {
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(iv);
    let mut cipher = Aes128Ctr::new(key.into(), (&block).into());
    if subsamples.is_empty() {
        cipher.apply_keystream(data);
        return;
    }
    let mut at = 0usize;
    for &(clear, protected) in subsamples {
        at += usize::from(clear);
        let end = (at + protected as usize).min(data.len());
        if at < end {
            cipher.apply_keystream(&mut data[at..end]);
        }
        at = end;
    }
}

/// The subsamples of an H.264 sample in AVCC form (4-byte NAL unit lengths, ISO/IEC
/// 14496-15 §5.3.2): clear lengths and NAL unit headers, clear non-VCL NAL units
/// (parameter sets, SEI), and for each slice (types 1 to 5) its bytes after the header
/// protected in whole 16-byte blocks. Clear runs longer than a `u16` are split. A
/// sample whose lengths do not add up has the rest of it protected. A sample with more
/// slices than [`MAX_SUBSAMPLES`] allows has its last subsample run to its end (its
/// later NAL unit headers encrypted with the slices).
pub fn avc_subsamples(data: &[u8]) -> Vec<(u16, u32)> {
    let mut out: Vec<(u16, u32)> = Vec::new();
    let mut clear = 0usize;
    let mut at = 0usize;
    let push = |out: &mut Vec<(u16, u32)>, mut clear: usize, protected: usize| {
        while clear > usize::from(u16::MAX) {
            out.push((u16::MAX, 0));
            clear -= usize::from(u16::MAX);
        }
        out.push((clear as u16, protected as u32));
    };
    while at < data.len() {
        if out.len() + 1 >= MAX_SUBSAMPLES {
            push(&mut out, clear, data.len() - at);
            return out;
        }
        let len = data
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let Some(len) = len.filter(|&n| n >= 1 && at + 4 + n <= data.len()) else {
            // Lengths that do not add up: protect what is left.
            push(&mut out, clear, data.len() - at);
            return out;
        };
        let nal_type = data[at + 4] & 0x1f;
        if (1..=5).contains(&nal_type) {
            let protected = (len - 1) / 16 * 16;
            clear += 4 + len - protected;
            if protected > 0 {
                push(&mut out, clear, protected);
                clear = 0;
            }
        } else {
            clear += 4 + len;
        }
        at += 4 + len;
    }
    if clear > 0 || out.is_empty() {
        push(&mut out, clear, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(kind: u8, len: usize) -> Vec<u8> {
        let mut v = (len as u32).to_be_bytes().to_vec();
        v.push(kind);
        v.extend((1..len).map(|i| i as u8));
        v
    }

    #[test]
    fn slices_are_protected_in_whole_blocks_and_the_rest_is_clear() {
        // SPS, PPS, then an IDR slice of 1 + 100 bytes: 4 clear bytes of it (100 % 16).
        let mut data = nal(0x67, 20);
        data.extend(nal(0x68, 5));
        data.extend(nal(0x65, 101));
        let sub = avc_subsamples(&data);
        assert_eq!(sub, vec![(24 + 9 + 4 + 1 + 4, 96)]);
        let total: usize = sub.iter().map(|(c, p)| usize::from(*c) + *p as usize).sum();
        assert_eq!(total, data.len());
        // A slice too short to protect stays clear; a trailing SEI is a clear run.
        let mut data = nal(0x41, 10);
        data.extend(nal(0x41, 33));
        data.extend(nal(0x06, 7));
        assert_eq!(avc_subsamples(&data), vec![(14 + 4 + 1, 32), (4 + 7, 0)]);
        // Broken lengths: the rest protected.
        let mut data = nal(0x65, 40);
        data.extend([0, 0, 1, 0, 0x41, 1, 2]);
        assert_eq!(avc_subsamples(&data), vec![(4 + 1 + 7, 32), (0, 7)]);
        // A long clear run is split at u16::MAX.
        let data = nal(0x06, 70_000);
        let sub = avc_subsamples(&data);
        assert_eq!(sub, vec![(u16::MAX, 0), ((70_004 - 65_535) as u16, 0)]);
    }

    #[test]
    fn many_slices_fit_one_aux_entry() {
        let data: Vec<u8> = (0..100).flat_map(|_| nal(0x41, 40)).collect();
        let sub = avc_subsamples(&data);
        assert!(sub.len() <= MAX_SUBSAMPLES, "{}", sub.len());
        let total: usize = sub.iter().map(|(c, p)| usize::from(*c) + *p as usize).sum();
        assert_eq!(total, data.len());
    }

    /// Counter mode is its own inverse: encrypting again with the same IV and
    /// subsamples gives the clear sample back, and only the protected bytes changed.
    #[test]
    fn protected_bytes_change_and_decrypt_back() {
        let key = [9u8; 16];
        let mut data = nal(0x67, 12);
        data.extend(nal(0x65, 200));
        data.extend(nal(0x65, 50));
        let s = Sample {
            duration: 3600,
            cts: 0,
            is_sync: true,
            data: Bytes::from(data.clone()),
        };
        let (enc, info) = encrypt(&key, TrackId::Video, 41, std::slice::from_ref(&s));
        assert_eq!(info[0].iv, 41u64.to_be_bytes());
        let e = &enc[0].data;
        assert_eq!(e.len(), data.len());
        let mut at = 0;
        for (clear, protected) in &info[0].subsamples {
            let c = usize::from(*clear);
            assert_eq!(e[at..at + c], data[at..at + c], "clear bytes stay");
            at += c;
            let p = *protected as usize;
            assert_ne!(e[at..at + p], data[at..at + p], "protected bytes change");
            at += p;
        }
        let mut back = e.to_vec();
        encrypt_sample(&key, &info[0].iv, &mut back, &info[0].subsamples);
        assert_eq!(back, data);
        // Audio: the whole sample, and the next sample's IV is the next number.
        let a = Sample {
            is_sync: true,
            data: Bytes::from_static(&[1, 2, 3, 4, 5]),
            ..s
        };
        let (enc, info) = encrypt(&key, TrackId::Audio, 7, &[a.clone(), a]);
        assert!(info.iter().all(|i| i.subsamples.is_empty()));
        assert_eq!(info[1].iv, 8u64.to_be_bytes());
        assert_ne!(enc[0].data, enc[1].data, "another IV, another keystream");
    }

    /// A recorded segment of two fragments becomes one protected fragment with the same
    /// samples and times, only its sample bytes changed; a file that is not fragments
    /// is an error.
    #[test]
    fn a_recorded_segment_is_protected_as_one_fragment() {
        use crate::media::{fmp4, mp4};
        let samples: Vec<Sample> = (0..3u8)
            .map(|i| Sample {
                duration: 1024,
                cts: 0,
                is_sync: true,
                data: Bytes::from(vec![i + 1; 20]),
            })
            .collect();
        let mut file = fmp4::fragment(1, TrackId::Audio, 96_000, &samples[..2]).to_vec();
        file.extend_from_slice(&fmp4::fragment(2, TrackId::Audio, 98_048, &samples[2..]));
        let file = Bytes::from(file);
        let out = recorded_segment(&[3; 16], 5, TrackId::Audio, &file).expect("protected");
        let got = mp4::read_fragments(&out).expect("read back");
        assert_eq!(
            got.iter()
                .map(|s| (s.dts, s.duration, s.size))
                .collect::<Vec<_>>(),
            [(96_000, 1024, 20), (97_024, 1024, 20), (98_048, 1024, 20)]
        );
        for (g, clear) in got.iter().zip(&samples) {
            assert_ne!(&out[g.offset as usize..][..20], &clear.data[..]);
        }
        assert!(out.windows(4).any(|w| w == b"senc"));
        assert!(recorded_segment(&[3; 16], 5, TrackId::Audio, &file.slice(..40)).is_err());
        assert!(recorded_init(b"not an init segment", &[1; 16]).is_err());
    }

    /// NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), its first block, with the counter
    /// block split as 64-bit IV and 64-bit counter.
    #[test]
    fn ctr_matches_the_nist_vector() {
        use crate::protect::tests::hex;
        let key: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c")
            .try_into()
            .expect("16");
        let counter = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        let mut data = hex("6bc1bee22e409f96e93d7e117393172a");
        let mut cipher = Aes128Ctr::new((&key).into(), counter[..].into());
        cipher.apply_keystream(&mut data);
        assert_eq!(data, hex("874d6191b620e3261bef6864990db6ce"));
    }
}
