//! Content negotiation (T-040..T-049).

/// One media range of an `Accept` or `Content-Type` header.
struct MediaRange<'a> {
    essence: String,
    version: Option<&'a str>,
    q: f32,
}

fn parse_range(s: &str) -> Option<MediaRange<'_>> {
    let mut parts = s.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    if essence.is_empty() {
        return None;
    }
    let mut version = None;
    let mut q = 1.0;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else { continue };
        let (k, v) = (k.trim(), v.trim().trim_matches('"'));
        if k.eq_ignore_ascii_case("version") {
            version = Some(v);
        } else if k.eq_ignore_ascii_case("q") {
            q = v.parse().unwrap_or(0.0);
        }
    }
    Some(MediaRange { essence, version, q })
}

/// Whether a response as `application/taxii+json;version=2.1` satisfies `Accept`. A missing
/// header, `*/*`, `application/*` and `application/taxii+json` with no version or version 2.1
/// are satisfied; TAXII 2.0 media types, other versions and unrelated types alone are not (406).
pub fn accepts_taxii21(accept: Option<&str>) -> bool {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else { return true };
    accept.split(',').filter_map(parse_range).any(|r| {
        r.q > 0.0
            && match r.essence.as_str() {
                "*/*" | "application/*" => true,
                "application/taxii+json" => r.version.is_none_or(|v| v == "2.1"),
                _ => false,
            }
    })
}

/// Whether `Accept` allows a TAXII 2.0 answer: none, `*/*`, `application/*`, or the TAXII 2.0
/// media type (and, for objects, `stix`, the STIX 2.0 one), without a version or with version 2.0.
pub fn accepts_taxii20(accept: Option<&str>, stix: bool) -> bool {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else { return true };
    accept.split(',').filter_map(parse_range).any(|r| {
        r.q > 0.0
            && match r.essence.as_str() {
                "*/*" | "application/*" => true,
                "application/vnd.oasis.taxii+json" => r.version.is_none_or(|v| v == "2.0"),
                "application/vnd.oasis.stix+json" => stix && r.version.is_none_or(|v| v == "2.0"),
                _ => false,
            }
    })
}

/// Whether a POST body's `Content-Type` is the TAXII 2.1 media type (version optional, other
/// parameters such as `charset` tolerated).
pub fn is_taxii21_content_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(parse_range)
        .is_some_and(|r| r.essence == "application/taxii+json" && r.version.is_none_or(|v| v == "2.1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_for_the_taxii20_view() {
        assert!(accepts_taxii20(None, false));
        assert!(accepts_taxii20(Some("application/vnd.oasis.taxii+json; version=2.0"), false));
        assert!(accepts_taxii20(Some("application/vnd.oasis.stix+json; version=2.0"), true));
        assert!(!accepts_taxii20(Some("application/vnd.oasis.stix+json; version=2.0"), false));
        assert!(!accepts_taxii20(Some("application/taxii+json;version=2.1"), false));
        assert!(!accepts_taxii20(Some("application/vnd.oasis.taxii+json; version=2.1"), false));
        assert!(accepts_taxii20(Some("text/html, */*;q=0.1"), true));
    }

    #[test]
    fn accept_variants() {
        for ok in [
            None,
            Some("application/taxii+json;version=2.1"),
            Some("application/taxii+json"),
            Some("application/taxii+json; version=2.1"),
            Some("application/json, application/taxii+json;version=2.1;q=0.9"),
            Some("*/*"),
            Some("application/*"),
            Some("application/taxii+json;version=2.1,application/stix+json;version=2.1"),
            Some("Application/TAXII+JSON; Version=2.1"),
        ] {
            assert!(accepts_taxii21(ok), "{ok:?}");
        }
        for bad in [
            Some("application/taxii+json;version=2.0"),
            Some("application/vnd.oasis.taxii+json; version=2.0"),
            Some("application/json"),
            Some("text/html"),
            Some("application/taxii+json;version=2.1;q=0"),
            Some("application/taxii+json;version=3.0"),
        ] {
            assert!(!accepts_taxii21(bad), "{bad:?}");
        }
    }

    #[test]
    fn content_type_variants() {
        assert!(is_taxii21_content_type(Some("application/taxii+json;version=2.1")));
        assert!(is_taxii21_content_type(Some("application/taxii+json")));
        assert!(is_taxii21_content_type(Some("application/taxii+json; charset=utf-8; version=2.1")));
        assert!(!is_taxii21_content_type(Some("application/json")));
        assert!(!is_taxii21_content_type(Some("application/taxii+json;version=2.0")));
        assert!(!is_taxii21_content_type(None));
    }
}
