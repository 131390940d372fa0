//! A big-endian bit reader with Exp-Golomb codes (ISO/IEC 14496-10 §9.1), for SPS and
//! AudioSpecificConfig parsing. Every read is bounds-checked.

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

    /// ue(v): unsigned Exp-Golomb.
    pub(crate) fn ue(&mut self) -> Result<u32, EndOfData> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(EndOfData);
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// se(v): signed Exp-Golomb.
    pub(crate) fn se(&mut self) -> Result<i32, EndOfData> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 -> 0, 1, 2, 3
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(r.ue(), Ok(0));
        assert_eq!(r.ue(), Ok(1));
        assert_eq!(r.ue(), Ok(2));
        assert_eq!(r.ue(), Ok(3));
        let mut r = BitReader::new(&[0b0100_1100]);
        assert_eq!(r.se(), Ok(1));
        assert_eq!(r.se(), Ok(-1));
        let mut r = BitReader::new(&[0]);
        assert_eq!(r.ue(), Err(EndOfData));
    }
}
