//! Which format, size and frame rate to capture a device in, from what it offers
//! (`VIDIOC_ENUM_FMT`, `VIDIOC_ENUM_FRAMESIZES`, `VIDIOC_ENUM_FRAMEINTERVALS`). Sans-IO.
//!
//! Asked for a size or rate, only formats that offer exactly it are candidates; else the
//! largest size up to 1920x1080 and the fastest rate up to 30 fps win (a small box
//! should not encode 4K, and most viewers watch at 30). Among formats that offer the
//! chosen size and rate: H.264 the camera encodes itself (passed through, nothing to
//! encode here), then raw pixels (`YUYV`, `NV12`, `YU12`: no decoding, no loss), then
//! Motion-JPEG (decoded, then encoded).

use crate::system::hardware::v4l2::{Format, FourCc, Rate, Rates, Sizes};
use std::fmt;

/// `V4L2_PIX_FMT_H264`: H.264 in Annex B byte stream format, one access unit a buffer.
pub const H264: FourCc = FourCc::new(b"H264");
/// `V4L2_PIX_FMT_MJPEG`: Motion-JPEG, one JPEG a buffer.
pub const MJPG: FourCc = FourCc::new(b"MJPG");
/// `V4L2_PIX_FMT_JPEG`: what some drivers call Motion-JPEG.
pub const JPEG: FourCc = FourCc::new(b"JPEG");
/// `V4L2_PIX_FMT_YUYV`: 4:2:2 packed.
pub const YUYV: FourCc = FourCc::new(b"YUYV");
/// `V4L2_PIX_FMT_NV12`: 4:2:0, a luma plane and an interleaved chroma plane.
pub const NV12: FourCc = FourCc::new(b"NV12");
/// `V4L2_PIX_FMT_YUV420`: 4:2:0 planar, the layout OpenH264 takes.
pub const YU12: FourCc = FourCc::new(b"YU12");

/// The largest size chosen when none is asked for, in pixels.
pub const DEFAULT_MAX_SIZE: (u32, u32) = (1920, 1080);
/// The fastest rate chosen when none is asked for, in frames per second.
pub const DEFAULT_MAX_FPS: f64 = 30.0;

/// How good a format is to capture in; lower is better. `None` for formats streambox
/// cannot take.
fn rank(fourcc: FourCc) -> Option<u8> {
    match fourcc {
        H264 => Some(0),
        YUYV | NV12 | YU12 => Some(1),
        MJPG | JPEG => Some(2),
        _ => None,
    }
}

/// What a capture source asks of its device; `None` leaves it to [`choose`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Request {
    /// Width and height in pixels.
    pub size: Option<(u32, u32)>,
    /// Frames per second.
    pub fps: Option<f64>,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.size, self.fps) {
            (Some((w, h)), Some(r)) => write!(f, "{w}x{h} at {r} fps"),
            (Some((w, h)), None) => write!(f, "{w}x{h}"),
            (None, Some(r)) => write!(f, "{r} fps"),
            (None, None) => f.write_str("any size and rate"),
        }
    }
}

/// The format, size and rate to capture in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// The pixel format.
    pub fourcc: FourCc,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The frame rate to ask for; `None` when the device lists none (it has one).
    pub rate: Option<Rate>,
}

impl fmt::Display for Choice {
    /// `YUYV 1280x720 at 30 fps` (without the rate when the device lists none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.fourcc, self.width, self.height)?;
        if let Some(r) = self.rate {
            write!(f, " at {r} fps")?;
        }
        Ok(())
    }
}

impl Choice {
    /// Whether pictures are encoded here (everything but H.264 from the camera).
    pub fn encodes(&self) -> bool {
        self.fourcc != H264
    }
}

