//! The client's address (for the audit trail, limits and allow-lists) and the request id: the
//! peer's own, or, when the peer is one of `trusted_proxies`, what it forwarded in the one
//! header the proxy is configured to write (`forwarded_header`: `X-Forwarded-For`, or
//! `Forwarded`, RFC 7239; and `X-Request-Id`). The other forwarding header is never read, since a
//! proxy passes on whatever a client put in it; from any other peer all of them are ignored. So a
//! client cannot choose the address it is judged by. Addresses are canonical: an IPv4 peer of a
//! dual-stack listener (`::ffff:192.0.2.1`) is 192.0.2.1.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// Longest request id accepted from a proxy.
const MAX_REQUEST_ID: usize = 128;

/// Which header a trusted proxy writes the client's address in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx `$proxy_add_x_forwarded_for`, HAProxy `option forwardfor`, most
    /// cloud load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    pub proxies: Vec<IpNet>,
    pub header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn new(proxies: Vec<IpNet>, header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies { proxies, header }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether the peer is one of the trusted proxies.
    pub fn is_trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|p| self.trusts(p.to_canonical()))
    }

    /// The client's address: the peer's unless the peer is trusted; then, walking the forwarded
    /// chain from the nearest hop outwards, the first address that is not a trusted proxy (the
    /// farthest one if all are). A hop that cannot be read (`unknown`, an obfuscated name) ends the
    /// walk at the trusted hop before it.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(headers, self.header);
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
        if !self.is_trusted(peer) {
            return None;
        }
        let id = headers.get("x-request-id")?.to_str().ok()?.trim();
        let usable = !id.is_empty()
            && id.len() <= MAX_REQUEST_ID
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'));
        usable.then(|| id.to_owned())
    }
}

/// The forwarded addresses in the configured header, farthest first: every `for=` of every
/// `Forwarded` header, or the entries of `X-Forwarded-For`. `None` for an entry that is not an
/// address (or a header that is not text).
fn forwarded_chain(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let values = |name: &'static str| headers.get_all(name).map(|v| v.to_str().ok());
    match header {
        ForwardedHeader::Forwarded => values("forwarded")
            .flat_map(|v| match v {
                Some(v) => v
                    .split(',')
                    .map(|element| {
                        element
                            .split(';')
                            .find_map(|pair| {
                                let (k, v) = pair.split_once('=')?;
                                k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim().trim_matches('"')))
                            })
                            .flatten()
                    })
                    .collect::<Vec<_>>(),
                None => vec![None],
            })
            .collect(),
        ForwardedHeader::XForwardedFor => values("x-forwarded-for")
            .flat_map(|v| match v {
                Some(v) => v.split(',').map(|s| parse_node(s.trim())).collect::<Vec<_>>(),
                None => vec![None],
            })
            .collect(),
    }
}

/// An RFC 7239 node: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`, `[2001:db8::17]:4711`,
/// or a bare IPv6 address (as some X-Forwarded-For writers send it).
fn parse_node(s: &str) -> Option<IpAddr> {
    let ip = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once(']')?.0.parse().ok()?
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = s.rsplit_once(':')?;
        if !port.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        IpAddr::V4(host.parse::<std::net::Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
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
        TrustedProxies::new(
            vec!["10.0.0.0/8".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()],
            ForwardedHeader::XForwardedFor,
        )
    }

    fn rfc7239() -> TrustedProxies {
        TrustedProxies { header: ForwardedHeader::Forwarded, ..proxies() }
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
        assert_eq!(rfc7239().client(ip("10.0.0.2"), &h), ip("2001:db8:cafe::17"));
        // Only the configured header is read: the other one is whatever the client sent.
        let h = headers(&[("forwarded", "for=\"192.0.2.43:47011\""), ("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(p.client(ip("10.0.0.2"), &h), ip("198.51.100.9"));
        assert_eq!(rfc7239().client(ip("10.0.0.2"), &h), ip("192.0.2.43"), "ports are dropped");
        assert_eq!(p.client(ip("10.0.0.2"), &headers(&[("forwarded", "for=192.0.2.43")])), ip("10.0.0.2"));
        // All trusted: the farthest. Nothing forwarded: the proxy itself.
        assert_eq!(p.client(ip("10.0.0.2"), &headers(&[("x-forwarded-for", "10.9.9.9")])), ip("10.9.9.9"));
        assert_eq!(p.client(ip("10.0.0.2"), &headers(&[])), ip("10.0.0.2"));
        // An unreadable hop stops the walk at the trusted hop next to it.
        let h = headers(&[("forwarded", "for=192.0.2.1, for=unknown, for=10.3.3.3")]);
        assert_eq!(rfc7239().client(ip("10.0.0.2"), &h), ip("10.3.3.3"));
        let h = headers(&[("x-forwarded-for", "192.0.2.1, garbage, 10.3.3.3")]);
        assert_eq!(p.client(ip("10.0.0.2"), &h), ip("10.3.3.3"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_canonical() {
        let p = proxies();
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.7")]);
        assert_eq!(p.client(ip("::ffff:10.0.0.2"), &h), ip("198.51.100.7"));
        assert_eq!(p.client(ip("::ffff:203.0.113.5"), &headers(&[])), ip("203.0.113.5"));
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
