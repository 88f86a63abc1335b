//! Content codings of request bodies: `Content-Encoding: gzip` on POST, inflated with the API
//! root's `max_content_length` applied to the decompressed size. (Responses are compressed by
//! actix-web's `Compress` middleware when `Accept-Encoding` asks for gzip or zstd.)

use std::io::Read as _;

use actix_web::http::header;
use actix_web::HttpRequest;

use super::error::HttpError;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCoding {
    Identity,
    Gzip,
}

/// The request's `Content-Encoding`: absent or `identity` (as is), or `gzip` / `x-gzip`, once.
/// Anything else (other codings, or several stacked) is a 415 naming what is accepted.
pub fn request_coding(req: &HttpRequest) -> Result<BodyCoding, HttpError> {
    let mut coding = BodyCoding::Identity;
    for value in req.headers().get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| HttpError::UnsupportedEncoding("(not ASCII)".into()))?;
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if token.eq_ignore_ascii_case("identity") {
                continue;
            }
            let gzip = token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip");
            if !gzip || coding == BodyCoding::Gzip {
                let shown: String = text.chars().take(64).collect();
                return Err(HttpError::UnsupportedEncoding(shown));
            }
            coding = BodyCoding::Gzip;
        }
    }
    Ok(coding)
}

/// Inflates a gzip body (one or several members), reading at most `max` + 1 bytes of output:
/// beyond `max` it stops and answers 413, so a small body that inflates to gigabytes costs no
/// more than `max` bytes of memory. CPU-bound: call it off the async workers.
pub fn inflate(compressed: &[u8], max: i64) -> Result<Vec<u8>, HttpError> {
    let limit = u64::try_from(max).unwrap_or(0);
    let capacity = compressed.len().saturating_mul(4).min(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(capacity);
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| {
            HttpError::BadRequest(format!(
                "the request body is not valid gzip ({e}); send it uncompressed, or gzip it whole and send Content-Encoding: gzip"
            ))
        })?;
    if out.len() as u64 > limit {
        return Err(HttpError::InflatesTooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap_or_default();
        e.finish().unwrap_or_default()
    }

    #[test]
    fn inflates_within_the_limit_and_refuses_beyond_it() {
        let data = vec![b'x'; 10_000];
        let packed = gzip(&data);
        assert!(packed.len() < 200);
        assert_eq!(inflate(&packed, 10_000).ok(), Some(data));
        assert!(matches!(inflate(&packed, 9_999), Err(HttpError::InflatesTooLarge(9_999))));
    }

    #[test]
    fn several_members_are_one_body() {
        let mut packed = gzip(b"{\"objects\":");
        packed.extend(gzip(b"[]}"));
        assert_eq!(inflate(&packed, 1000).ok().as_deref(), Some(&b"{\"objects\":[]}"[..]));
    }

    #[test]
    fn corrupt_gzip_is_a_bad_request() {
        assert!(matches!(inflate(b"{\"objects\":[]}", 1000), Err(HttpError::BadRequest(_))));
        let mut packed = gzip(&[b'y'; 5000]);
        packed.truncate(packed.len() / 2);
        assert!(matches!(inflate(&packed, 100_000), Err(HttpError::BadRequest(_))));
    }
}
