//! Capture devices on the box as sources, as the administrator adds and changes them:
//! the fields are checked, the device must be on the box and offer what is asked (the
//! same choice the running source makes, [`crate::ingest::capture::choose`]), then the
//! source is saved and the running service starts capturing within seconds.

use super::{streams, Ops, Refused};
use crate::ingest::capture::{self, choose::Request};
use crate::ingest::rtsp_pull::sources::{self, CaptureSettings, SourceError};
use crate::system::hardware::Inventory;

/// The lowest and highest bitrates a capture source may ask for, in bit/s.
pub const BITRATES: std::ops::RangeInclusive<u32> = 100_000..=50_000_000;

/// A capture source as typed: the form's or the API's fields, or the CLI's arguments.
/// Empty fields leave the choice to the appliance.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureInput<'a> {
    /// Its name (a new source's; ignored when changing one).
    pub name: &'a str,
    /// The device's stable ID, as the hardware page and `streambox hw list` show it.
    pub device: &'a str,
    /// `1280x720`; empty for the device's best up to 1920x1080.
    pub size: &'a str,
    /// Frames per second (`30`, `29.97`); empty for the device's best up to 30.
    pub fps: &'a str,
    /// `4M`, `2500k` or bits per second; empty for one that fits the size and rate.
    pub bitrate: &'a str,
    /// The sound card's capture PCM as the hardware page shows it
    /// (`hw:CARD=ID,DEV=N`); empty for pictures alone.
    pub audio: &'a str,
}

/// `1280x720` as (width, height).
fn parse_size(s: &str) -> Result<(u32, u32), Refused> {
    let bad = || {
        Refused::Invalid(format!(
            "Size {s:?}: give width x height in pixels, such as 1280x720."
        ))
    };
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    );
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        return Err(Refused::Invalid(format!(
            "Size {w}x{h}: width and height must be 16 to 8192 pixels."
        )));
    }
    Ok((w, h))
}

/// `i`'s fields as settings.
fn settings(i: &CaptureInput<'_>) -> Result<CaptureSettings, Refused> {
    let device = i.device.trim();
    if device.is_empty() || device.len() > 255 || device.contains(['/', '\0']) {
        return Err(Refused::Invalid(
            "Device: give the stable ID the hardware page shows (such as usb-…-video-index0)."
                .into(),
        ));
    }
    let size = match i.size.trim() {
        "" => None,
        s => Some(parse_size(s)?),
    };
    let fps = match i.fps.trim() {
        "" => None,
        s => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 && f <= 240.0 => Some(f),
            _ => {
                return Err(Refused::Invalid(format!(
                    "Frame rate {s:?}: give frames per second, above 0 and at most 240."
                )))
            }
        },
    };
    let bitrate = match i.bitrate.trim() {
        "" => None,
        s => {
            let b = crate::transcode::ladder::parse_bitrate(s).or_else(|| s.parse().ok());
            match b {
                Some(b) if BITRATES.contains(&b) => Some(b),
                _ => {
                    return Err(Refused::Invalid(format!(
                    "Bitrate {s:?}: give it as 4M, 2500k or in bits per second, from 100k to 50M."
                )))
                }
            }
        }
    };
    let audio = match i.audio.trim() {
        "" => None,
        a if a.len() <= 255 && a.starts_with("hw:CARD=") && !a.contains(['/', '\0']) => {
            Some(a.to_string())
        }
        a => {
            return Err(Refused::Invalid(format!(
                "Audio {a:?}: give the sound card's capture device as the hardware page shows it (such as hw:CARD=C920,DEV=0)."
            )))
        }
    };
    Ok(CaptureSettings {
        device: device.to_string(),
        size,
        fps,
        bitrate,
        audio,
    })
}

