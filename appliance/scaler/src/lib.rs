//! Scaling one 8-bit picture plane (the Y, Cb or Cr plane of an I420 picture) to another
//! size, with fast_image_resize's SIMD convolution ([`Filter`], bilinear by default).
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

/// The convolution filter a plane is scaled with; when shrinking, its support widens
/// with the ratio, so every source pixel counts (no aliasing from skipped pixels).
/// Ordered from the cheapest and softest to the dearest and sharpest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Box: the mean of the pixels each output pixel covers.
    Box,
    /// Bilinear (triangle), support 1.
    #[default]
    Bilinear,
    /// Bicubic, Mitchell-Netravali (B = C = 1/3), support 2.
    Mitchell,
    /// Bicubic, Catmull-Rom (B = 0, C = 1/2), support 2.
    CatmullRom,
    /// Lanczos with 3 lobes, support 3.
    Lanczos3,
}

impl Filter {
    /// Every filter, cheapest first.
    pub const ALL: [Filter; 5] = [
        Filter::Box,
        Filter::Bilinear,
        Filter::Mitchell,
        Filter::CatmullRom,
        Filter::Lanczos3,
    ];

    /// Its name in settings and benchmarks: `box`, `bilinear`, `mitchell`,
    /// `catmull-rom`, `lanczos3`.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Box => "box",
            Filter::Bilinear => "bilinear",
            Filter::Mitchell => "mitchell",
            Filter::CatmullRom => "catmull-rom",
            Filter::Lanczos3 => "lanczos3",
        }
    }

    /// The filter of that [`Filter::name`].
    pub fn from_name(name: &str) -> Option<Filter> {
        Filter::ALL.into_iter().find(|f| f.name() == name)
    }

    fn fast_image_resize(self) -> fr::FilterType {
        match self {
            Filter::Box => fr::FilterType::Box,
            Filter::Bilinear => fr::FilterType::Bilinear,
            Filter::Mitchell => fr::FilterType::Mitchell,
            Filter::CatmullRom => fr::FilterType::CatmullRom,
            Filter::Lanczos3 => fr::FilterType::Lanczos3,
        }
    }
}

/// A reusable plane scaler (it keeps buffers between calls).
pub struct PlaneScaler {
    resizer: fr::Resizer,
    options: fr::ResizeOptions,
}

impl Default for PlaneScaler {
    fn default() -> Self {
        PlaneScaler::new(Filter::default())
    }
}

impl std::fmt::Debug for PlaneScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaneScaler")
    }
}

impl PlaneScaler {
    /// A scaler with `filter`.
    pub fn new(filter: Filter) -> Self {
        PlaneScaler {
            resizer: fr::Resizer::new(),
            options: fr::ResizeOptions::new()
                .resize_alg(fr::ResizeAlg::Convolution(filter.fast_image_resize())),
        }
    }

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
