//! Codec work: decoding what HLS cannot carry and encoding what it can.
//!
//! | spec | where |
//! | --- | --- |
//! | ITU-T G.711 (A-law, µ-law) | [`g711`] |
//! | ISO/IEC 14496-3 (AAC-LC, through fdk-aac) | [`aac`] |

pub mod aac;
pub mod g711;