/// Why no format fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChooseError {
    /// The device offers none of H.264, Motion-JPEG, YUYV, NV12 and YU12.
    #[error("the device offers no format streambox can take (it offers {offered}; streambox takes H264, MJPG, YUYV, NV12 and YU12)")]
    NoUsableFormat {
        /// The formats it offers.
        offered: String,
    },
    /// No usable format offers the size and rate asked for.
    #[error("the device does not offer {asked}; it offers {offered}")]
    NotOffered {
        /// What was asked, as people write it.
        asked: String,
        /// What its usable formats offer ([`crate::system::hardware::format_summary`]).
        offered: String,
    },
}

/// Whether `fps` is `r` (within 0.5 %: 29.97 is not 30).
fn same_rate(fps: f64, r: Rate) -> bool {
    (r.fps() - fps).abs() <= fps * 0.005
}

/// `fps` as a fraction: whole numbers over 1, else over 1000 (29.97 → 29970/1000).
fn rate_of(fps: f64) -> Rate {
    if (fps - fps.round()).abs() < 1e-6 {
        Rate {
            num: fps.round() as u32,
            den: 1,
        }
    } else {
        Rate {
            num: (fps * 1000.0).round() as u32,
            den: 1000,
        }
    }
}

/// The rate to capture at among `rates`, for `fps` if asked; `Some(None)` when the
/// device lists no rate at all.
fn pick_rate(rates: &Rates, fps: Option<f64>) -> Option<Option<Rate>> {
    match (rates, fps) {
        (Rates::Discrete { rates }, _) if rates.is_empty() => Some(None),
        (Rates::Discrete { rates }, Some(fps)) => {
            rates.iter().copied().find(|r| same_rate(fps, *r)).map(Some)
        }
        (Rates::Discrete { rates }, None) => {
            let best = rates
                .iter()
                .copied()
                .filter(|r| r.fps() <= DEFAULT_MAX_FPS + 0.01)
                .max_by(|a, b| a.fps().total_cmp(&b.fps()))
                .or_else(|| {
                    rates
                        .iter()
                        .copied()
                        .min_by(|a, b| a.fps().total_cmp(&b.fps()))
                });
            best.map(Some)
        }
        (Rates::Range { min, max }, Some(fps)) => {
            (fps >= min.fps() - 1e-6 && fps <= max.fps() + 1e-6).then(|| Some(rate_of(fps)))
        }
        (Rates::Range { min, max }, None) => {
            let fps = DEFAULT_MAX_FPS.clamp(min.fps(), max.fps());
            Some(Some(if (fps - max.fps()).abs() < 1e-9 {
                *max
            } else {
                rate_of(fps)
            }))
        }
    }
}

/// The sizes of `sizes` worth considering for `asked`: exactly it when asked (if
/// offered), else every discrete size, or for a range 1920x1080, 1280x720 and its largest,
/// where they fit it.
fn candidate_sizes(sizes: &Sizes, asked: Option<(u32, u32)>) -> Vec<((u32, u32), &Rates)> {
    match sizes {
        Sizes::Discrete { sizes } => sizes
            .iter()
            .filter(|s| asked.is_none_or(|a| a == (s.width, s.height)))
            .map(|s| ((s.width, s.height), &s.rates))
            .collect(),
        Sizes::Range {
            min,
            max,
            step,
            rates,
        } => {
            let fits = |(w, h): (u32, u32)| {
                (min.0..=max.0).contains(&w)
                    && (min.1..=max.1).contains(&h)
                    && (w - min.0) % step.0.max(1) == 0
                    && (h - min.1) % step.1.max(1) == 0
            };
            let wanted = match asked {
                Some(a) => vec![a],
                None => vec![DEFAULT_MAX_SIZE, (1280, 720), *max],
            };
            wanted
                .into_iter()
                .filter(|s| fits(*s))
                .map(|s| (s, rates))
                .collect()
        }
    }
}

