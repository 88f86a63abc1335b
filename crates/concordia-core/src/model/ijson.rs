//! I-JSON (RFC 7493), which TAXII 2.1 §1.6.7 requires, checked on JSON text exactly as received.
//!
//! Parsers disagree on which of two equal member names wins, so an object carrying `"id"` twice
//! (or `"id"` and `"\u0069d"`) could be read by a consumer with another id, or other markings,
//! than the one Concordia validated. Numbers beyond what an IEEE 754 double carries, and strings
//! holding unpaired surrogates, are read differently (or not at all) by common parsers too. This
//! module finds these, with the JSON pointer of each, in one pass and without building a tree.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Largest integer every JSON parser reads exactly (2^53 − 1, RFC 7493 §2.2).
pub const MAX_EXACT_INTEGER: &str = "9007199254740991";

/// Most violations reported for one text; the rest would only repeat the point.
const MAX_VIOLATIONS: usize = 20;
/// Most arrays and objects nested in one another. Parsers disagree on how deep they read
/// (serde_json stops at 128, others at 512 or 1000), so anything deeper is read by some consumers
/// and refused by others; callers refuse far shallower STIX objects anyway (64).
pub const MAX_NESTING: usize = 100;
/// Member names that serde_json (which reads every object Concordia validates) treats as
/// markers: an object whose first member is named `$serde_json::private::RawValue` is read as
/// the JSON text held in that member's string, so what is validated (and indexed, TLP
/// included) would not be what other parsers read in the same bytes. Refused wherever they
/// appear (after unescaping); no STIX object has a use for them.
const RESERVED_NAMES: [&str; 2] = ["$serde_json::private::RawValue", "$serde_json::private::Number"];
/// Below this many members an object's names are compared in a list, above it in a set.
const SET_FROM: usize = 32;

/// One place where a text is not I-JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer (RFC 6901) of the offending member or value, relative to the scanned text.
    pub pointer: String,
    pub message: String,
}

/// Every I-JSON violation in a JSON text (at most [`MAX_VIOLATIONS`]). The text is expected to be
/// well-formed JSON (checked by the caller's parser); anything else is reported, never a panic.
pub fn check(text: &str) -> Vec<Violation> {
    scan(text, &[]).0
}

/// Like [`check`], and also the first string value of each of the top-level members `names`
/// (e.g. `id`, to name an object that cannot be parsed as it stands).
pub fn scan(text: &str, names: &[&str]) -> (Vec<Violation>, Vec<Option<String>>) {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        path: Vec::new(),
        out: Vec::new(),
        capture: names.iter().map(|n| ((*n).to_owned(), None)).collect(),
    };
    if s.value(0).is_err() && s.out.is_empty() {
        s.violation(None, "the text is not well-formed JSON".into());
    }
    (s.out, s.capture.into_iter().map(|(_, v)| v).collect())
}

/// One step of a JSON pointer.
#[derive(Clone)]
enum Seg<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    path: Vec<Seg<'a>>,
    out: Vec<Violation>,
    /// Top-level member names whose (first) string value is wanted, and the value.
    capture: Vec<(String, Option<String>)>,
}

/// The scan cannot go on (malformed text or too deep); already reported where useful.
struct Stop;

fn pointer_of(path: &[Seg<'_>], last: Option<&str>) -> String {
    let mut p = String::new();
    let mut push = |s: &str| {
        p.push('/');
        for c in s.chars() {
            match c {
                '~' => p.push_str("~0"),
                '/' => p.push_str("~1"),
                c => p.push(c),
            }
        }
    };
    for seg in path {
        match seg {
            Seg::Key(k) => push(k),
            Seg::Index(n) => push(&n.to_string()),
        }
    }
    if let Some(l) = last {
        push(l);
    }
    p
}

/// A token shortened for a message.
fn shown(token: &str) -> String {
    match token.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", token.get(..cut).unwrap_or_default()),
        None => token.to_owned(),
    }
}

