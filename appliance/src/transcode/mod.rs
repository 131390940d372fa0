//! Codec work: decoding what HLS cannot carry and encoding what it can.
//!
//! | spec | where |
//! | --- | --- |
//! | ITU-T G.711 (A-law, µ-law) | [`g711`] |
//! | ISO/IEC 14496-3 (AAC-LC, through fdk-aac) | [`aac`] |
//! | ISO/IEC 14496-10 decoding (OpenH264) to JPEG thumbnails | [`thumbnail`] |
//! | ISO/IEC 14496-10 decoding, scaling and encoding (OpenH264) for ABR rungs | [`video`] |
//! | ISO/IEC 14496-10 §9.3 CABAC in OpenH264, which its crate does not expose | `entropy` |
//! | capture devices' pictures (YUYV, NV12, YU12, Motion-JPEG through zune-jpeg) to I420 | [`pixels`] |
//! | the ABR ladder: rungs, sizes, bitrates | [`ladder`] |
//! | what transcoding costs here; admission against the CPU budget | [`cost`] |
//! | sample-rate conversion (rubato) for the ABR audio rendition | [`resample`] |

pub mod aac;
pub mod cost;
mod entropy;
pub mod g711;
pub mod ladder;
pub mod pixels;
pub mod rendition;
pub mod resample;
pub mod thumbnail;
pub mod video;

/// Peak signal-to-noise ratio of two 8-bit planes of the same size, in dB (capped near
/// 138 dB for identical planes), for tests that compare pictures.
#[cfg(test)]
pub(crate) fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "planes of different sizes");
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
}
