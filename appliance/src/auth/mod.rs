//! Authentication: stream keys now; users, sessions and viewer tokens later.

pub mod stream_keys;
