//! A big-endian bit reader for the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and
//! RFC 3640 AU headers. Every read is bounds-checked. (H.264 parameter sets are parsed
//! by h264-reader: [`super::h264::parse_sps`].)

/// Reading ran past the end of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndOfData;

pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub(crate) fn bit(&mut self) -> Result<u32, EndOfData> {
        let byte = *self.data.get(self.pos / 8).ok_or(EndOfData)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    /// Reads `n` bits (at most 32) as an unsigned integer.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, EndOfData> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v as u32)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), EndOfData> {
        if self.pos + n > self.data.len() * 8 {
            return Err(EndOfData);
        }
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_bounds() {
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(r.bit(), Ok(1));
        assert_eq!(r.bits(3), Ok(0b010));
        assert_eq!(r.skip(4), Ok(()));
        assert_eq!(r.bits(8), Ok(0b0100_0000));
        assert_eq!(r.bit(), Err(EndOfData));
        assert_eq!(r.skip(1), Err(EndOfData));
    }
}
