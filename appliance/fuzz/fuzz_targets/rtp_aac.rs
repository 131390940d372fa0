//! A recording publisher's AAC track: RTP parsing, reordering, RFC 3640
//! depacketization (AU headers, fragments), the audio clock, the hub.
//! Run: `cd appliance && cargo +nightly fuzz run rtp_aac fuzz/corpus/rtp_aac
//! fuzz/seeds/rtp_record`. Records: `[flags][len: u16 BE][packet]`, bit 1 = RTCP.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streambox::fuzzing::rtsp_record(streambox::fuzzing::PUBLISH_SDP, Some(1), data);
});
