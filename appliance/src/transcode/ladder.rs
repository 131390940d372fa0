//! The ABR ladder of a stream: which lower renditions (rungs) to make from its source,
//! at what size, bitrate and frame rate.
//!
//! A ladder is written as a comma-separated list of rungs, highest first, which is also
//! their priority (the last is dropped first under overload):
//!
//! - `720p`, `480p`, … — a rung of that height with the default bitrate of [`DEFAULTS`];
//! - `720p:2500k`, `480p:900k:15fps`, `960x540:1500k` — with its bitrate (kbit/s, or
//!   `M` for Mbit/s), frame rate cap, or a box (the picture fits inside it, aspect ratio
//!   kept);
//! - `source` — passthrough only (no rungs); `standard` = `720p,480p,360p`;
//!   `full` = `1080p,720p,480p,360p`.
//!
//! The source rendition is always passed through untouched. Rungs not below the source
//! (in height) are skipped when the ladder is planned for a source size. Rung keyframes
//! follow the source's, so every rendition's segments start at the same times.

use super::video::Quality;
use std::fmt;

/// The common ladder: (height, video bitrate in bit/s). Apple's HLS authoring guidance
/// and the usual encoder presets put 720p at 2.5–3 Mbit/s, 480p near 1 Mbit/s and 360p
/// near 0.6 Mbit/s.
pub const DEFAULTS: [(u32, u32); 6] = [
    (1080, 5_000_000),
    (720, 2_800_000),
    (540, 1_800_000),
    (480, 1_000_000),
    (360, 600_000),
    (240, 300_000),
];

/// Rungs at most in one ladder.
pub const MAX_RUNGS: usize = 6;

/// A ladder that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LadderError {
    /// A rung that is not `NNNp[:BITRATE][:FPSfps]` or `WxH[:…]`.
    #[error("{0:?} is not a rung: give a height (720p), a box (960x540), or a preset (source, standard, full), optionally with :BITRATE (2500k, 3M) and :FPS (30fps)")]
    Syntax(String),
    /// A rung size, bitrate or frame rate outside what we encode.
    #[error("{0}")]
    OutOfRange(String),
    /// More rungs than [`MAX_RUNGS`].
    #[error("at most {MAX_RUNGS} rungs")]
    TooMany,
}

/// The size a rung asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// This height; the width follows the source's aspect ratio.
    Height(u32),
    /// The picture fits inside this box, aspect ratio kept.
    Box(u32, u32),
}

/// One rung as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    /// The size asked for.
    pub size: Size,
    /// Target video bitrate, bit/s.
    pub bitrate: u32,
    /// Frame rate cap, frames per second (`None`: the source's).
    pub max_fps: Option<f64>,
}

impl Rung {
    /// The rung's name in URLs and logs: `720p`, or `960x540` for a box.
    pub fn name(&self) -> String {
        match self.size {
            Size::Height(h) => format!("{h}p"),
            Size::Box(w, h) => format!("{w}x{h}"),
        }
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}k", self.name(), self.bitrate / 1000)?;
        if let Some(fps) = self.max_fps {
            write!(f, ":{fps}fps")?;
        }
        Ok(())
    }
}

/// A ladder: rungs in priority order (the first is kept longest). Empty: passthrough.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ladder {
    /// The rungs, highest priority first.
    pub rungs: Vec<Rung>,
}

impl fmt::Display for Ladder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rungs.is_empty() {
            return f.write_str("source");
        }
        let rungs: Vec<String> = self.rungs.iter().map(Rung::to_string).collect();
        f.write_str(&rungs.join(","))
    }
}

/// The bitrate, in bit/s, that a picture `height` pixels tall gets by default: the
/// nearest entry of [`DEFAULTS`] at or below it, scaled by area (100 kbit/s to 20 Mbit/s).
pub fn default_bitrate(height: u32) -> u32 {
    // The nearest entry of the table at or below this height, scaled by area.
    let (h, bps) = DEFAULTS
        .iter()
        .copied()
        .find(|(h, _)| *h <= height)
        .unwrap_or(DEFAULTS[DEFAULTS.len() - 1]);
    let scaled = u64::from(bps) * u64::from(height) * u64::from(height) / u64::from(h * h);
    scaled.clamp(100_000, 20_000_000) as u32
}

