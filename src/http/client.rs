//! The client's address (for the audit trail, limits and allow-lists) and the request id: the
//! peer's own, or, when the peer is one of `trusted_proxies`, what it forwarded (`Forwarded`,
//! RFC 7239, else `X-Forwarded-For`; `X-Request-Id`). From any other peer those headers are
//! ignored, so a client cannot choose the address it is judged by.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// Longest request id accepted from a proxy.
const MAX_REQUEST_ID: usize = 128;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's unless the peer is trusted; then, walking the forwarded
    /// chain from the nearest hop outwards, the first address that is not a trusted proxy (the
    /// farthest one if all are). A hop that cannot be read (`unknown`, an obfuscated name) ends the
    /// walk at the trusted hop before it.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }

    /// The request id a trusted proxy forwarded, if it is one we can use (letters, digits and
    /// `-_.:`, at most 128 characters).
    pub fn request_id(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<String> {
        if !peer.is_some_and(|p| self.trusts(p)) {
            return None;
        }
        let id = headers.get("x-request-id")?.to_str().ok()?.trim();
        let usable = !id.is_empty()
            && id.len() <= MAX_REQUEST_ID
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'));
        usable.then(|| id.to_owned())
    }
}

/// The forwarded addresses, farthest first: every `for=` of every `Forwarded` header, or, without
/// one, the entries of `X-Forwarded-For`. `None` for an entry that is not an address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all("forwarded").filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| parse_node(s.trim()))
        .collect()
}

/// An RFC 7239 node: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`, `[2001:db8::17]:4711`,
/// or a bare IPv6 address (as some X-Forwarded-For writers send it).
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.bytes().all(|c| c.is_ascii_digit()).then(|| host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies(vec!["10.0.0.0/8".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()])
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h =
            headers(&[("x-forwarded-for", "198.51.100.7"), ("forwarded", "for=198.51.100.8"), ("x-request-id", "abc")]);
        assert_eq!(proxies().client(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        assert_eq!(proxies().request_id(ip("203.0.113.5"), &h), None);
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let p = proxies();
        let h = headers(&[("x-forwarded-for", "192.0.2.1, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(p.client(ip("10.0.0.2"), &h), ip("198.51.100.7"), "a client cannot prepend its way in");
        let h = headers(&[
            ("forwarded", "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\""),
            ("forwarded", "for=10.2.2.2"),
        ]);
        assert_eq!(p.client(ip("10.0.0.2"), &h), ip("2001:db8:cafe::17"));
        // Forwarded wins over X-Forwarded-For; ports are dropped.
        let h = headers(&[("forwarded", "for=\"192.0.2.43:47011\""), ("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(p.client(ip("10.0.0.2"), &h), ip("192.0.2.43"));
        // All trusted: the farthest. Nothing forwarded: the proxy itself.
        assert_eq!(p.client(ip("10.0.0.2"), &headers(&[("x-forwarded-for", "10.9.9.9")])), ip("10.9.9.9"));
        assert_eq!(p.client(ip("10.0.0.2"), &headers(&[])), ip("10.0.0.2"));
        // An unreadable hop stops the walk at the trusted hop next to it.
        let h = headers(&[("forwarded", "for=192.0.2.1, for=unknown, for=10.3.3.3")]);
        assert_eq!(p.client(ip("10.0.0.2"), &h), ip("10.3.3.3"));
    }

    #[test]
    fn request_ids_from_a_trusted_proxy() {
        let p = proxies();
        assert_eq!(
            p.request_id(ip("10.0.0.2"), &headers(&[("x-request-id", "req-123_a.b:c")])).as_deref(),
            Some("req-123_a.b:c")
        );
        assert_eq!(p.request_id(ip("10.0.0.2"), &headers(&[("x-request-id", "bad id")])), None);
        assert_eq!(p.request_id(ip("10.0.0.2"), &headers(&[("x-request-id", &"a".repeat(200))])), None);
    }
}
