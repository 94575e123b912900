//! A partition's folder of segment files: what readers and the writer share,
//! recovery at start, and reading.

use std::fs::{self, File};
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::frame::{self, Next};
use crate::log::{Error, ReadBatch, Result};

/// An index entry is kept every this many bytes of a segment.
pub const INDEX_INTERVAL: u64 = 64 << 10;
const SEGMENT_SUFFIX: &str = ".log";

/// One segment file: the records from `base` up to the next segment's base.
#[derive(Debug)]
pub struct Segment {
    pub base: u64,
    pub path: PathBuf,
    /// Sparse (offset, byte position) pairs, ascending, for seeking.
    pub index: Mutex<Vec<(u64, u64)>>,
}

impl Segment {
    pub fn new(dir: &Path, base: u64) -> Segment {
        Segment { base, path: segment_path(dir, base), index: Mutex::new(Vec::new()) }
    }

    /// The byte position to start scanning from to find `offset`.
    fn seek_position(&self, offset: u64) -> (u64, u64) {
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let i = index.partition_point(|(o, _)| *o <= offset);
        if i == 0 { (self.base, 0) } else { index[i - 1] }
    }
}

pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

/// What the writer and readers of a partition share.
#[derive(Debug)]
pub struct PartitionShared {
    pub dir: PathBuf,
    /// Offset after the last record known to be on disk; readers stop here.
    pub durable_end: AtomicU64,
    /// Records below this offset have been consumed.
    pub released: AtomicU64,
    pub segments: RwLock<Vec<Arc<Segment>>>,
}

/// The state recovered from a partition's folder.
pub struct Recovered {
    pub shared: Arc<PartitionShared>,
    /// The active (last) segment's length after any torn tail was cut off.
    pub active_len: u64,
}

/// Opens a partition folder: indexes every segment and truncates a torn or
/// corrupt tail of the last one, which is where a crash mid-write leaves it.
pub fn recover(dir: &Path) -> Result<Recovered> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    if bases.is_empty() {
        create_segment_file(dir, 0)?;
        bases.push(0);
    }
    let mut segments = Vec::with_capacity(bases.len());
    let mut end = bases[0];
    let mut active_len = 0;
    let last = bases.len() - 1;
    for (i, base) in bases.into_iter().enumerate() {
        let segment = Segment::new(dir, base);
        let scan = scan(&segment)?;
        if i == last {
            if let Some(reason) = &scan.bad {
                tracing::warn!(path = %segment.path.display(), position = scan.valid_len, %reason,
                    "cutting a torn tail off the event log");
            }
            // Whatever follows the last valid record (a torn write, or the
            // zeros written ahead) is cut off, so no stale bytes remain past
            // the records the writer appends next.
            let file_len = fs::metadata(&segment.path).map_err(Error::io(&segment.path))?.len();
            if file_len > scan.valid_len {
                let file = fs::OpenOptions::new().write(true).open(&segment.path).map_err(Error::io(&segment.path))?;
                file.set_len(scan.valid_len).map_err(Error::io(&segment.path))?;
                file.sync_all().map_err(Error::io(&segment.path))?;
            }
            active_len = scan.valid_len;
        } else if let Some(reason) = &scan.bad {
            tracing::error!(path = %segment.path.display(), position = scan.valid_len, %reason,
                "corrupt record inside a closed segment; reads past it will fail");
        }
        end = scan.next_offset;
        segments.push(Arc::new(segment));
    }
    let shared = PartitionShared {
        dir: dir.to_owned(),
        durable_end: AtomicU64::new(end),
        released: AtomicU64::new(0),
        segments: RwLock::new(segments),
    };
    Ok(Recovered { shared: Arc::new(shared), active_len })
}

struct Scan {
    valid_len: u64,
    next_offset: u64,
    bad: Option<String>,
}

/// Reads a whole segment, filling its index, and finds where its valid
/// records end.
fn scan(segment: &Segment) -> Result<Scan> {
    let file = File::open(&segment.path).map_err(Error::io(&segment.path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut scratch = Vec::new();
    let mut pos = 0u64;
    let mut next_offset = segment.base;
    let mut index = Vec::new();
    let mut last_indexed = 0u64;
    loop {
        match frame::read_next(&mut reader, &mut scratch).map_err(Error::io(&segment.path))? {
            Next::End => return Ok(finish(segment, index, pos, next_offset, None)),
            Next::Bad(reason) => return Ok(finish(segment, index, pos, next_offset, Some(reason))),
            Next::Record(record, len) => {
                if record.offset != next_offset {
                    let reason = format!("offset {} where {next_offset} was expected", record.offset);
                    return Ok(finish(segment, index, pos, next_offset, Some(reason)));
                }
                if pos == 0 || pos - last_indexed >= INDEX_INTERVAL {
                    index.push((record.offset, pos));
                    last_indexed = pos;
                }
                pos += len as u64;
                next_offset += 1;
            }
        }
    }
}

fn finish(segment: &Segment, index: Vec<(u64, u64)>, pos: u64, next_offset: u64, bad: Option<String>) -> Scan {
    *segment.index.lock().unwrap_or_else(|e| e.into_inner()) = index;
    Scan { valid_len: pos, next_offset, bad }
}

/// Creates an empty segment file and makes its name durable.
pub fn create_segment_file(dir: &Path, base: u64) -> Result<File> {
    let path = segment_path(dir, base);
    // Not O_APPEND: the writer writes at positions, ahead of which it has
    // written zeros.
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(Error::io(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))
}

impl PartitionShared {
    /// Reads durable records from `from`, at most `max_records`.
    pub fn read(&self, topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch> {
        let end = self.durable_end.load(Ordering::Acquire);
        let mut batch = ReadBatch { records: Vec::new(), end_offset: end, resume_at: from, held_back: false };
        if from >= end || max_records == 0 {
            return Ok(batch);
        }
        let segments: Vec<Arc<Segment>> = self.segments.read().unwrap_or_else(|e| e.into_inner()).clone();
        let first = segments.partition_point(|s| s.base <= from);
        if first == 0 {
            return Err(Error::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: format!("{topic}/{partition}: offset {from} was deleted by retention"),
            });
        }
        let mut scratch = Vec::new();
        let mut want = from;
        for segment in &segments[first - 1..] {
            let (_, pos) = segment.seek_position(want);
            let mut file = File::open(&segment.path).map_err(Error::io(&segment.path))?;
            file.seek(SeekFrom::Start(pos)).map_err(Error::io(&segment.path))?;
            let mut reader = BufReader::with_capacity(256 << 10, file);
            let mut position = pos;
            loop {
                if want >= end || batch.records.len() >= max_records {
                    return Ok(batch);
                }
                match frame::read_next(&mut reader, &mut scratch).map_err(Error::io(&segment.path))? {
                    Next::End => break,
                    Next::Bad(reason) => {
                        return Err(Error::Corrupt { path: segment.path.clone(), position, reason });
                    }
                    Next::Record(record, len) => {
                        position += len as u64;
                        if record.offset >= want {
                            want = record.offset + 1;
                            batch.resume_at = want;
                            batch.records.push(record);
                        }
                    }
                }
            }
        }
        Ok(batch)
    }
}
