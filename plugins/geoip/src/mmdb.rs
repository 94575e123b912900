//! A reader of MaxMind DB files (GeoIP2, GeoLite2 and compatible) that
//! reads the ranges it needs from an asset instead of holding the file: a
//! lookup touches one path of the search tree and one record.

use std::collections::HashMap;
use std::net::IpAddr;

use weir_plugin::{Asset, Map, Value};

const PAGE: u64 = 4096;
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
const DATA_SEPARATOR: u64 = 16;

/// Where bytes come from: an asset, read a page at a time and kept for the
/// call (the top of the tree is shared by every lookup).
pub trait Source {
    fn size(&self) -> u64;
    fn read(&self, offset: u64, len: u32) -> Vec<u8>;
}

impl Source for Asset {
    fn size(&self) -> u64 {
        Asset::size(self)
    }
    fn read(&self, offset: u64, len: u32) -> Vec<u8> {
        Asset::read(self, offset, len)
    }
}

impl Source for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read(&self, offset: u64, len: u32) -> Vec<u8> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let end = start.saturating_add(len as usize).min(self.len());
        self[start..end].to_vec()
    }
}

struct Pages<S> {
    source: S,
    size: u64,
    pages: HashMap<u64, Vec<u8>>,
}

impl<S: Source> Pages<S> {
    fn byte(&mut self, at: u64) -> Result<u8, String> {
        let page = at / PAGE;
        let size = self.size;
        let source = &self.source;
        let bytes = self.pages.entry(page).or_insert_with(|| {
            let start = page * PAGE;
            source.read(start, u32::try_from(PAGE.min(size.saturating_sub(start))).unwrap_or(0))
        });
        bytes.get((at % PAGE) as usize).copied().ok_or_else(|| format!("offset {at} is past the end of the database"))
    }

    fn bytes(&mut self, at: u64, len: u64) -> Result<Vec<u8>, String> {
        (at..at + len).map(|i| self.byte(i)).collect()
    }
}

/// An open database.
pub struct Reader<S> {
    pages: Pages<S>,
    node_count: u64,
    record_size: u64,
    ip_version: u64,
    data_start: u64,
    ipv4_start: Option<u64>,
}

impl<S: Source> Reader<S> {
    pub fn open(source: S) -> Result<Reader<S>, String> {
        let size = source.size();
        // The metadata is in the last 128 KiB, after the last marker.
        let tail_start = size.saturating_sub(128 * 1024);
        let tail = source.read(tail_start, u32::try_from(size - tail_start).unwrap_or(0));
        let marker = tail
            .windows(METADATA_MARKER.len())
            .rposition(|w| w == METADATA_MARKER)
            .ok_or("not a MaxMind DB file: no metadata marker")?;
        let mut pages = Pages { source, size, pages: HashMap::new() };
        let metadata_at = tail_start + (marker + METADATA_MARKER.len()) as u64;
        let (metadata, _) = decode(&mut pages, metadata_at, metadata_at)?;
        let number = |key: &str| metadata.get(key).and_then(Value::as_u64).ok_or(format!("metadata has no {key}"));
        let (node_count, record_size, ip_version) =
            (number("node_count")?, number("record_size")?, number("ip_version")?);
        if ![24, 28, 32].contains(&record_size) {
            return Err(format!("record size {record_size} is not supported"));
        }
        let data_start = node_count * record_size * 2 / 8 + DATA_SEPARATOR;
        Ok(Reader { pages, node_count, record_size, ip_version, data_start, ipv4_start: None })
    }

    fn record(&mut self, node: u64, right: bool) -> Result<u64, String> {
        let bytes_per_node = self.record_size * 2 / 8;
        let b = self.pages.bytes(node * bytes_per_node, bytes_per_node)?;
        let be = |s: &[u8]| s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        Ok(match (self.record_size, right) {
            (24, false) => be(&b[0..3]),
            (24, true) => be(&b[3..6]),
            (28, false) => (u64::from(b[3] & 0xF0) << 20) | be(&b[0..3]),
            (28, true) => (u64::from(b[3] & 0x0F) << 24) | be(&b[4..7]),
            (_, false) => be(&b[0..4]),
            (_, true) => be(&b[4..8]),
        })
    }