/// A bitrate as people type it, `2500k` or `3M` (`k`: kbit/s, `M`: Mbit/s), in bit/s;
/// `None` for anything else, zero or negative.
pub fn parse_bitrate(s: &str) -> Option<u32> {
    let (num, mult) = if let Some(n) = s.strip_suffix(['k', 'K']) {
        (n, 1_000.0)
    } else if let Some(n) = s.strip_suffix(['m', 'M']) {
        (n, 1_000_000.0)
    } else {
        return None;
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v > 0.0).then(|| (v * mult).min(f64::from(u32::MAX)) as u32)
}

fn parse_rung(text: &str) -> Result<Rung, LadderError> {
    let syntax = || LadderError::Syntax(text.to_string());
    let mut fields = text.split(':');
    let size = fields.next().ok_or_else(syntax)?;
    let size = if let Some(h) = size.strip_suffix('p') {
        Size::Height(h.parse().map_err(|_| syntax())?)
    } else if let Some((w, h)) = size.split_once('x') {
        Size::Box(
            w.parse().map_err(|_| syntax())?,
            h.parse().map_err(|_| syntax())?,
        )
    } else {
        return Err(syntax());
    };
    let (w, h) = match size {
        Size::Height(h) => (h, h),
        Size::Box(w, h) => (w, h),
    };
    if !(64..=2160).contains(&h) || !(64..=3840).contains(&w) {
        return Err(LadderError::OutOfRange(format!(
            "{text}: rungs are 64 to 2160 pixels high and at most 3840 wide"
        )));
    }
    let mut rung = Rung {
        size,
        bitrate: default_bitrate(h),
        max_fps: None,
    };
    for field in fields {
        if let Some(fps) = field.strip_suffix("fps") {
            let fps: f64 = fps.parse().map_err(|_| syntax())?;
            if !(1.0..=120.0).contains(&fps) {
                return Err(LadderError::OutOfRange(format!(
                    "{text}: frame rates are 1 to 120 fps"
                )));
            }
            rung.max_fps = Some(fps);
        } else if let Some(bps) = parse_bitrate(field) {
            if !(50_000..=50_000_000).contains(&bps) {
                return Err(LadderError::OutOfRange(format!(
                    "{text}: bitrates are 50k to 50M"
                )));
            }
            rung.bitrate = bps;
        } else {
            return Err(syntax());
        }
    }
    Ok(rung)
}

impl std::str::FromStr for Ladder {
    type Err = LadderError;

    /// Parses the syntax in the module documentation.
    fn from_str(s: &str) -> Result<Ladder, LadderError> {
        let mut rungs = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "source" | "passthrough" => {}
                "standard" => rungs.extend(["720p", "480p", "360p"].map(parse_rung)),
                "full" => rungs.extend(["1080p", "720p", "480p", "360p"].map(parse_rung)),
                _ => rungs.push(parse_rung(item)),
            }
        }
        let mut rungs: Vec<Rung> = rungs.into_iter().collect::<Result<_, _>>()?;
        // The same name twice would be the same URL: keep the first.
        let mut seen = std::collections::BTreeSet::new();
        rungs.retain(|r| seen.insert(r.name()));
        if rungs.len() > MAX_RUNGS {
            return Err(LadderError::TooMany);
        }
        Ok(Ladder { rungs })
    }
}

/// A rung planned for a source: its output size.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The rung as configured.
    pub rung: Rung,
    /// Its name (`720p`).
    pub name: String,
    /// Output width in pixels, even.
    pub width: u32,
    /// Output height in pixels, even.
    pub height: u32,
}

/// Rounds to the nearest even number, at least 2.
fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32).max(1) * 2
}

impl Ladder {
    /// The rungs to make for a `width`×`height` source, in priority order: each scaled
    /// with the source's aspect ratio to even dimensions, and only those smaller than
    /// the source (a rung at or above it would only repeat the source rendition).
    pub fn plan(&self, width: u32, height: u32) -> Vec<Planned> {
        if width == 0 || height == 0 {
            return Vec::new();
        }
        let (sw, sh) = (f64::from(width), f64::from(height));
        self.rungs
            .iter()
            .filter_map(|r| {
                let scale = match r.size {
                    Size::Height(h) => f64::from(h) / sh,
                    Size::Box(bw, bh) => (f64::from(bw) / sw).min(f64::from(bh) / sh),
                };
                let (w, h) = (even(sw * scale), even(sh * scale));
                (h < height && w <= width).then(|| Planned {
                    name: r.name(),
                    rung: r.clone(),
                    width: w,
                    height: h,
                })
            })
            .collect()
    }
}

