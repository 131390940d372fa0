//! ITU-T G.711 decoding: 8-bit A-law and µ-law samples to 16-bit linear PCM.
//!
//! IP cameras commonly send G.711 audio (RTP payload types 8 PCMA and 0 PCMU,
//! RFC 3551 §4.5.14); HLS and DASH cannot carry it, so it is decoded here and encoded to
//! AAC by [`super::aac::AacEncoder`].

/// G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// A-law (PCMA), used in Europe and by most cameras.
    A,
    /// µ-law (PCMU), used in North America and Japan.
    Mu,
}

/// Decodes one A-law sample (ITU-T G.711 Table 1a) to linear PCM in 16-bit range.
pub fn alaw_to_linear(sample: u8) -> i16 {
    let a = sample ^ 0x55;
    let mut t = i16::from(a & 0x0f) << 4;
    let segment = (a & 0x70) >> 4;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        s => {
            t += 0x108;
            t <<= s - 1;
        }
    }
    if a & 0x80 != 0 {
        t
    } else {
        -t
    }
}

/// Decodes one µ-law sample (ITU-T G.711 Table 2a) to linear PCM in 16-bit range.
pub fn ulaw_to_linear(sample: u8) -> i16 {
    const BIAS: i16 = 0x84;
    let u = !sample;
    let t = ((i16::from(u & 0x0f) << 3) + BIAS) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        BIAS - t
    } else {
        t - BIAS
    }
}

/// Decodes a buffer of G.711 samples (one byte each) into `out`, replacing its contents.
pub fn decode(law: Law, input: &[u8], out: &mut Vec<i16>) {
    out.clear();
    match law {
        Law::A => out.extend(input.iter().map(|&b| alaw_to_linear(b))),
        Law::Mu => out.extend(input.iter().map(|&b| ulaw_to_linear(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Smallest magnitudes, and the ends of the range.
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }

    #[test]
    fn every_code_decodes_to_a_distinct_symmetric_level() {
        let a: std::collections::BTreeSet<i16> = (0..=255u8).map(alaw_to_linear).collect();
        let u: std::collections::BTreeSet<i16> = (0..=255u8).map(ulaw_to_linear).collect();
        // A-law has no zero level; µ-law has +0 and -0, which are equal as integers.
        assert_eq!((a.len(), u.len()), (256, 255));
        for b in 0..=255u8 {
            assert_eq!(alaw_to_linear(b), -alaw_to_linear(b ^ 0x80), "{b:#x}");
            assert_eq!(ulaw_to_linear(b), -ulaw_to_linear(b ^ 0x80), "{b:#x}");
        }
    }
}
