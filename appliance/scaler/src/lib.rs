//! Scaling one 8-bit picture plane (the Y, Cb or Cr plane of an I420 picture) to another
//! size, with fast_image_resize's SIMD convolution (bilinear).
//!
//! A crate of its own because fast_image_resize is generic code, compiled where it is
//! instantiated: here, under the workspace's `opt-level = 3` override for this crate, a
//! debug build of streambox still scales a 1080p picture in milliseconds (unoptimised,
//! it takes about 100 ms, too slow for live transcoding in the end-to-end tests).

use fast_image_resize as fr;

/// A plane could not be scaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleError(pub String);

impl std::fmt::Display for ScaleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScaleError {}

/// A reusable plane scaler (it keeps buffers between calls).
pub struct PlaneScaler {
    resizer: fr::Resizer,
    options: fr::ResizeOptions,
}

impl Default for PlaneScaler {
    fn default() -> Self {
        PlaneScaler {
            resizer: fr::Resizer::new(),
            options: fr::ResizeOptions::new()
                .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear)),
        }
    }
}

impl std::fmt::Debug for PlaneScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaneScaler")
    }
}

impl PlaneScaler {
    /// Scales `src` (`sw`×`sh` bytes, rows packed) into `dst` (`dw`×`dh`).
    ///
    /// # Errors
    /// A buffer smaller than its size says, or a zero size.
    #[allow(clippy::too_many_arguments)]
    pub fn scale(
        &mut self,
        src: &[u8],
        sw: u32,
        sh: u32,
        dst: &mut [u8],
        dw: u32,
        dh: u32,
    ) -> Result<(), ScaleError> {
        let err = |e: &dyn std::fmt::Display| ScaleError(e.to_string());
        let from =
            fr::images::ImageRef::new(sw, sh, src, fr::PixelType::U8).map_err(|e| err(&e))?;
        let mut to = fr::images::Image::from_slice_u8(dw, dh, dst, fr::PixelType::U8)
            .map_err(|e| err(&e))?;
        self.resizer
            .resize(&from, &mut to, &self.options)
            .map_err(|e| err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_a_gradient_and_refuses_short_buffers() {
        let src: Vec<u8> = (0..64u32 * 64).map(|i| (i % 64 * 4) as u8).collect();
        let mut dst = vec![0u8; 32 * 32];
        PlaneScaler::default()
            .scale(&src, 64, 64, &mut dst, 32, 32)
            .expect("scale");
        // Each row still rises left to right.
        assert!(
            dst[..32].windows(2).all(|w| w[0] <= w[1]),
            "{:?}",
            &dst[..32]
        );
        assert!(PlaneScaler::default()
            .scale(&src[..10], 64, 64, &mut dst, 32, 32)
            .is_err());
    }
}
