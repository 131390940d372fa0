//! Frames through our RTP packetizer (RFC 6184 single NAL unit and FU-A, RFC 3640
//! AAC-hbr) and back through RTP parsing, reordering and the depacketizers: every
//! frame must come back as it went in.
//! Run: `cd appliance && cargo +nightly fuzz run rtp_round_trip fuzz/corpus/rtp_round_trip
//! fuzz/seeds/rtp_round_trip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = streambox::fuzzing::rtp_round_trip(data) {
        panic!("the round trip changed a frame: {e:?}");
    }
});