impl<'a> Scanner<'a> {
    fn violation(&mut self, last: Option<&str>, message: String) {
        if self.out.len() < MAX_VIOLATIONS {
            let pointer = pointer_of(&self.path, last);
            self.out.push(Violation { pointer, message });
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), Stop> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Stop)
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), Stop> {
        self.ws();
        if matches!(self.peek(), Some(b'{' | b'[')) && depth >= MAX_NESTING {
            self.violation(
                None,
                format!("arrays and objects are nested deeper than {MAX_NESTING} levels, which common parsers refuse"),
            );
            return Err(Stop);
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                if let (_, Some(u)) = self.string(false)? {
                    self.unpaired(None, u);
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number();
                Ok(())
            }
            Some(b't' | b'f' | b'n') => {
                while self.peek().is_some_and(|c| c.is_ascii_lowercase()) {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(Stop),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Stop> {
        self.i += 1; // '{'
        let mut names: Vec<Cow<'a, str>> = Vec::new();
        let mut set: HashSet<Cow<'a, str>> = HashSet::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Stop);
            }
            let (name, unpaired) = self.string(true)?;
            if let Some(u) = unpaired {
                self.unpaired(Some(&name), u);
            }
            if RESERVED_NAMES.contains(&name.as_ref()) {
                self.violation(
                    Some(&name),
                    format!(
                        "the member name '{}' is reserved by a JSON parser, which reads an object whose first member has it as the JSON text in its value; rename the member",
                        shown(&name)
                    ),
                );
            }
            let duplicate = if set.is_empty() { names.contains(&name) } else { set.contains(&name) };
            if duplicate {
                self.violation(
                    Some(&name),
                    format!(
                        "the member name '{}' appears more than once in this object; member names must be unique (I-JSON, RFC 7493 §2.3)",
                        shown(&name)
                    ),
                );
            }
            self.expect(b':')?;
            if depth == 0 {
                self.ws();
                let wanted = self.capture.iter().position(|(n, v)| v.is_none() && *n == name);
                if let (Some(k), Some(b'"')) = (wanted, self.peek()) {
                    // Read the value for the caller, then again below like any value (which
                    // reports what is wrong with it).
                    let start = self.i;
                    let (value, _) = self.string(true)?;
                    if let Some(slot) = self.capture.get_mut(k) {
                        slot.1 = Some(value.into_owned());
                    }
                    self.i = start;
                }
            }
            self.path.push(Seg::Key(name.clone()));
            let r = self.value(depth + 1);
            self.path.pop();
            r?;
            if !set.is_empty() {
                set.insert(name);
            } else {
                names.push(name);
                if names.len() >= SET_FROM {
                    set.extend(names.drain(..));
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Stop> {
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let mut n = 0usize;
        loop {
            self.path.push(Seg::Index(n));
            let r = self.value(depth + 1);
            self.path.pop();
            r?;
            n += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(text, 16).ok().filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
    }

    /// Reads a string starting at its opening quote. With `decode`, returns its value (member
    /// names are compared decoded: `"id"` and `"\u0069d"` are the same name); and the first
    /// unpaired surrogate escape, if any (the caller reports it).
    fn string(&mut self, decode: bool) -> Result<(Cow<'a, str>, Option<u32>), Stop> {
        self.i += 1; // '"'
        let start = self.i;
        let b = self.b;
        let Some(off) = memchr::memchr2(b'"', b'\\', b.get(start..).unwrap_or_default()) else { return Err(Stop) };
        self.i = start + off;
        if b.get(self.i) == Some(&b'"') {
            self.i += 1;
            let text = std::str::from_utf8(b.get(start..self.i - 1).unwrap_or_default()).map_err(|_| Stop)?;
            return Ok((Cow::Borrowed(text), None));
        }
        // Escapes: decode (for names) and check \u escapes for unpaired surrogates.
        let mut out = String::new();
        if decode {
            out.push_str(std::str::from_utf8(b.get(start..self.i).unwrap_or_default()).map_err(|_| Stop)?);
        }
        let mut unpaired: Option<u32> = None;
        loop {
            match self.peek() {
                None => return Err(Stop),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    let esc = b.get(self.i + 1).copied().ok_or(Stop)?;
                    self.i += 2;
                    let c = match esc {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let u = self.hex4(self.i).ok_or(Stop)?;
                            self.i += 4;
                            if (0xD800..0xDC00).contains(&u) {
                                let low = (b.get(self.i) == Some(&b'\\') && b.get(self.i + 1) == Some(&b'u'))
                                    .then(|| self.hex4(self.i + 2))
                                    .flatten()
                                    .filter(|l| (0xDC00..0xE000).contains(l));
                                match low {
                                    Some(l) => {
                                        self.i += 6;
                                        char::from_u32(0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00))
                                            .unwrap_or(char::REPLACEMENT_CHARACTER)
                                    }
                                    None => {
                                        unpaired.get_or_insert(u);
                                        char::REPLACEMENT_CHARACTER
                                    }
                                }
                            } else if (0xDC00..0xE000).contains(&u) {
                                unpaired.get_or_insert(u);
                                char::REPLACEMENT_CHARACTER
                            } else {
                                char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER)
                            }
                        }
                        _ => return Err(Stop),
                    };
                    if decode {
                        out.push(c);
                    }
                }
                Some(_) => {
                    let rest = b.get(self.i..).unwrap_or_default();
                    let n = memchr::memchr2(b'"', b'\\', rest).ok_or(Stop)?;
                    if decode {
                        out.push_str(std::str::from_utf8(rest.get(..n).unwrap_or_default()).map_err(|_| Stop)?);
                    }
                    self.i += n;
                }
            }
        }
        Ok((if decode { Cow::Owned(out) } else { Cow::Borrowed("") }, unpaired))
    }

    fn unpaired(&mut self, last: Option<&str>, u: u32) {
        self.violation(
            last,
            format!(
                "the string holds the unpaired surrogate \\u{u:04X}, which is not a Unicode character (I-JSON, RFC 7493 §2.1)"
            ),
        );
    }

    fn number(&mut self) {
        let start = self.i;
        let mut integral = true;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => integral = false,
                _ => break,
            }
            self.i += 1;
        }
        let token = std::str::from_utf8(self.b.get(start..self.i).unwrap_or_default()).unwrap_or_default();
        if integral {
            let digits = token.trim_start_matches('-');
            let too_big = digits.len() > MAX_EXACT_INTEGER.len()
                || digits.len() == MAX_EXACT_INTEGER.len() && digits > MAX_EXACT_INTEGER;
            if too_big {
                self.violation(
                    None,
                    format!(
                        "the integer {} is outside ±(2^53−1), the range every JSON parser reads exactly (I-JSON, RFC 7493 §2.2)",
                        shown(token)
                    ),
                );
            }
            return;
        }
        match token.parse::<f64>() {
            Ok(v) if v.is_infinite() => self.violation(
                None,
                format!(
                    "the number {} is beyond the range of an IEEE 754 double (I-JSON, RFC 7493 §2.2)",
                    shown(token)
                ),
            ),
            Ok(v) if v == 0.0 && mantissa_nonzero(token) => self.violation(
                None,
                format!("the number {} is too small for an IEEE 754 double (I-JSON, RFC 7493 §2.2)", shown(token)),
            ),
            // Within a rounding step of the largest double, serde_json's faster conversion (which
            // reads every object Concordia validates) can overflow where a correctly rounded one
            // does not: parsers disagree, so the number is refused as beyond the range.
            Ok(_) if serde_json::from_str::<f64>(token).is_err() => self.violation(
                None,
                format!(
                    "the number {} is at the edge of the range of an IEEE 754 double, where parsers read it differently (I-JSON, RFC 7493 §2.2)",
                    shown(token)
                ),
            ),
            _ => {}
        }
    }
}

