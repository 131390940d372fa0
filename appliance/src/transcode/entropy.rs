//! CABAC entropy coding (ITU-T H.264 §9.3) for the rungs' OpenH264 encoder, in the Main
//! profile (H.264 Annex A.2.2): OpenH264 codes it, but the `openh264` crate's
//! configuration has no setting for it, so [`switch_to_cabac`] changes the parameters in
//! force through OpenH264's own `SetOption` once the crate has started the encoder.
//!
//! The service denies `unsafe_code`; this module is allowed it for the two calls into
//! OpenH264's option interface, with a parameter structure of OpenH264's own type (the
//! rest of the service's `unsafe` is `system::hardware::v4l2` and `::vaapi`).
#![allow(unsafe_code)]

use openh264::encoder::Encoder;
use openh264_sys2::{SEncParamExt, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, PRO_MAIN};

/// Restarts `encoder` with CABAC and the Main profile, keeping every other parameter in
/// force (size, bitrate, rate control, tuning); the next picture is an IDR with the new
/// SPS and PPS. OpenH264 starts again from scratch (`WelsEncoderParamAdjust` resets the
/// encoder when the profile changes, and a reset initialises the CABAC contexts), so no
/// reference picture coded under the old parameters is used after it.
///
/// Call it after the encoder has coded its first picture at a size (the crate starts
/// OpenH264 there), and again after the size changes (the crate then resets the
/// parameters to its own).
///
/// # Errors
/// OpenH264's return code, in words, when it refuses either call; the encoder is then
/// as it was.
pub(super) fn switch_to_cabac(encoder: &mut Encoder) -> Result<(), String> {
    let mut params = SEncParamExt::default();
    // SAFETY: the crate has initialised the encoder (a picture was coded), which is what
    // OpenH264's GetOption and SetOption require. GetOption(SVC_ENCODE_PARAM_EXT) copies
    // exactly `size_of::<SEncParamExt>()` bytes into `params` (welsEncoderExt.cpp), and
    // SetOption reads that many from it; both are OpenH264's own type from the same
    // headers the library was built from. Nothing else holds the encoder meanwhile
    // (`&mut`).
    unsafe {
        let raw = encoder.raw_api();
        let rc = raw.get_option(
            ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
            (&raw mut params).cast(),
        );
        if rc != 0 {
            return Err(format!(
                "OpenH264 GetOption(SVC_ENCODE_PARAM_EXT) returned {rc}"
            ));
        }
        params.iEntropyCodingModeFlag = 1;
        params.sSpatialLayers[0].uiProfileIdc = PRO_MAIN;
        let rc = raw.set_option(
            ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
            (&raw mut params).cast(),
        );
        if rc != 0 {
            return Err(format!(
                "OpenH264 SetOption(SVC_ENCODE_PARAM_EXT) returned {rc}"
            ));
        }
        raw.force_intra_frame(true);
    }
    Ok(())
}
