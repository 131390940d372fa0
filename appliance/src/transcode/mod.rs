//! Codec work: decoding what HLS cannot carry and encoding what it can.
//!
//! | spec | where |
//! | --- | --- |
//! | ITU-T G.711 (A-law, µ-law) | [`g711`] |
//! | ISO/IEC 14496-3 (AAC-LC, through fdk-aac) | [`aac`] |
//! | ISO/IEC 14496-10 decoding (OpenH264) to JPEG thumbnails | [`thumbnail`] |
//! | ISO/IEC 14496-10 decoding, scaling and encoding (OpenH264) for ABR rungs | [`video`] |
//! | capture devices' pictures (YUYV, NV12, YU12, Motion-JPEG through zune-jpeg) to I420 | [`pixels`] |
//! | the ABR ladder: rungs, sizes, bitrates | [`ladder`] |
//! | what transcoding costs here; admission against the CPU budget | [`cost`] |
//! | sample-rate conversion (rubato) for the ABR audio rendition | [`resample`] |

pub mod aac;
pub mod cost;
pub mod g711;
pub mod ladder;
pub mod pixels;
pub mod rendition;
pub mod resample;
pub mod thumbnail;
pub mod video;