/// Whether a number's digits before the exponent are not all zero.
fn mantissa_nonzero(token: &str) -> bool {
    token.split(['e', 'E']).next().unwrap_or_default().bytes().any(|c| matches!(c, b'1'..=b'9'))
}

/// Why a container (TAXII envelope or STIX bundle) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("the request body is not valid JSON: {0}")]
    Syntax(String),
    #[error(
        "the member '{0}' appears more than once at the top level of the body; member names must be unique (I-JSON, RFC 7493 §2.3)"
    )]
    DuplicateMember(String),
    #[error("the request body must be a TAXII envelope: a JSON object with an 'objects' list ({0})")]
    NotAnEnvelope(String),
}

/// Reads a TAXII envelope or a STIX bundle (any JSON object with an `objects` list): the raw
/// texts of its objects, or `None` if the object has no `objects` member. Every top-level member
/// name must be unique; the objects themselves are checked one by one with [`check`].
pub fn read_container(text: &str) -> Result<Option<Vec<&RawValue>>, ContainerError> {
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let result = ContainerSeed { duplicate: &mut duplicate }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    if let Some(name) = duplicate {
        return Err(ContainerError::DuplicateMember(name));
    }
    result.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ContainerError::NotAnEnvelope(e.to_string()),
        _ => ContainerError::Syntax(e.to_string()),
    })
}

