//! Which address is the client's. `X-Forwarded-For` is the client's to
//! write, so it is believed only as far as it was written by proxies the
//! operator trusts (`http.trusted_proxies`): from the connection's peer
//! backwards, every trusted address is a proxy, and the first one that is
//! not is the client.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;

/// An address range, `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an address or an address/prefix range");
        let (address, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(bad)?,
            None => width,
        };
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits >> (width - prefix) }
}

/// The client's address: the peer's, or, where the peer is a trusted
/// proxy, the nearest address in `X-Forwarded-For` that is not one.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        // A list with something that is no address is not a proxy's.
        .unwrap_or_default();
    let mut client = peer;
    for ip in forwarded.into_iter().rev() {
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    #[test]
    fn ranges_parse_and_match() {
        let net: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")));
        let one: Cidr = "2001:db8::1".parse().expect("cidr");
        assert!(one.contains(ip("2001:db8::1")) && !one.contains(ip("2001:db8::2")));
        assert!("0.0.0.0/0".parse::<Cidr>().expect("cidr").contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().expect("hv"));
        // Nothing trusted: the peer, whatever the header says.
        assert_eq!(client_ip(&headers, ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        // The load balancer (10.0.0.1) and an inner proxy (10.0.0.2) are
        // trusted: the client is the address the inner proxy saw.
        let trusted = cidrs(&["10.0.0.0/8"]);
        assert_eq!(client_ip(&headers, ip("10.0.0.1"), &trusted), ip("203.0.113.9"));
        // A peer that is no proxy cannot pass an address on.
        assert_eq!(client_ip(&headers, ip("198.51.100.7"), &trusted), ip("198.51.100.7"));
        // A list with something that is no address: the peer.
        headers.insert("x-forwarded-for", "1.2.3.4, not-an-ip, 203.0.113.9".parse().expect("hv"));
        assert_eq!(client_ip(&headers, ip("10.0.0.1"), &trusted), ip("10.0.0.1"));
    }
}
