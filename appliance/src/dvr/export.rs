//! Clip export: a recorded range as one progressive MP4 (`moov` before `mdat`), made
//! from the recorded segments without re-encoding. Video starts at the last keyframe at
//! or before the requested start; audio starts with it; both end at the requested end. A
//! gap in the recording is cut out (the clip plays straight through it).
//!
//! [`plan`] reads the segments' `moof` boxes and builds the header and the list of byte
//! ranges that make up the `mdat`; [`ExportPlan::write_to`] or a streaming HTTP body then
//! copies those ranges, so a large export never sits in memory.

use super::playback::{RecordedSegment, TimeRange};
use crate::media::mp4::{self, InitInfo, Mp4Error, TrackTable};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why a clip cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Nothing recorded in the range.
    #[error("nothing recorded in that range")]
    Empty,
    /// The codec parameters change within the range.
    #[error(
        "the range spans a change of codec parameters; export the parts on either side separately"
    )]
    ParametersChange,
    /// A recorded file did not parse.
    #[error("recording {path}: {error}")]
    Corrupt {
        /// The file, relative to the recordings directory.
        path: String,
        /// What is wrong with it.
        error: Mp4Error,
    },
    /// A file could not be read.
    #[error("reading recordings: {0}")]
    Io(#[from] io::Error),
}

/// A clip ready to be written: header bytes, then byte ranges of recorded files.
#[derive(Debug)]
pub struct ExportPlan {
    /// `ftyp`, `moov` and the `mdat` header.
    pub header: Vec<u8>,
    /// The `mdat` payload: (file, offset, length) in order.
    pub pieces: Vec<(PathBuf, u64, u64)>,
    /// Seconds of video (or audio, without video) in the clip.
    pub seconds: f64,
}

impl ExportPlan {
    /// Total size of the clip in bytes.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.pieces.iter().map(|p| p.2).sum::<u64>()
    }

    /// Whether the clip has no bytes (never: it always has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the clip to `out`, reading the pieces in blocks of at most 1 MiB.
    ///
    /// # Errors
    /// The I/O error.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.header)?;
        let mut buf = vec![0u8; 1 << 20];
        for (path, offset, len) in &self.pieces {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(*offset))?;
            let mut left = *len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                f.read_exact(&mut buf[..n])?;
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
        }
        Ok(())
    }
}

/// One track's samples kept from one segment.
struct Kept {
    msn: i64,
    path: PathBuf,
    samples: Vec<mp4::SampleRef>,
}

