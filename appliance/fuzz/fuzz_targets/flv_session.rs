//! A publisher's FLV tag bodies through the demuxer, segmenter, playlists and MPD.
//! Run: `cd appliance && cargo +nightly fuzz run flv_session fuzz/corpus/flv_session
//! fuzz/seeds/flv_session`. The seeds are well-formed sessions in the harness's record
//! format; new inputs go to the first (ignored) directory.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streambox::fuzzing::flv_session(data);
});
