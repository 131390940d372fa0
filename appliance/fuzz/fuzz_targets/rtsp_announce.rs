//! An RTSP request as a publisher's ANNOUNCE: message grammar, Authorization and
//! Transport headers, SDP, and the depacketizers' format parameters.
//! Run: `cd appliance && cargo +nightly fuzz run rtsp_announce fuzz/corpus/rtsp_announce
//! fuzz/seeds/rtsp_announce`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streambox::fuzzing::rtsp_announce(data);
});
