//! The on-disk framing of one record in a segment file:
//!
//! ```text
//! u32 LE payload length | u32 LE CRC32C of payload | payload
//! payload = u64 LE offset | i64 LE timestamp (ms) | i32 LE key length (-1: none) | key | value
//! ```

use std::io::Read;

use bytes::Bytes;

use crate::log::StoredRecord;

pub const HEADER_LEN: usize = 8;
const FIXED_PAYLOAD_LEN: usize = 20;
/// Larger frames are taken as corruption rather than allocated.
pub const MAX_PAYLOAD_LEN: usize = 64 << 20;

/// Appends one framed record to `buf`.
pub fn encode(buf: &mut Vec<u8>, offset: u64, timestamp_ms: i64, key: Option<&[u8]>, value: &[u8]) {
    let start = buf.len();
    let payload_len = FIXED_PAYLOAD_LEN + key.map_or(0, <[u8]>::len) + value.len();
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    match key {
        Some(k) => {
            buf.extend_from_slice(&(k.len() as i32).to_le_bytes());
            buf.extend_from_slice(k);
        }
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    buf.extend_from_slice(value);
    let crc = crc32c::crc32c(&buf[start + HEADER_LEN..]);
    buf[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

/// The length a record takes on disk.
pub fn framed_len(key: Option<&[u8]>, value: &[u8]) -> usize {
    HEADER_LEN + FIXED_PAYLOAD_LEN + key.map_or(0, <[u8]>::len) + value.len()
}

/// What reading the next frame found.
pub enum Next {
    Record(StoredRecord, usize),
    /// A clean end of the records: the end of the file, or the zeros the
    /// writer fills segments with ahead of itself.
    End,
    /// A frame that is cut short or does not check out: a torn write at the
    /// tail, or corruption elsewhere.
    Bad(String),
}

/// Reads the next frame from `reader`, reusing `scratch` for the payload.
pub fn read_next(reader: &mut impl Read, scratch: &mut Vec<u8>) -> std::io::Result<Next> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(reader, &mut header)?;
    // Segments are zero-filled ahead of the writer: zeros are the clean end.
    if got == 0 || header[..got].iter().all(|b| *b == 0) {
        return Ok(Next::End);
    }
    if got < HEADER_LEN {
        return Ok(Next::Bad(format!("frame header cut short after {got} bytes")));
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(FIXED_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&len) {
        return Ok(Next::Bad(format!("frame length {len} is out of range")));
    }
    scratch.resize(len, 0);
    let got = read_full(reader, scratch)?;
    if got < len {
        return Ok(Next::Bad(format!("frame cut short: {got} of {len} bytes")));
    }
    if crc32c::crc32c(scratch) != crc {
        return Ok(Next::Bad("CRC32C mismatch".to_owned()));
    }
    let p = &scratch[..];
    let offset = u64::from_le_bytes(p[0..8].try_into().unwrap_or_default());
    let timestamp_ms = i64::from_le_bytes(p[8..16].try_into().unwrap_or_default());
    let key_len = i32::from_le_bytes(p[16..20].try_into().unwrap_or_default());
    let rest = &p[FIXED_PAYLOAD_LEN..];
    let (key, value) = if key_len < 0 {
        (None, rest)
    } else {
        let Some((k, v)) = rest.split_at_checked(key_len as usize) else {
            return Ok(Next::Bad(format!("key length {key_len} exceeds the frame")));
        };
        (Some(Bytes::copy_from_slice(k)), v)
    };
    let record = StoredRecord { offset, timestamp_ms, key, value: Bytes::copy_from_slice(value) };
    Ok(Next::Record(record, HEADER_LEN + len))
}

/// Fills `buf` as far as the reader allows; returns how many bytes it got.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1234, Some(b"user"), b"value");
        encode(&mut buf, 8, 1235, None, b"");
        assert_eq!(buf.len(), framed_len(Some(b"user"), b"value") + framed_len(None, b""));
        let mut reader = &buf[..];
        let mut scratch = Vec::new();
        let Ok(Next::Record(r, n)) = read_next(&mut reader, &mut scratch) else { panic!("first") };
        assert_eq!(
            (r.offset, r.timestamp_ms, r.key.as_deref(), &r.value[..]),
            (7, 1234, Some(&b"user"[..]), &b"value"[..])
        );
        assert_eq!(n, framed_len(Some(b"user"), b"value"));
        let Ok(Next::Record(r, _)) = read_next(&mut reader, &mut scratch) else { panic!("second") };
        assert_eq!((r.offset, r.key), (8, None));
        assert!(matches!(read_next(&mut reader, &mut scratch), Ok(Next::End)));

        for cut in 1..buf.len() - 1 {
            let mut damaged = &buf[..cut];
            let first_len = framed_len(Some(b"user"), b"value");
            let mut results = Vec::new();
            loop {
                match read_next(&mut damaged, &mut scratch).expect("io") {
                    Next::Record(r, _) => results.push(r.offset),
                    Next::End => break,
                    Next::Bad(_) => {
                        results.push(u64::MAX);
                        break;
                    }
                }
            }
            let expected: Vec<u64> = if cut < first_len {
                vec![u64::MAX]
            } else if cut == first_len {
                vec![7]
            } else {
                vec![7, u64::MAX]
            };
            assert_eq!(results, expected, "cut at {cut}");
        }

        let mut flipped = buf.clone();
        flipped[HEADER_LEN + 3] ^= 1;
        assert!(matches!(read_next(&mut &flipped[..], &mut scratch), Ok(Next::Bad(_))));
    }
}