/// A stream's ABR settings as stored: its ladder and the quality preset of its rungs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// The rungs (passthrough when never set).
    pub ladder: Ladder,
    /// The rungs' quality preset ([`Quality::Balanced`] when never set).
    pub quality: Quality,
}

/// The ABR settings of stream `stream`. A stored ladder or preset that no longer parses
/// is passthrough or the default preset, and logged.
///
/// # Errors
/// A database error.
pub async fn get(
    pool: &sqlx::SqlitePool,
    stream: &crate::streams::StreamUid,
) -> Result<Settings, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT ladder, quality FROM ladder_settings WHERE stream_uid = ?")
            .bind(stream)
            .fetch_optional(pool)
            .await?;
    let Some((ladder, quality)) = row else {
        return Ok(Settings::default());
    };
    Ok(Settings {
        ladder: ladder.parse().unwrap_or_else(|e| {
            tracing::warn!(%stream, error = %e, "stored ladder does not parse; passthrough only");
            Ladder::default()
        }),
        quality: Quality::from_name(&quality).unwrap_or_else(|| {
            tracing::warn!(%stream, %quality, "stored quality preset unknown; balanced");
            Quality::default()
        }),
    })
}

/// Stores the ladder of stream or camera `name`, its quality preset too when given;
/// returns `false` (storing nothing) when there is no such stream.
///
/// # Errors
/// A database error.
pub async fn set(
    pool: &sqlx::SqlitePool,
    name: &str,
    ladder: Option<&Ladder>,
    quality: Option<Quality>,
) -> Result<bool, sqlx::Error> {
    let Some(named) = crate::streams::lookup(pool, name).await? else {
        return Ok(false);
    };
    // A row made here for a preset alone has no rungs.
    sqlx::query(
        "INSERT INTO ladder_settings (stream_uid, ladder, quality)
         VALUES (?1, COALESCE(?2, 'source'), COALESCE(?3, 'balanced'))
         ON CONFLICT (stream_uid) DO UPDATE SET
             ladder = COALESCE(?2, ladder), quality = COALESCE(?3, quality)",
    )
    .bind(&named.uid)
    .bind(ladder.map(Ladder::to_string))
    .bind(quality.map(Quality::name))
    .execute(pool)
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_parse_and_print() {
        let l: Ladder = "1080p,720p:2500k,480p:900k:15fps,960x540:1.5M"
            .parse()
            .expect("ladder");
        assert_eq!(
            l.to_string(),
            "1080p:5000k,720p:2500k,480p:900k:15fps,960x540:1500k"
        );
        assert_eq!(l.to_string().parse::<Ladder>().expect("round trip"), l);
        assert_eq!("source".parse::<Ladder>().expect("source").rungs, vec![]);
        assert_eq!(Ladder::default().to_string(), "source");
        assert_eq!(
            "standard".parse::<Ladder>().expect("preset").to_string(),
            "720p:2800k,480p:1000k,360p:600k"
        );
        assert_eq!("720p,720p".parse::<Ladder>().expect("dup").rungs.len(), 1);
        for bad in [
            "720",
            "p",
            "720p:fast",
            "720p:10fps:x",
            "9999p",
            "32p",
            "720p:1k",
        ] {
            assert!(bad.parse::<Ladder>().is_err(), "{bad}");
        }
        assert_eq!(
            "240p,360p,480p,540p,720p,1080p,2160p".parse::<Ladder>(),
            Err(LadderError::TooMany)
        );
    }

    #[test]
    fn plans_keep_the_aspect_ratio_in_even_sizes_below_the_source() {
        let l: Ladder = "1080p,720p,480p,360p,400x400".parse().expect("ladder");
        let sizes = |w, h| -> Vec<(String, u32, u32)> {
            l.plan(w, h)
                .into_iter()
                .map(|p| (p.name, p.width, p.height))
                .collect()
        };
        // 16:9 720p source: 1080p and 720p are skipped.
        assert_eq!(
            sizes(1280, 720),
            [
                ("480p".into(), 854, 480),
                ("360p".into(), 640, 360),
                ("400x400".into(), 400, 226)
            ]
        );
        // 4:3 into height rungs keeps 4:3; odd source sizes give even rungs.
        assert_eq!(sizes(640, 480)[0], ("360p".into(), 480, 360));
        assert!(sizes(853, 479)
            .iter()
            .all(|(_, w, h)| w % 2 == 0 && h % 2 == 0));
        // A source below every rung: passthrough only.
        assert!(sizes(320, 180).is_empty());
        assert!(sizes(0, 0).is_empty());
    }
}
