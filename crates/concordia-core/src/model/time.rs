//! TAXII and STIX timestamps.
//!
//! TAXII timestamps (`date_added`, `request_timestamp`, the `X-TAXII-Date-Added-*` headers) are
//! RFC 3339 UTC with exactly six fractional digits (T-260). Internally they are microseconds since
//! the Unix epoch (`i64`). STIX timestamps (object versions) keep their own textual form; for
//! comparison they are normalised to nine fractional digits (T-262: `…01.000Z` and `…01Z` are the
//! same version).

use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// The current time in microseconds.
pub fn now_micros() -> Micros {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
}

/// Formats microseconds as a TAXII timestamp: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format_taxii(micros: Micros) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            frac
        ),
        Err(_) => "1970-01-01T00:00:00.000000Z".to_owned(),
    }
}

/// A timestamp broken into parts: date, time and up to nine fractional digits.
struct Parts {
    dt: OffsetDateTime,
    nanos: u32,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`. With `utc_only`, only `Z` is accepted
/// (STIX requires UTC with `Z`).
fn parse_parts(s: &str, utc_only: bool) -> Option<Parts> {
    let b = s.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let part = s.get(from..to)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b't')) && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let year = i32::try_from(num(0, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?;
    let day = u8::try_from(num(8, 10)?).ok()?;
    let hour = u8::try_from(num(11, 13)?).ok()?;
    let minute = u8::try_from(num(14, 16)?).ok()?;
    let second = u8::try_from(num(17, 19)?).ok()?;
    let mut i = 19;
    let mut nanos: u32 = 0;
    if sep(19, b'.') {
        let start = 20;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let digits = end - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        let frac = num(start, end)?;
        nanos = frac * 10u32.pow(u32::try_from(9 - digits).ok()?);
        i = end;
    }
    let rest = s.get(i..)?;
    let offset = if rest == "Z" || rest == "z" {
        UtcOffset::UTC
    } else if !utc_only && rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) {
        let oh = i8::try_from(num(i + 1, i + 3)?).ok()?;
        let om = i8::try_from(num(i + 4, i + 6)?).ok()?;
        if !sep(i + 3, b':') {
            return None;
        }
        let sign = if rest.starts_with('-') { -1 } else { 1 };
        UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?
    } else {
        return None;
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let dt = date.with_time(time).assume_offset(offset).checked_to_offset(UtcOffset::UTC)?;
    Some(Parts { dt, nanos })
}

/// Parses a TAXII timestamp as a client may send it in `added_after`: RFC 3339 with 0–9
/// fractional digits, `Z` or a numeric offset (T-261). Sub-microsecond digits are truncated,
/// which keeps `date_added > added_after` exact because stored values are whole microseconds.
pub fn parse_taxii(s: &str) -> Option<Micros> {
    let p = parse_parts(s, false)?;
    let nanos = p.dt.unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1000)).ok()
}

/// Parses a STIX timestamp (UTC, `Z`, any number of fractional digits up to nine) and returns
/// its normalised comparison key `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, which sorts as time does.
pub fn stix_version_key(s: &str) -> Option<String> {
    let p = parse_parts(s, true)?;
    let dt = p.dt;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        p.nanos
    ))
}

/// The version key of a version that has no STIX timestamp (an object without `modified` or
/// `created`): the TAXII timestamp of its `date_added`, normalised the same way.
pub fn version_key_from_micros(micros: Micros) -> String {
    let s = format_taxii(micros);
    stix_version_key(&s).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taxii_round_trip_has_six_digits() {
        let t = parse_taxii("2016-11-04T03:04:05.123456Z");
        assert_eq!(t.map(format_taxii).as_deref(), Some("2016-11-04T03:04:05.123456Z"));
        assert_eq!(
            parse_taxii("2016-11-04T03:04:05Z").map(format_taxii).as_deref(),
            Some("2016-11-04T03:04:05.000000Z")
        );
        assert_eq!(
            parse_taxii("2016-11-04T03:04:05.1Z").map(format_taxii).as_deref(),
            Some("2016-11-04T03:04:05.100000Z")
        );
        assert_eq!(
            parse_taxii("2016-11-04T05:04:05.5+02:00").map(format_taxii).as_deref(),
            Some("2016-11-04T03:04:05.500000Z")
        );
        assert_eq!(
            parse_taxii("2016-11-04T03:04:05.123456789Z").map(format_taxii).as_deref(),
            Some("2016-11-04T03:04:05.123456Z")
        );
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        for bad in [
            "",
            "yesterday",
            "2016-11-04",
            "2016-13-04T03:04:05Z",
            "2016-11-04T03:04:05",
            "2016-11-04T03:04:05.Z",
            "2016-11-04T03:04:05.1234567890Z",
            "2016-02-30T00:00:00Z",
            "2016-11-04T25:04:05Z",
            "２016-11-04T03:04:05Z",
        ] {
            assert_eq!(parse_taxii(bad), None, "{bad}");
        }
        assert_eq!(stix_version_key("2016-11-04T03:04:05+00:00"), None);
        assert_eq!(parse_taxii("9999-12-31T23:59:59-00:01"), None, "out of range after conversion, not a panic");
    }

    #[test]
    fn version_keys_compare_as_instants() {
        assert_eq!(stix_version_key("2016-11-04T03:04:05Z"), stix_version_key("2016-11-04T03:04:05.000Z"));
        let a = stix_version_key("2016-11-04T03:04:05.9Z");
        let b = stix_version_key("2016-11-04T03:04:05.10Z");
        assert!(a > b);
    }
}
