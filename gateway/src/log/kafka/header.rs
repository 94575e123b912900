//! The record header that names the append a record belongs to.

use crate::metadata::AppendId;

/// Header key of every record the gateway produces.
pub const APPEND_HEADER: &str = "weir-append";

/// Writer then sequence number, 8 bytes each, big-endian.
pub fn encode(id: AppendId) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&id.writer.to_be_bytes());
    out[8..].copy_from_slice(&id.seq.to_be_bytes());
    out
}

pub fn decode(bytes: &[u8]) -> Option<AppendId> {
    let writer = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
    (bytes.len() == 16).then_some(AppendId { writer, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_lengths() {
        let id = AppendId { writer: u64::MAX - 3, seq: 42 };
        assert_eq!(decode(&encode(id)), Some(id));
        assert_eq!(decode(&encode(id)[..15]), None);
        assert_eq!(decode(&[0; 17]), None);
    }
}
