//! Clip export: a recorded range as one progressive MP4 (`moov` before `mdat`), made
//! from the recorded segments without re-encoding. Video starts at the last keyframe at
//! or before the requested start; audio starts with it; both end at the requested end. A
//! gap in the recording is cut out (the clip plays straight through it).
//!
//! [`plan`] reads the segments' `moof` boxes and builds the header and the list of byte
//! ranges that make up the `mdat`; [`ExportPlan::write_to`] or a streaming HTTP body then
//! copies those ranges, so a large export never sits in memory.

use super::playback::{RecordedSegment, TimeRange};
use crate::media::h264::AvcConfig;
use crate::media::mp4::{self, InitInfo, Mp4Error, TrackTable};
use bytes::Bytes;
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
    let mut lead_init: Option<InitInfo> = None;
    let mut lead_kept: Vec<Kept> = Vec::new();
    let mut all: Vec<(usize, mp4::SampleRef, i64)> = Vec::new(); // (segment, sample, wall)
    for (i, seg) in lead.iter().enumerate() {
        let read = read_segment(root, seg)?;
        same_parameters(&mut lead_init, read.init)?;
        let first = read.samples.first().map_or(0, |s| s.dts);
        all.extend(
            read.samples
                .into_iter()
                .map(|s| (i, s, seg.sample_wall_ms(first, &s))),
        );
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
        let read = read_segment(root, seg)?;
        same_parameters(&mut other_init, read.init)?;
        let first = read.samples.first().map_or(0, |s| s.dts);
        // Audio from the first picture's time (within 10 ms) to the end.
        let kept: Vec<_> = read
            .samples
            .into_iter()
            .filter(|s| {
                let w = seg.sample_wall_ms(first, s);
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

/// A recorded segment read back from disk.
pub struct ReadSegment {
    /// From its init segment.
    pub init: InitInfo,
    /// Its samples, with byte ranges into `data`.
    pub samples: Vec<mp4::SampleRef>,
    /// The segment file.
    pub data: Vec<u8>,
}

/// Reads a recorded segment and its init segment. Blocking.
///
/// # Errors
/// [`ExportError::Io`] or [`ExportError::Corrupt`].
pub fn read_segment(root: &Path, seg: &RecordedSegment) -> Result<ReadSegment, ExportError> {
    let corrupt = |path: &str, error| ExportError::Corrupt {
        path: path.to_string(),
        error,
    };
    let init = std::fs::read(root.join(&seg.init_path))?;
    let init = mp4::read_init(&init).map_err(|e| corrupt(&seg.init_path, e))?;
    let data = std::fs::read(root.join(&seg.path))?;
    let samples = mp4::read_fragments(&data).map_err(|e| corrupt(&seg.path, e))?;
    Ok(ReadSegment {
        init,
        samples,
        data,
    })
}

/// Keeps the first init information seen; a different one later is a change of codec
/// parameters, which one progressive track cannot hold.
fn same_parameters(known: &mut Option<InitInfo>, init: InitInfo) -> Result<(), ExportError> {
    match known {
        Some(k) if *k != init => Err(ExportError::ParametersChange),
        Some(_) => Ok(()),
        None => {
            *known = Some(init);
            Ok(())
        }
    }
}

/// A recorded keyframe, ready to decode.
pub struct Keyframe {
    /// Its decoder configuration (from the init segment's `avcC`).
    pub config: AvcConfig,
    /// The access unit: NAL units with length prefixes.
    pub data: Bytes,
    /// Its wall-clock time, ms since the Unix epoch.
    pub wall_ms: i64,
}

/// The last keyframe of video segment `seg` at or before `at_ms` (wall clock), or its
/// first one. Blocking.
///
/// # Errors
/// [`ExportError::Empty`] when the segment has no keyframe; [`ExportError::Io`] or
/// [`ExportError::Corrupt`] for unreadable files or parameters that are not H.264.
pub fn keyframe_at(
    root: &Path,
    seg: &RecordedSegment,
    at_ms: i64,
) -> Result<Keyframe, ExportError> {
    let read = read_segment(root, seg)?;
    let corrupt = |error| ExportError::Corrupt {
        path: seg.init_path.clone(),
        error,
    };
    let record =
        mp4::avc_record(&read.init.stsd).ok_or_else(|| corrupt(Mp4Error::Missing("avcC")))?;
    let config =
        AvcConfig::parse(record).map_err(|_| corrupt(Mp4Error::Unsupported("H.264 parameters")))?;
    let first = read.samples.first().map_or(0, |s| s.dts);
    let sample = read
        .samples
        .iter()
        .rfind(|s| s.sync && seg.sample_wall_ms(first, s) <= at_ms)
        .or_else(|| read.samples.iter().find(|s| s.sync))
        .ok_or(ExportError::Empty)?;
    // read_fragments checked every sample lies within the file.
    let start = sample.offset as usize;
    let data = Bytes::copy_from_slice(&read.data[start..start + sample.size as usize]);
    Ok(Keyframe {
        config,
        data,
        wall_ms: seg.sample_wall_ms(first, sample),
    })
}

fn table(init: InitInfo) -> TrackTable {
    TrackTable {
        init,
        samples: Vec::new(),
        chunks: Vec::new(),
    }
}
