//! A publisher's FLV tag bodies through the demuxer, segmenter, playlists and MPD.
//! Run: `cd appliance && cargo +nightly fuzz run flv_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streambox::fuzzing::flv_session(data);
});