/// The best way to capture from a device offering `formats` what `request` asks (see
/// the module's documentation for "best").
///
/// # Errors
/// [`ChooseError::NoUsableFormat`] when it offers nothing streambox takes,
/// [`ChooseError::NotOffered`] (with what it does offer) when nothing fits the request.
pub fn choose(formats: &[Format], request: &Request) -> Result<Choice, ChooseError> {
    let usable: Vec<&Format> = formats
        .iter()
        .filter(|f| rank(f.fourcc).is_some())
        .collect();
    if usable.is_empty() {
        let offered: Vec<String> = formats.iter().map(|f| f.fourcc.to_string()).collect();
        return Err(ChooseError::NoUsableFormat {
            offered: if offered.is_empty() {
                "nothing".into()
            } else {
                offered.join(", ")
            },
        });
    }
    // The best so far, with its sort key: (size, rate, format) as below.
    type Key = ((bool, i64), (bool, i64), std::cmp::Reverse<u8>);
    let mut best: Option<(Choice, Key)> = None;
    for f in &usable {
        let Some(rank) = rank(f.fourcc) else {
            continue;
        };
        for ((width, height), rates) in candidate_sizes(&f.sizes, request.size) {
            let Some(rate) = pick_rate(rates, request.fps) else {
                continue;
            };
            // Larger is better up to the cap, and beyond it smaller is better; the
            // same for the rate (in thousandths of a frame per second).
            let area = i64::from(width) * i64::from(height);
            let cap = i64::from(DEFAULT_MAX_SIZE.0) * i64::from(DEFAULT_MAX_SIZE.1);
            let size_key = (area <= cap, if area <= cap { area } else { -area });
            let milli = rate.map_or(0, |r| (r.fps() * 1000.0).round() as i64);
            let fps_cap = (DEFAULT_MAX_FPS * 1000.0) as i64 + 10;
            let rate_key = (
                milli <= fps_cap,
                if milli <= fps_cap { milli } else { -milli },
            );
            let choice = Choice {
                fourcc: f.fourcc,
                width,
                height,
                rate,
            };
            let key = (size_key, rate_key, std::cmp::Reverse(rank));
            if best.as_ref().is_none_or(|(_, k)| key > *k) {
                best = Some((choice, key));
            }
        }
    }
    best.map(|b| b.0).ok_or_else(|| ChooseError::NotOffered {
        asked: request.to_string(),
        offered: usable
            .iter()
            .map(|f| crate::system::hardware::format_summary(f))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::hardware::v4l2::Size;

    fn discrete(fourcc: FourCc, sizes: &[(u32, u32, &[u32])]) -> Format {
        Format {
            fourcc,
            description: fourcc.to_string(),
            compressed: matches!(fourcc, H264 | MJPG),
            sizes: Sizes::Discrete {
                sizes: sizes
                    .iter()
                    .map(|(w, h, r)| Size {
                        width: *w,
                        height: *h,
                        rates: Rates::Discrete {
                            rates: r.iter().map(|&num| Rate { num, den: 1 }).collect(),
                        },
                    })
                    .collect(),
            },
        }
    }

    /// A typical USB webcam: raw only slowly at large sizes, Motion-JPEG fast.
    fn webcam() -> Vec<Format> {
        vec![
            discrete(
                YUYV,
                &[
                    (1920, 1080, &[5]),
                    (1280, 720, &[10]),
                    (640, 480, &[30, 15]),
                ],
            ),
            discrete(MJPG, &[(1920, 1080, &[30, 15]), (1280, 720, &[60, 30])]),
        ]
    }

    #[test]
    fn the_largest_size_at_the_best_rate_then_the_best_format() {
        let c = choose(&webcam(), &Request::default()).expect("choice");
        assert_eq!(
            (c.fourcc, c.width, c.height, c.rate),
            (MJPG, 1920, 1080, Some(Rate { num: 30, den: 1 }))
        );
        assert!(c.encodes());
        // Asked for 640x480: raw YUYV beats Motion-JPEG (which does not offer it anyway).
        let small = Request {
            size: Some((640, 480)),
            fps: None,
        };
        let c = choose(&webcam(), &small).expect("choice");
        assert_eq!((c.fourcc, c.rate.map(|r| r.num)), (YUYV, Some(30)));
        // 720p at 60 only in Motion-JPEG; at 10 only in YUYV.
        let fast = Request {
            size: Some((1280, 720)),
            fps: Some(60.0),
        };
        assert_eq!(choose(&webcam(), &fast).expect("60").fourcc, MJPG);
        let slow = Request {
            size: Some((1280, 720)),
            fps: Some(10.0),
        };
        assert_eq!(choose(&webcam(), &slow).expect("10").fourcc, YUYV);
        // A camera that encodes H.264 itself is passed through.
        let mut formats = webcam();
        formats.push(discrete(H264, &[(1920, 1080, &[30])]));
        let c = choose(&formats, &Request::default()).expect("choice");
        assert_eq!(c.fourcc, H264);
        assert!(!c.encodes());
    }

    #[test]
    fn no_4k_unless_asked_and_no_more_than_30_fps_unless_asked() {
        let f = vec![discrete(
            YUYV,
            &[
                (3840, 2160, &[30]),
                (1920, 1080, &[60, 30]),
                (640, 360, &[60]),
            ],
        )];
        let c = choose(&f, &Request::default()).expect("choice");
        assert_eq!((c.width, c.rate.map(|r| r.num)), (1920, Some(30)));
        let only_big = vec![discrete(YUYV, &[(3840, 2160, &[60])])];
        let c = choose(&only_big, &Request::default()).expect("what there is");
        assert_eq!((c.width, c.rate.map(|r| r.num)), (3840, Some(60)));
    }

    #[test]
    fn ranges_take_what_is_asked_within_them() {
        let f = vec![Format {
            fourcc: NV12,
            description: "NV12".into(),
            compressed: false,
            sizes: Sizes::Range {
                min: (16, 16),
                max: (3840, 2160),
                step: (2, 2),
                rates: Rates::Range {
                    min: Rate { num: 1, den: 1 },
                    max: Rate { num: 60, den: 1 },
                },
            },
        }];
        let c = choose(&f, &Request::default()).expect("choice");
        assert_eq!(
            (c.width, c.height, c.rate),
            (1920, 1080, Some(Rate { num: 30, den: 1 }))
        );
        let r = Request {
            size: Some((800, 600)),
            fps: Some(29.97),
        };
        let c = choose(&f, &r).expect("choice");
        assert_eq!(
            (c.width, c.height, c.rate),
            (
                800,
                600,
                Some(Rate {
                    num: 29970,
                    den: 1000
                })
            )
        );
        // An odd width is off the step.
        let odd = Request {
            size: Some((801, 600)),
            fps: None,
        };
        assert!(matches!(
            choose(&f, &odd),
            Err(ChooseError::NotOffered { .. })
        ));
    }

    #[test]
    fn refusals_say_what_the_device_offers() {
        let r = Request {
            size: Some((1280, 720)),
            fps: Some(25.0),
        };
        let e = choose(&webcam(), &r).expect_err("no 720p25");
        let text = e.to_string();
        assert!(
            text.starts_with("the device does not offer 1280x720 at 25 fps; it offers YUYV")
                && text.contains("MJPG (MJPG): 1920x1080 at 30/15 fps, 1280x720 at 60/30 fps"),
            "{text}"
        );
        let bayer = vec![discrete(FourCc::new(b"BA81"), &[(640, 480, &[30])])];
        let e = choose(&bayer, &Request::default()).expect_err("bayer");
        assert!(e.to_string().contains("it offers BA81"), "{e}");
        assert!(matches!(
            choose(&[], &Request::default()),
            Err(ChooseError::NoUsableFormat { .. })
        ));
    }
}
