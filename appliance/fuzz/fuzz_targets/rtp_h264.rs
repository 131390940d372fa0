//! A recording publisher's H.264 track: RTP parsing, reordering, RFC 6184
//! depacketization (single NAL, STAP-A, FU-A), decode times, the hub.
//! Run: `cd appliance && cargo +nightly fuzz run rtp_h264 fuzz/corpus/rtp_h264
//! fuzz/seeds/rtp_record`. Records: `[flags][len: u16 BE][packet]`, bit 1 = RTCP.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streambox::fuzzing::rtsp_record(streambox::fuzzing::PUBLISH_SDP, Some(0), data);
});