struct ContainerSeed<'s> {
    duplicate: &'s mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for ContainerSeed<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ContainerSeed<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen: Vec<String> = Vec::new();
        let mut objects = None;
        while let Some(name) = map.next_key::<String>()? {
            if seen.contains(&name) {
                let e = de::Error::custom(format!("duplicate member '{name}'"));
                *self.duplicate = Some(name);
                return Err(e);
            }
            if name == "objects" {
                objects = Some(map.next_value::<Vec<&'de RawValue>>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            seen.push(name);
        }
        Ok(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(text: &str) -> Vec<String> {
        check(text).into_iter().map(|v| v.pointer).collect()
    }

    #[test]
    fn clean_text_has_no_violations() {
        let t = r#"{"type":"indicator","id":"indicator--1","n":9007199254740991,"m":-9007199254740991,
                    "f":1.5e300,"s":"caf\u00e9 \ud83d\ude00 \"q\" \\","a":[{"x":1},{"x":2}],"e":{},"l":[]}"#;
        assert_eq!(check(t), vec![]);
    }

    #[test]
    fn duplicate_names_are_found_at_any_depth_and_after_unescaping() {
        assert_eq!(pointers(r#"{"id":"a","type":"t","id":"b"}"#), vec!["/id"]);
        assert_eq!(pointers(r#"{"id":"a","\u0069d":"b"}"#), vec!["/id"]);
        assert_eq!(pointers(r#"{"x":{"a/b":1,"a~b":2,"a/b":3}}"#), vec!["/x/a~1b"]);
        assert_eq!(pointers(r#"{"l":[{"k":1},{"k":1,"k":2}]}"#), vec!["/l/1/k"]);
        // Many members: the set path finds them too.
        let many: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        assert_eq!(pointers(&format!("{{{},\"k7\":0}}", many.join(","))), vec!["/k7"]);
    }

    #[test]
    fn numbers_beyond_a_double_are_found() {
        assert_eq!(pointers(r#"{"n":9007199254740992}"#), vec!["/n"]);
        assert_eq!(pointers(r#"{"n":-90071992547409910}"#), vec!["/n"]);
        assert_eq!(pointers(r#"{"a":[1e400]}"#), vec!["/a/0"]);
        assert_eq!(pointers(r#"{"a":1e-400}"#), vec!["/a"]);
        assert_eq!(pointers(r#"{"a":0e-400,"b":0.0}"#), Vec::<String>::new());
    }

    #[test]
    fn unpaired_surrogates_are_found_in_values_and_names() {
        assert_eq!(pointers(r#"{"s":"\ud800"}"#), vec!["/s"]);
        assert_eq!(pointers(r#"{"s":"x\udc00y"}"#), vec!["/s"]);
        assert_eq!(pointers(r#"{"s":"\ud800\u0041"}"#), vec!["/s"]);
        assert_eq!(pointers(r#"{"\ud800":1}"#), vec!["/\u{fffd}"]);
        assert!(check(r#"{"s":"\ud800"}"#)[0].message.contains("\\uD800"));
    }

    #[test]
    fn top_level_values_are_captured() {
        let (v, got) = scan(
            r#"{"x":{"id":"inner"},"id":"indicator--\u0041","modified":"m","id":"second","s":"\ud800"}"#,
            &["id", "created", "modified"],
        );
        assert_eq!(got, vec![Some("indicator--A".to_owned()), None, Some("m".to_owned())]);
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/id", "/s"]);
    }

    #[test]
    fn malformed_text_is_reported_not_panicked_on() {
        for bad in ["", "{", "{\"a\"", "{\"a\":}", "[1,", "\"\\u12", "{\"a\":\"\\q\"}", "{\"a\" 1}"] {
            assert!(!check(bad).is_empty(), "{bad}");
        }
        let deep = "[".repeat(1000);
        assert!(!check(&deep).is_empty());
    }

    /// Found by the envelope fuzz target: the container reads an object of any depth (serde_json
    /// skips values without a depth limit), but serde_json's own parser refuses 128 levels, so the
    /// scan must name such nesting instead of passing text that consumers cannot read.
    #[test]
    fn nesting_deeper_than_parsers_read_is_a_violation() {
        let nest = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        let ok = nest(MAX_NESTING);
        assert!(check(&ok).is_empty(), "{MAX_NESTING} levels are fine");
        assert!(serde_json::from_str::<serde_json::Value>(&ok).is_ok());
        for n in [MAX_NESTING + 1, 130, 5000] {
            let deep = nest(n);
            let v = check(&deep);
            assert!(v.iter().any(|v| v.message.contains("nested deeper than 100 levels")), "{n}: {v:?}");
        }
        let envelope = format!("{{\"objects\":[{}]}}", nest(130));
        let objects = read_container(&envelope).unwrap().unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(objects[0].get()).is_err());
        assert!(!check(objects[0].get()).is_empty());
    }

    /// Found by the envelope fuzz target: serde_json reads `{"$serde_json::private::RawValue":
    /// "<text>"}` as `<text>`, so an object could show the validator one thing and every other
    /// parser another.
    #[test]
    fn parser_marker_names_are_refused_anywhere() {
        let hidden = r#"{"$serde_json::private::RawValue":"{\"type\":\"indicator\"}"}"#;
        let as_serde: serde_json::Value = serde_json::from_str(hidden).unwrap();
        assert_eq!(as_serde["type"], "indicator", "the differential this guards against");
        for text in [
            hidden.to_owned(),
            r#"{"a":{"$serde_json::private::RawValue":"[]"}}"#.to_owned(),
            r#"{"a":[{"x":1,"\u0024serde_json::private::Number":"1"}]}"#.to_owned(),
        ] {
            let v = check(&text);
            assert!(v.iter().any(|v| v.message.contains("is reserved by a JSON parser")), "{text}: {v:?}");
        }
        assert!(check(r#"{"$serde_json::private::RawValueX":1}"#).is_empty());
    }

    /// Every number the scan passes is one serde_json reads, up to the edges of a double.
    #[test]
    fn numbers_the_scan_passes_are_read_by_serde_json() {
        for token in [
            "1.7976931348623157e308",
            "1.797693134862315807e308",
            "1.7976931348623158e308",
            "1.79769313486231580793728971405301e308",
            "179769313486231580793728971405303e292",
            "-1.7976931348623159e308",
            "4.9e-324",
            "2.4703282292062328e-324",
            "2.2250738585072011e-308",
        ] {
            let text = format!("{{\"n\":{token}}}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&text).is_ok() || !check(&text).is_empty(),
                "{token}: serde_json refuses it and the scan passes it"
            );
        }
    }

    #[test]
    fn containers() {
        let objs = read_container(r#"{"more":false,"objects":[{"a":1},{"b":2}]}"#).unwrap().unwrap();
        assert_eq!(objs.len(), 2);
        assert!(read_container(r#"{"type":"x"}"#).unwrap().is_none());
        assert_eq!(
            read_container(r#"{"objects":[],"objects":[{"id":"x"}]}"#).err(),
            Some(ContainerError::DuplicateMember("objects".into()))
        );
        assert_eq!(read_container(r#"{"a":1,"\u0061":2}"#).err(), Some(ContainerError::DuplicateMember("a".into())));
        assert!(matches!(read_container(r#"{"objects":{}}"#), Err(ContainerError::NotAnEnvelope(_))));
        assert!(matches!(read_container("[1]"), Err(ContainerError::NotAnEnvelope(_))));
        assert!(matches!(read_container("{"), Err(ContainerError::Syntax(_))));
        assert!(matches!(read_container("{} x"), Err(ContainerError::Syntax(_))));
    }
}
