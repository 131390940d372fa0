//! H.264 parameter sets: an AVCDecoderConfigurationRecord and an SPS NAL unit, as a
//! publisher's sequence header or a camera's in-band parameters reach them. Built with
//! debug assertions (cargo-fuzz's default), so an arithmetic overflow is a crash.
//! Run: `cd appliance && cargo +nightly fuzz run h264_parameters fuzz/corpus/h264_parameters
//! fuzz/seeds/h264_parameters`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streambox::fuzzing::h264_parameters(data);
});
