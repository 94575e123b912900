//! Just enough URL parsing for referrers: host, path and query values.

pub struct Url<'a> {
    pub host: &'a str,
    pub path: &'a str,
    query: &'a str,
}

impl<'a> Url<'a> {
    /// An absolute `http(s)://` URL (or a scheme-relative `//host/...`).
    pub fn parse(text: &'a str) -> Option<Url<'a>> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => rest,
            Some(_) => return None,
            None => text.strip_prefix("//")?,
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host_port = authority.rsplit('@').next().unwrap_or_default();
        let host = host_port.split(':').next().unwrap_or_default();
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return None;
        }
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        Some(Url { host, path: if path.is_empty() { "/" } else { path }, query })
    }

    /// The decoded value of a query parameter.
    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| decode(v))
        })
    }
}

/// `application/x-www-form-urlencoded` decoding; bad escapes stay as text.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b))) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