/// Plans the clip of `range` from the segments of one recorded range (video first, audio
/// with the same sequence numbers, as [`super::playback::segments`] returns them).
/// Reads files: call on a blocking thread.
///
/// # Errors
/// [`ExportError`].
pub fn plan(
    root: &Path,
    video: &[RecordedSegment],
    audio: &[RecordedSegment],
    range: TimeRange,
) -> Result<ExportPlan, ExportError> {
    let lead_is_video = !video.is_empty();
    let (lead, other) = if lead_is_video {
        (video, audio)
    } else {
        (audio, &[][..])
    };
    if lead.is_empty() {
        return Err(ExportError::Empty);
    }
    let read = |seg: &RecordedSegment| -> Result<(InitInfo, Vec<mp4::SampleRef>), ExportError> {
        let corrupt = |path: &str, error| ExportError::Corrupt {
            path: path.to_string(),
            error,
        };
        let init = std::fs::read(root.join(&seg.init_path))?;
        let init = mp4::read_init(&init).map_err(|e| corrupt(&seg.init_path, e))?;
        let data = std::fs::read(root.join(&seg.path))?;
        let samples = mp4::read_fragments(&data).map_err(|e| corrupt(&seg.path, e))?;
        Ok((init, samples))
    };
    // Wall-clock ms of a sample of `seg`, whose first sample decodes at `first`.
    let wall = |seg: &RecordedSegment, first: u64, s: &mp4::SampleRef| {
        seg.start_wall_ms + ((s.dts - first) * 1000 / seg.timescale.max(1) as u64) as i64
    };
    let mut lead_init: Option<InitInfo> = None;
    let mut lead_kept: Vec<Kept> = Vec::new();
    let mut all: Vec<(usize, mp4::SampleRef, i64)> = Vec::new(); // (segment, sample, wall)
    for (i, seg) in lead.iter().enumerate() {
        let (init, samples) = read(seg)?;
        match &lead_init {
            Some(known) if *known != init => return Err(ExportError::ParametersChange),
            Some(_) => {}
            None => lead_init = Some(init),
        }
        let first = samples.first().map_or(0, |s| s.dts);
        all.extend(samples.into_iter().map(|s| (i, s, wall(seg, first, &s))));
    }
    // Start at the last sync sample at or before the start (or the first one after it).
    let start = all
        .iter()
        .rposition(|(_, s, w)| s.sync && *w <= range.start_ms)
        .or_else(|| all.iter().position(|(_, s, _)| s.sync))
        .ok_or(ExportError::Empty)?;
    let start_wall = all[start].2;
    for (i, s, w) in all.into_iter().skip(start) {
        if w >= range.end_ms {
            break;
        }
        match lead_kept.last_mut() {
            Some(k) if k.msn == lead[i].msn => k.samples.push(s),
            _ => lead_kept.push(Kept {
                msn: lead[i].msn,
                path: root.join(&lead[i].path),
                samples: vec![s],
            }),
        }
    }
    let mut other_init: Option<InitInfo> = None;
    let mut other_kept: Vec<Kept> = Vec::new();
    for seg in other {
        if !lead_kept.iter().any(|k| k.msn == seg.msn) {
            continue;
        }
        let (init, samples) = read(seg)?;
        match &other_init {
            Some(known) if *known != init => return Err(ExportError::ParametersChange),
            Some(_) => {}
            None => other_init = Some(init),
        }
        let first = samples.first().map_or(0, |s| s.dts);
        // Audio from the first picture's time (within 10 ms) to the end.
        let kept: Vec<_> = samples
            .into_iter()
            .filter(|s| {
                let w = wall(seg, first, s);
                w + 10 >= start_wall && w < range.end_ms
            })
            .collect();
        if !kept.is_empty() {
            other_kept.push(Kept {
                msn: seg.msn,
                path: root.join(&seg.path),
                samples: kept,
            });
        }
    }
    // Interleave by segment: the lead's chunk, then the other track's.
    let mut pieces = Vec::new();
    let mut tables = vec![table(lead_init.ok_or(ExportError::Empty)?)];
    if let Some(init) = other_init {
        tables.push(table(init));
    }
    let mut payload = 0u64;
    for k in &lead_kept {
        for (t, kept) in [
            (0usize, Some(k)),
            (1, other_kept.iter().find(|o| o.msn == k.msn)),
        ] {
            let (Some(kept), Some(table)) = (kept, tables.get_mut(t)) else {
                continue;
            };
            // A chunk is a run of samples contiguous in the file: one per fragment.
            for run in kept
                .samples
                .chunk_by(|a, b| a.offset + u64::from(a.size) == b.offset)
            {
                let (Some(first), Some(last)) = (run.first(), run.last()) else {
                    continue;
                };
                let len = last.offset + u64::from(last.size) - first.offset;
                table.chunks.push((run.len() as u32, payload));
                table
                    .samples
                    .extend(run.iter().map(|s| (s.size, s.duration, s.cts, s.sync)));
                pieces.push((kept.path.clone(), first.offset, len));
                payload += len;
            }
        }
    }
    if tables[0].samples.is_empty() {
        return Err(ExportError::Empty);
    }
    let seconds = tables[0]
        .samples
        .iter()
        .map(|s| f64::from(s.1))
        .sum::<f64>()
        / f64::from(tables[0].init.timescale.max(1));
    Ok(ExportPlan {
        header: mp4::progressive_header(&tables, payload),
        pieces,
        seconds,
    })
}

fn table(init: InitInfo) -> TrackTable {
    TrackTable {
        init,
        samples: Vec::new(),
        chunks: Vec::new(),
    }
}