/// Adds capture source `i` (with the recording defaults), or with `existing` saves new
/// settings for that source, after checking that the device is in `hardware` and
/// offers what is asked. Returns the source's name and a sentence saying what it will
/// capture.
///
/// # Errors
/// [`Refused::Invalid`] for wrong fields, a device that is not on the box, or a size or
/// rate it does not offer (with what it does offer); [`Refused::Conflict`] for a taken
/// name; [`Refused::NotFound`] for an `existing` source that is not a capture source.
pub async fn save(
    ops: &Ops,
    i: &CaptureInput<'_>,
    hardware: &Inventory,
    existing: Option<&str>,
) -> Result<(String, String), Refused> {
    let s = settings(i)?;
    let Some(device) = hardware.video(&s.device) else {
        let present: Vec<&str> = hardware.video.iter().map(|d| d.id.as_str()).collect();
        return Err(Refused::Invalid(if present.is_empty() {
            format!(
                "No capture device {:?} is on this box; it has no capture devices now.",
                s.device
            )
        } else {
            format!(
                "No capture device {:?} is on this box; it has: {}.",
                s.device,
                present.join(", ")
            )
        }));
    };
    if let Some(e) = &device.error {
        return Err(Refused::Invalid(format!(
            "The device {:?} cannot be used: {e}.",
            s.device
        )));
    }
    let request = Request {
        size: s.size,
        fps: s.fps,
    };
    let choice = capture::check(device, &request)
        .map_err(|e| Refused::Invalid(format!("The device {:?}: {e}.", s.device)))?;
    if let Some(audio) = &s.audio {
        if hardware.audio(audio).is_none() {
            let present = hardware.audio_names();
            return Err(Refused::Invalid(if present.is_empty() {
                format!("No sound card captures as {audio:?} on this box; it has none now.")
            } else {
                format!(
                    "No sound card captures as {audio:?} on this box; it has: {}.",
                    present.join(", ")
                )
            }));
        }
    }
    let saved = match existing {
        Some(name) => sources::update_capture(&ops.db, name, &s)
            .await
            .map(|()| name.to_string()),
        None => {
            let name = i.name.trim();
            sources::add_capture(&ops.db, name, &s)
                .await
                .map(|()| name.to_string())
        }
    };
    let name = match saved {
        Ok(name) => name,
        Err(SourceError::Db(e)) => return Err(Refused::failed(e)),
        Err(e @ SourceError::NoSuchSource(_)) => return Err(Refused::NotFound(format!("{e}."))),
        Err(e @ (SourceError::Exists(_) | SourceError::TakenByStream(_))) => {
            return Err(Refused::Conflict(format!("{e}.")))
        }
        Err(e) => return Err(Refused::Invalid(format!("{e}."))),
    };
    if existing.is_none() {
        streams::apply_defaults(ops, &name).await;
    }
    ops.changed().await;
    let fps = choice.rate.map_or(30.0, |r| r.fps());
    let what = choice.to_string();
    let how = if choice.encodes() {
        format!(
            "encoded to H.264 at {:.1} Mbit/s",
            f64::from(capture::bitrate_for(s.bitrate, choice.height, fps)) / 1e6
        )
    } else {
        "passed through as the camera encodes it".to_string()
    };
    let how = match &s.audio {
        Some(a) => format!("{how}, with sound from {a} as AAC-LC"),
        None => how,
    };
    let (action, verb) = match existing {
        Some(_) => ("capture.edit", "saved"),
        None => ("capture.add", "added"),
    };
    ops.audit(action, &name).await;
    Ok((
        name.clone(),
        format!(
            "Capture source \u{201c}{name}\u{201d} {verb}: {what}, {how}. It goes live within seconds."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::system::hardware::v4l2::{Format, Rate, Rates, Size, Sizes};
    use crate::system::hardware::VideoDevice;
    use std::sync::Arc;

    fn inventory() -> Inventory {
        Inventory {
            video: vec![VideoDevice {
                id: "usb-Cam_123-video-index0".into(),
                node: "/dev/video0".into(),
                name: "Cam".into(),
                driver: "uvcvideo".into(),
                bus: "usb-1".into(),
                formats: vec![Format {
                    fourcc: crate::ingest::capture::choose::YUYV,
                    description: "YUYV 4:2:2".into(),
                    compressed: false,
                    sizes: Sizes::Discrete {
                        sizes: vec![Size {
                            width: 640,
                            height: 480,
                            rates: Rates::Discrete {
                                rates: vec![Rate { num: 30, den: 1 }],
                            },
                        }],
                    },
                }],
                error: None,
            }],
            sound: vec![crate::system::hardware::sound::Card {
                index: 1,
                id: "Cam".into(),
                driver: "USB-Audio".into(),
                name: "Cam at usb-1".into(),
                captures: vec![crate::system::hardware::sound::Pcm {
                    device: 0,
                    name: "USB Audio".into(),
                    alsa: "hw:CARD=Cam,DEV=0".into(),
                    substreams: 1,
                }],
            }],
            ..Inventory::default()
        }
    }

    #[tokio::test]
    async fn a_source_is_saved_only_for_a_device_that_offers_what_is_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = crate::db::open(dir.path()).await.expect("open");
        let ops = Ops::cli(pool.clone(), Arc::new(Config::default()));
        let hw = inventory();
        let input = |device, size, fps, bitrate| CaptureInput {
            name: "stage",
            device,
            size,
            fps,
            bitrate,
            audio: "",
        };
        let with_sound = |audio| CaptureInput {
            audio,
            ..input("usb-Cam_123-video-index0", "", "", "")
        };
        for (i, why) in [
            (
                input("usb-Other-video-index0", "", "", ""),
                "it has: usb-Cam_123-video-index0",
            ),
            (
                input("usb-Cam_123-video-index0", "1280x720", "", ""),
                "does not offer 1280x720; it offers YUYV (YUYV 4:2:2): 640x480 at 30 fps",
            ),
            (
                input("usb-Cam_123-video-index0", "", "25", ""),
                "does not offer 25 fps",
            ),
            (
                input("usb-Cam_123-video-index0", "big", "", ""),
                "give width x height",
            ),
            (input("usb-Cam_123-video-index0", "", "0", ""), "above 0"),
            (
                input("usb-Cam_123-video-index0", "", "", "10G"),
                "from 100k to 50M",
            ),
            (input("../../etc", "", "", ""), "stable ID"),
            (with_sound("default"), "such as hw:CARD=C920,DEV=0"),
            (
                with_sound("hw:CARD=Other,DEV=0"),
                "it has: hw:CARD=Cam,DEV=0",
            ),
        ] {
            let e = save(&ops, &i, &hw, None).await.expect_err(why);
            assert!(matches!(&e, Refused::Invalid(m) if m.contains(why)), "{e}");
        }
        assert!(sources::list(&pool).await.expect("list").is_empty());
        let (name, message) = save(
            &ops,
            &input("usb-Cam_123-video-index0", "640x480", "30", "1500k"),
            &hw,
            None,
        )
        .await
        .expect("saved");
        assert_eq!(name, "stage");
        assert!(
            message.contains("YUYV 640x480 at 30 fps, encoded to H.264 at 1.5 Mbit/s"),
            "{message}"
        );
        let rows = sources::list(&pool).await.expect("list");
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert!(r.is_capture());
        assert_eq!(
            (r.device.as_str(), r.width, r.height, r.fps, r.video_bitrate),
            ("usb-Cam_123-video-index0", 640, 480, 30.0, 1_500_000)
        );
        assert_eq!(r.display_url(), "device usb-Cam_123-video-index0");
        assert_eq!(r.audio, "");
        // The name is taken now; a change of settings goes to the same row.
        let e = save(
            &ops,
            &input("usb-Cam_123-video-index0", "", "", ""),
            &hw,
            None,
        )
        .await
        .expect_err("taken");
        assert!(matches!(e, Refused::Conflict(_)), "{e}");
        save(
            &ops,
            &input("usb-Cam_123-video-index0", "", "", ""),
            &hw,
            Some("stage"),
        )
        .await
        .expect("edited");
        let r = &sources::list(&pool).await.expect("list")[0];
        assert_eq!((r.width, r.height, r.fps, r.video_bitrate), (0, 0, 0.0, 0));
        // With the sound of the camera's microphone.
        let (_, message) = save(&ops, &with_sound("hw:CARD=Cam,DEV=0"), &hw, Some("stage"))
            .await
            .expect("with sound");
        assert!(
            message.contains("with sound from hw:CARD=Cam,DEV=0 as AAC-LC"),
            "{message}"
        );
        let r = &sources::list(&pool).await.expect("list")[0];
        assert_eq!(r.audio, "hw:CARD=Cam,DEV=0");
        // An RTSP camera's edit does not reach a capture source, nor the reverse.
        let e = save(
            &ops,
            &input("usb-Cam_123-video-index0", "", "", ""),
            &hw,
            Some("nosuch"),
        )
        .await
        .expect_err("no such");
        assert!(matches!(e, Refused::NotFound(_)), "{e}");
        assert!(matches!(
            sources::update(&pool, "stage", "rtsp://10.0.0.9/x", sources::Transport::Tcp).await,
            Err(SourceError::NoSuchSource(_))
        ));
    }
}
