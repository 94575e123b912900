//! Writes small MaxMind DB files (IPv4 tree, 24-bit records) for the GeoIP
//! plugin's tests: the format as its specification describes it, so the
//! plugin's reader is checked against an independent writer.

use std::net::Ipv4Addr;

use serde_json::Value;

const MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

#[derive(Clone, Copy)]
enum Child {
    Empty,
    Node(usize),
    Data(usize),
}

/// A database mapping each `(network, prefix length)` to its record.
pub fn city_database(networks: &[(Ipv4Addr, u8, Value)]) -> Vec<u8> {
    let mut nodes: Vec<[Child; 2]> = vec![[Child::Empty, Child::Empty]];
    for (d, (addr, prefix, _)) in networks.iter().enumerate() {
        let bits = u32::from(*addr);
        let mut node = 0;
        for depth in 0..*prefix {
            let bit = usize::from(bits >> (31 - depth) & 1 == 1);
            if depth + 1 == *prefix {
                nodes[node][bit] = Child::Data(d);
            } else {
                node = match nodes[node][bit] {
                    Child::Node(n) => n,
                    _ => {
                        nodes.push([Child::Empty, Child::Empty]);
                        nodes[node][bit] = Child::Node(nodes.len() - 1);
                        nodes.len() - 1
                    }
                };
            }
        }
    }
    let mut data = Vec::new();
    let offsets: Vec<usize> = networks
        .iter()
        .map(|(_, _, record)| {
            let at = data.len();
            encode(record, &mut data);
            at
        })
        .collect();
    let node_count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for child in node {
            let value = match child {
                Child::Empty => node_count,
                Child::Node(n) => *n,
                Child::Data(d) => node_count + 16 + offsets[*d],
            };
            out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(MARKER);
    let metadata = serde_json::json!({
        "binary_format_major_version": 2,
        "binary_format_minor_version": 0,
        "build_epoch": 1_700_000_000u64,
        "database_type": "Weir-Test-City",
        "description": {"en": "Weir's test database"},
        "ip_version": 4,
        "languages": ["en"],
        "node_count": node_count,
        "record_size": 24,
    });
    encode(&metadata, &mut out);
    out
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (marker, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if kind < 8 {
        out.push(kind << 5 | marker);
    } else {
        out.push(marker);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Number(n) if n.is_u64() => {
            let v = n.as_u64().unwrap_or(0);
            let bytes = v.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            control(out, if v > u64::from(u32::MAX) { 9 } else { 6 }, 8 - skip);
            out.extend_from_slice(&bytes[skip..]);
        }
        Value::Number(n) => {
            control(out, 3, 8);
            out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
        }
        Value::Bool(b) => control(out, 14, usize::from(*b)),
        Value::Array(items) => {
            control(out, 11, items.len());
            items.iter().for_each(|i| encode(i, out));
        }
        Value::Object(map) => {
            control(out, 7, map.len());
            for (k, v) in map {
                encode(&Value::String(k.clone()), out);
                encode(v, out);
            }
        }
        Value::Null => control(out, 2, 0),
    }
}
