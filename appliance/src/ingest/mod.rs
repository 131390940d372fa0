//! Protocol front ends that turn bytes into [`crate::media::Frame`]s and publish them
//! into a hub.

pub mod rtmp;