    /// The node where IPv4 addresses start in an IPv6 tree (96 zero bits).
    fn ipv4_start(&mut self) -> Result<u64, String> {
        if let Some(n) = self.ipv4_start {
            return Ok(n);
        }
        let mut node = 0;
        for _ in 0..96 {
            if node >= self.node_count {
                break;
            }
            node = self.record(node, false)?;
        }
        self.ipv4_start = Some(node);
        Ok(node)
    }

    /// The record of the network that holds `ip`, if any.
    pub fn lookup(&mut self, ip: IpAddr) -> Result<Option<Map<String, Value>>, String> {
        let (bits, mut node): (Vec<bool>, u64) = match ip {
            IpAddr::V4(v4) => {
                let start = if self.ip_version == 6 { self.ipv4_start()? } else { 0 };
                (bits_of(&v4.octets()), start)
            }
            IpAddr::V6(v6) => {
                if self.ip_version == 4 {
                    return Ok(None);
                }
                (bits_of(&v6.octets()), 0)
            }
        };
        for bit in bits {
            if node >= self.node_count {
                break;
            }
            node = self.record(node, bit)?;
        }
        if node <= self.node_count {
            return Ok(None);
        }
        let at = self.data_start + (node - self.node_count - DATA_SEPARATOR);
        match decode(&mut self.pages, self.data_start, at)?.0 {
            Value::Object(map) => Ok(Some(map)),
            _ => Ok(None),
        }
    }
}

fn bits_of(bytes: &[u8]) -> Vec<bool> {
    bytes.iter().flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1)).collect()
}

/// Decodes the value at `at` of a data section starting at `base`; answers
/// it and the offset after it.
fn decode<S: Source>(pages: &mut Pages<S>, base: u64, at: u64) -> Result<(Value, u64), String> {
    let ctrl = pages.byte(at)?;
    let mut pos = at + 1;
    let mut kind = ctrl >> 5;
    if kind == 1 {
        let size_bits = (ctrl >> 3) & 0x3;
        let v = u64::from(ctrl & 0x7);
        let n = u64::from(size_bits) + 1;
        let b = pages.bytes(pos, n)?;
        let be = b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        let target = match size_bits {
            0 => (v << 8) | be,
            1 => ((v << 16) | be) + 2048,
            2 => ((v << 24) | be) + 526_336,
            _ => be,
        };
        let (value, _) = decode(pages, base, base + target)?;
        return Ok((value, pos + n));
    }
    if kind == 0 {
        kind = 7 + pages.byte(pos)?;
        pos += 1;
    }
    let mut size = u64::from(ctrl & 0x1F);
    if size >= 29 {
        let extra = size - 28;
        let b = pages.bytes(pos, extra)?;
        let be = b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        size = match size {
            29 => 29 + be,
            30 => 285 + be,
            _ => 65_821 + be,
        };
        pos += extra;
    }
    let uint = |b: &[u8]| b.iter().fold(0u128, |acc, &x| (acc << 8) | u128::from(x));
    Ok(match kind {
        2 => (Value::String(String::from_utf8_lossy(&pages.bytes(pos, size)?).into_owned()), pos + size),
        3 => {
            let b = pages.bytes(pos, 8)?;
            let v = f64::from_be_bytes(b.try_into().map_err(|_| "bad double")?);
            (Value::from(v), pos + 8)
        }
        4 => (Value::Array(pages.bytes(pos, size)?.into_iter().map(Value::from).collect()), pos + size),
        5 | 6 | 9 | 10 => {
            let v = uint(&pages.bytes(pos, size)?);
            (u64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::from), pos + size)
        }
        7 => {
            let mut map = Map::new();
            for _ in 0..size {
                let (key, next) = decode(pages, base, pos)?;
                let (value, next) = decode(pages, base, next)?;
                map.insert(key.as_str().unwrap_or_default().to_owned(), value);
                pos = next;
            }
            (Value::Object(map), pos)
        }
        8 => {
            let v = uint(&pages.bytes(pos, size)?) as u32;
            (Value::from(v as i32), pos + size)
        }
        11 => {
            let mut items = Vec::with_capacity(size as usize);
            for _ in 0..size {
                let (value, next) = decode(pages, base, pos)?;
                items.push(value);
                pos = next;
            }
            (Value::Array(items), pos)
        }
        14 => (Value::Bool(size != 0), pos),
        15 => {
            let b = pages.bytes(pos, 4)?;
            let v = f32::from_be_bytes(b.try_into().map_err(|_| "bad float")?);
            (Value::from(f64::from(v)), pos + 4)
        }
        other => return Err(format!("data type {other} is not supported")),
    })
}
