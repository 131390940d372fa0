//! One RTSP connection's bytes through the sans-IO session: framing, every method in
//! every state, stream keys and viewer links, transports, a publisher's media into a
//! hub; every UDP port taken must be released when it closes.
//! Run: `cd appliance && cargo +nightly fuzz run rtsp_session fuzz/corpus/rtsp_session
//! fuzz/seeds/rtsp_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streambox::fuzzing::rtsp_session(data);
});
