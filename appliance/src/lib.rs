//! streambox: a streaming appliance in one service. RTMP publishers in; LL-HLS and
//! MPEG-DASH out, through one hub per stream. See `ARCHITECTURE.md` at the repository
//! root (kept in `../shared/design/`) for the shape of the whole.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod dvr;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod media;
pub mod metrics;
pub mod packager;
pub mod rtsp;
pub mod setup;
pub mod system;
pub mod transcode;
pub mod viewers;
