//! STIX 2.1 Patterning: a syntax checker for indicator patterns (`pattern_type` `stix`).
//!
//! A hand-written tokenizer and recursive-descent parser for the language of the OASIS ANTLR
//! grammar `STIXPattern.g4` as shipped for STIX 2.1 by the `stix2-patterns` Python package
//! (v2.1.x), plus the checks that the OASIS tools make once a pattern has parsed:
//!
//! - a qualifier type (`WITHIN`, `REPEATS`, `START ... STOP`) at most once directly on a `[...]`
//!   observation (`stix2-patterns`);
//! - hash values well-formed where the path ends in a known hash name, e.g. `file:hashes.MD5`
//!   (`stix2-patterns`);
//! - object type names well-formed and the property (the first path component) well-formed
//!   (`stix2-validator`, STIX 2.1 part 5 §9.1 / part 3 §3.1).
//!
//! Grammar (keywords are case-sensitive; whitespace and `/* */`, `//` comments may appear
//! between any two tokens):
//!
//! ```text
//! pattern        := obsFollowedBy EOF
//! obsFollowedBy  := obsOr ('FOLLOWEDBY' obsOr)*
//! obsOr          := obsAnd ('OR' obsAnd)*
//! obsAnd         := observation ('AND' observation)*
//! observation    := ('[' cmpOr ']' | '(' obsFollowedBy ')') qualifier*
//! qualifier      := 'START' Timestamp 'STOP' Timestamp
//!                 | 'WITHIN' (IntPos | FloatPos) 'SECONDS'
//!                 | 'REPEATS' IntPos 'TIMES'
//! cmpOr          := cmpAnd ('OR' cmpAnd)*
//! cmpAnd         := propTest ('AND' propTest)*
//! propTest       := objectPath 'NOT'? ('=' | '==' | '!=' | '<>') primitiveLiteral
//!                 | objectPath 'NOT'? ('<' | '<=' | '>' | '>=') orderableLiteral
//!                 | objectPath 'NOT'? 'IN' setLiteral
//!                 | objectPath 'NOT'? ('LIKE' | 'MATCHES' | 'ISSUBSET' | 'ISSUPERSET') String
//!                 | '(' cmpOr ')'
//!                 | 'NOT'? 'EXISTS' objectPath
//! objectPath     := Identifier ':' (IdentifierWithoutHyphen | String) pathStep*
//! pathStep       := '.' (IdentifierWithoutHyphen | String) | '[' (IntPos | IntNeg | '*') ']'
//! setLiteral     := '(' ')' | '(' primitiveLiteral (',' primitiveLiteral)* ')'
//! primitive      := orderable | 'true' | 'false'
//! orderable      := IntPos | IntNeg | FloatPos | FloatNeg | String | Binary | Hex | Timestamp
//! ```
//!
//! Tokens follow the ANTLR lexer exactly (longest match, ties to the earlier rule): integers
//! `[+-]?(0|[1-9][0-9]*)`, floats `[+-]?[0-9]*\.[0-9]+`, strings `'...'` with only `\'` and `\\`
//! as escapes, `h'..'` an even number of hex digits, `b'..'` non-empty padded base64,
//! `t'YYYY-MM-DDTHH:MM:SS(.s+)?Z'`.
//!
//! Where this checker is stricter than `stix2-patterns` (each deliberate):
//! - timestamps must be real dates (the grammar takes `t'2021-02-30T00:00:00Z'`); second `60`
//!   (a leap second) stays allowed, as in the grammar and RFC 3339;
//! - object types and properties are checked as `stix2-validator` does (`[a:b = 1]` parses but
//!   neither name is valid STIX), except that `id` is accepted on every type, custom ones too,
//!   since every SCO has an `id`;
//! - parentheses nest at most [`MAX_DEPTH`] deep, so that hostile input cannot exhaust the stack.
//!
//! Where it is more lenient (the reference rejects or crashes on these, against the grammar):
//! hash values are checked for `=`, `!=`, `<`, `<=`, `>`, `>=` and each member of an `IN` set,
//! not for the pattern strings of `LIKE`, `MATCHES`, `ISSUBSET`, `ISSUPERSET` (the reference
//! checks the set's text `(...)` as a whole and the pattern strings too, so it rejects e.g.
//! `file:hashes.MD5 IN ('<md5>')`); negative list indexes such as `[-1]` and a list index after
//! `hashes` are accepted, as the grammar says (the reference crashes on both); a comment before
//! the first `[` is accepted, as the grammar says (the reference's "missing square brackets"
//! pre-check rejects it).
//!
//! The checker never panics, runs in time linear in the input, and reports byte offsets that
//! always fall on a character boundary.

use std::fmt;

/// Deepest nesting of parentheses (observation and comparison levels together) accepted.
pub const MAX_DEPTH: usize = 64;

/// Longest object type or property name allowed (STIX 2.1 part 3 §3.1).
const MAX_NAME_LEN: usize = 250;

/// The 18 STIX 2.1 Cyber-observable Object types.
const OBSERVABLE_TYPES: [&str; 18] = [
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
];

/// A pattern that does not parse, with the byte offset where parsing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.position)
    }
}

impl std::error::Error for PatternError {}

/// Checks that `pattern` is a valid STIX 2.1 pattern.
pub fn check(pattern: &str) -> Result<(), PatternError> {
    let mut parser = Parser::new(pattern);
    parser.pattern()?;
    match parser.deferred {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    And,
    Or,
    Not,
    FollowedBy,
    Like,
    Matches,
    IsSuperset,
    IsSubset,
    Exists,
    Last,
    In,
    Start,
    Stop,
    Seconds,
    Within,
    Repeats,
    Times,
}

const KEYWORDS: [(&str, Kw); 17] = [
    ("AND", Kw::And),
    ("OR", Kw::Or),
    ("NOT", Kw::Not),
    ("FOLLOWEDBY", Kw::FollowedBy),
    ("LIKE", Kw::Like),
    ("MATCHES", Kw::Matches),
    ("ISSUPERSET", Kw::IsSuperset),
    ("ISSUBSET", Kw::IsSubset),
    ("EXISTS", Kw::Exists),
    ("LAST", Kw::Last),
    ("IN", Kw::In),
    ("START", Kw::Start),
    ("STOP", Kw::Stop),
    ("SECONDS", Kw::Seconds),
    ("WITHIN", Kw::Within),
    ("REPEATS", Kw::Repeats),
    ("TIMES", Kw::Times),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    IntPos,
    IntNeg,
    FloatPos,
    FloatNeg,
    Hex,
    Binary,
    Str,
    Bool,
    Timestamp,
    Kw(Kw),
    /// `[a-zA-Z_][a-zA-Z0-9_]*`
    Ident,
    /// `[a-zA-Z_][a-zA-Z0-9_-]*` containing a hyphen: an object type, never a property.
    IdentHyphen,
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
    Colon,
    Dot,
    Comma,
    LParen,
    RParen,
    LBrack,
    RBrack,
    Star,
    Eof,
    /// Input that no token of the grammar can start with; the message says why.
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn is_digit(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The grammar's `WS` rule, beyond ASCII.
fn is_unicode_space(c: char) -> bool {
    matches!(
        c,
        '\u{0085}' | '\u{00a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// The text of `src[start..end]` for a message: at most 40 characters, quotes shown as is.
fn snippet(src: &str, start: usize, end: usize) -> String {
    let text = src.get(start..end).unwrap_or("");
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer { src, bytes: src.as_bytes(), pos: 0 }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn char_at(&self, i: usize) -> Option<char> {
        self.src.get(i..).and_then(|s| s.chars().next())
    }

    fn token(&mut self, kind: Kind, start: usize, end: usize) -> Token {
        self.pos = end;
        Token { kind, start, end }
    }

    fn invalid(&mut self, start: usize, message: String) -> Token {
        // Nothing is lexed after an invalid token: the parser stops there at the latest.
        self.pos = self.bytes.len();
        Token { kind: Kind::Invalid(message), start, end: start }
    }

    /// Skips whitespace and comments; an unterminated `/*` comment is an error.
    fn skip_trivia(&mut self) -> Option<Token> {
        loop {
            match self.at(self.pos) {
                Some(b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c) => self.pos += 1,
                Some(b'/') if self.at(self.pos + 1) == Some(b'*') => {
                    let start = self.pos;
                    match self.src.get(start + 2..).and_then(|rest| rest.find("*/")) {
                        Some(i) => self.pos = start + 2 + i + 2,
                        None => return Some(self.invalid(start, "unterminated comment".into())),
                    }
                }
                Some(b'/') if self.at(self.pos + 1) == Some(b'/') => {
                    while !matches!(self.at(self.pos), None | Some(b'\r' | b'\n')) {
                        self.pos += 1;
                    }
                }
                Some(b) if b >= 0x80 => match self.char_at(self.pos) {
                    Some(c) if is_unicode_space(c) => self.pos += c.len_utf8(),
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    fn next_token(&mut self) -> Token {
        if let Some(t) = self.skip_trivia() {
            return t;
        }
        let start = self.pos;
        let Some(b) = self.at(start) else {
            return self.token(Kind::Eof, start, start);
        };
        match b {
            b'0'..=b'9' | b'+' | b'-' | b'.' => self.number(start),
            b'\'' => match self.scan_string(start) {
                Ok(end) => self.token(Kind::Str, start, end),
                Err((pos, msg)) => self.invalid(pos, msg),
            },
            b't' | b'h' | b'b' if self.at(start + 1) == Some(b'\'') => self.prefixed_literal(b, start),
            b if is_ident_start(b) => self.word(start),
            b'=' if self.at(start + 1) == Some(b'=') => self.token(Kind::Eq, start, start + 2),
            b'=' => self.token(Kind::Eq, start, start + 1),
            b'!' if self.at(start + 1) == Some(b'=') => self.token(Kind::Neq, start, start + 2),
            b'<' if self.at(start + 1) == Some(b'>') => self.token(Kind::Neq, start, start + 2),
            b'<' if self.at(start + 1) == Some(b'=') => self.token(Kind::Le, start, start + 2),
            b'<' => self.token(Kind::Lt, start, start + 1),
            b'>' if self.at(start + 1) == Some(b'=') => self.token(Kind::Ge, start, start + 2),
            b'>' => self.token(Kind::Gt, start, start + 1),
            b':' => self.token(Kind::Colon, start, start + 1),
            b',' => self.token(Kind::Comma, start, start + 1),
            b'(' => self.token(Kind::LParen, start, start + 1),
            b')' => self.token(Kind::RParen, start, start + 1),
            b'[' => self.token(Kind::LBrack, start, start + 1),
            b']' => self.token(Kind::RBrack, start, start + 1),
            b'*' => self.token(Kind::Star, start, start + 1),
            b'"' => self.invalid(start, "strings are quoted with ' (single quotes), not \"".into()),
            _ => {
                let c = self.char_at(start).unwrap_or(char::REPLACEMENT_CHARACTER);
                let shown = if c.is_control() { format!("{:?}", c) } else { format!("'{c}'") };
                self.invalid(start, format!("unexpected character {shown}"))
            }
        }
    }

    /// Integers, floats, and the lone `+`, `-`, `.` tokens.
    fn number(&mut self, start: usize) -> Token {
        let sign = matches!(self.at(start), Some(b'+' | b'-'));
        let negative = self.at(start) == Some(b'-');
        let digits = if sign { start + 1 } else { start };
        let int_end = match self.at(digits) {
            Some(b'0') => Some(digits + 1),
            Some(b'1'..=b'9') => {
                let mut j = digits + 1;
                while is_digit(self.at(j)) {
                    j += 1;
                }
                Some(j)
            }
            _ => None,
        };
        let mut j = digits;
        while is_digit(self.at(j)) {
            j += 1;
        }
        let float_end = if self.at(j) == Some(b'.') && is_digit(self.at(j + 1)) {
            let mut k = j + 1;
            while is_digit(self.at(k)) {
                k += 1;
            }
            Some(k)
        } else {
            None
        };
        // A float match always extends past the integer match, so it wins when present.
        match (float_end, int_end, negative) {
            (Some(end), _, false) => self.token(Kind::FloatPos, start, end),
            (Some(end), _, true) => self.token(Kind::FloatNeg, start, end),
            (None, Some(end), false) => self.token(Kind::IntPos, start, end),
            (None, Some(end), true) => self.token(Kind::IntNeg, start, end),
            (None, None, _) => match self.at(start) {
                Some(b'.') => self.token(Kind::Dot, start, start + 1),
                Some(b'-') => self.invalid(start, "'-' must be followed by a number".into()),
                _ => self.invalid(start, "'+' must be followed by a number".into()),
            },
        }
    }

    /// Keywords, booleans and identifiers.
    fn word(&mut self, start: usize) -> Token {
        let mut plain_end = start + 1;
        while self.at(plain_end).is_some_and(is_ident_char) {
            plain_end += 1;
        }
        let mut end = plain_end;
        while self.at(end).is_some_and(|b| is_ident_char(b) || b == b'-') {
            end += 1;
        }
        if end > plain_end {
            return self.token(Kind::IdentHyphen, start, end);
        }
        let text = self.src.get(start..end).unwrap_or("");
        let kind = if text == "true" || text == "false" {
            Kind::Bool
        } else if let Some((_, kw)) = KEYWORDS.iter().find(|(k, _)| *k == text) {
            Kind::Kw(*kw)
        } else {
            Kind::Ident
        };
        self.token(kind, start, end)
    }

    /// Scans a string literal starting at the quote at `start`; returns the end (past the
    /// closing quote), or the position and text of the error.
    fn scan_string(&self, start: usize) -> Result<usize, (usize, String)> {
        let mut i = start + 1;
        loop {
            match self.at(i) {
                None => return Err((start, "unterminated string".into())),
                Some(b'\'') => return Ok(i + 1),
                Some(b'\\') => match self.at(i + 1) {
                    Some(b'\'' | b'\\') => i += 2,
                    None => return Err((start, "unterminated string".into())),
                    Some(_) => {
                        let c = self.char_at(i + 1).unwrap_or(char::REPLACEMENT_CHARACTER);
                        return Err((i, format!("invalid escape '\\{c}' in string (only \\' and \\\\ are allowed)")));
                    }
                },
                // Multi-byte characters: their bytes are never a quote or backslash.
                Some(_) => i += 1,
            }
        }
    }

    /// `t'...'`, `h'...'` and `b'...'`. When the literal is malformed no other reading of the
    /// input can be valid (the grammar never has an identifier followed by a string), so a
    /// precise error is given here.
    fn prefixed_literal(&mut self, prefix: u8, start: usize) -> Token {
        let body_start = start + 2;
        let Some(rel) = self.src.get(body_start..).and_then(|rest| rest.find('\'')) else {
            let what = match prefix {
                b't' => "timestamp",
                b'h' => "hex",
                _ => "binary",
            };
            return self.invalid(start, format!("unterminated {what} literal"));
        };
        let body_end = body_start + rel;
        let body = self.bytes.get(body_start..body_end).unwrap_or(&[]);
        let result = match prefix {
            b't' => check_timestamp(body),
            b'h' => check_hex(body),
            _ => check_base64(body),
        };
        match result {
            Ok(()) => {
                let kind = match prefix {
                    b't' => Kind::Timestamp,
                    b'h' => Kind::Hex,
                    _ => Kind::Binary,
                };
                self.token(kind, start, body_end + 1)
            }
            Err(msg) => self.invalid(start, msg),
        }
    }
}

fn check_hex(body: &[u8]) -> Result<(), String> {
    if let Some(b) = body.iter().find(|b| !is_hex(**b)) {
        let shown =
            if b.is_ascii_graphic() || *b == b' ' { format!("'{}'", char::from(*b)) } else { "non-ASCII".into() };
        return Err(format!("invalid hex literal: {shown} is not a hex digit"));
    }
    if body.len() % 2 != 0 {
        return Err("invalid hex literal: odd number of hex digits".into());
    }
    Ok(())
}

fn check_base64(body: &[u8]) -> Result<(), String> {
    let bad = || Err("invalid binary literal: not padded base64 (groups of 4 of A-Z a-z 0-9 + /, '=' padding)".into());
    if body.is_empty() {
        return Err("invalid binary literal: empty (the grammar needs at least one base64 group)".into());
    }
    if body.len() % 4 != 0 {
        return bad();
    }
    let data_len = body.iter().rev().take_while(|b| **b == b'=').count();
    if data_len > 2 {
        return bad();
    }
    let data = body.get(..body.len() - data_len).unwrap_or(&[]);
    if !data.iter().all(|b| is_base64(*b)) {
        return bad();
    }
    Ok(())
}

fn two_digits(body: &[u8], at: usize) -> Option<u32> {
    match (body.get(at), body.get(at + 1)) {
        (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS(.s+)?Z`, a real date and time (second 60 allowed for leap seconds).
fn check_timestamp(body: &[u8]) -> Result<(), String> {
    let format = || Err("invalid timestamp literal: expected t'YYYY-MM-DDTHH:MM:SS[.s]Z'".to_string());
    let sep = |at: usize, c: u8| body.get(at) == Some(&c);
    let (Some(y1), Some(y2), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        two_digits(body, 0),
        two_digits(body, 2),
        two_digits(body, 5),
        two_digits(body, 8),
        two_digits(body, 11),
        two_digits(body, 14),
        two_digits(body, 17),
    ) else {
        return format();
    };
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return format();
    }
    let rest = body.get(19..).unwrap_or(&[]);
    let rest = match rest.first() {
        Some(b'.') => {
            let digits = rest.iter().skip(1).take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return format();
            }
            rest.get(1 + digits..).unwrap_or(&[])
        }
        _ => rest,
    };
    if rest != b"Z" {
        return format();
    }
    let year = y1 * 100 + y2;
    if !(1..=12).contains(&month) {
        return Err(format!("invalid timestamp literal: month {month:02} does not exist"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("invalid timestamp literal: day {day:02} does not exist in {year:04}-{month:02}"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("invalid timestamp literal: time {hour:02}:{minute:02}:{second:02} does not exist"));
    }
    Ok(())
}

/// The content of a string literal token (quotes removed, `\'` and `\\` unescaped).
fn unescape(text: &str) -> String {
    let inner = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Names and hashes, as the OASIS tools check them after parsing

/// `stix2-validator`: `^-?[a-z0-9]+(-[a-z0-9]+)*-?$`, 3 to 250 characters.
fn valid_type_name(name: &str) -> bool {
    let len = name.len();
    if !(3..=MAX_NAME_LEN).contains(&len) {
        return false;
    }
    let core = name.strip_prefix('-').unwrap_or(name);
    let core = core.strip_suffix('-').unwrap_or(core);
    !core.is_empty()
        && core
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// `stix2-validator`: `^[a-z0-9_]{3,250}$`, and `id` (a property of every SCO).
fn valid_property_name(name: &str) -> bool {
    name == "id"
        || ((3..=MAX_NAME_LEN).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
}

/// What a hash value must look like, for the hash names that `stix2-patterns` knows.
#[derive(Debug, Clone, Copy)]
enum HashRule {
    /// Hex digits, one of these lengths.
    Hex(&'static [usize]),
    /// `^[a-zA-Z0-9/+:.]{1,128}$`
    Ssdeep,
}

struct Hash {
    rule: HashRule,
    name: String,
}

/// The rule for a hash key as written in the path (`MD5`, `'SHA-256'`, `sha3-512`...): compared
/// upper-cased without hyphens, as `stix2-patterns` does.
fn hash_rule(key: &str) -> Option<HashRule> {
    let norm: String = key.chars().filter(|c| *c != '-' && *c != '\'').map(|c| c.to_ascii_uppercase()).collect();
    Some(match norm.as_str() {
        "MD5" => HashRule::Hex(&[32]),
        // The reference's MD6 regex is mis-grouped; these are the lengths it means.
        "MD6" => HashRule::Hex(&[32, 40, 56, 64, 96, 128]),
        "RIPEMD160" | "SHA1" => HashRule::Hex(&[40]),
        "SHA224" | "SHA3224" => HashRule::Hex(&[56]),
        "SHA256" | "SHA3256" => HashRule::Hex(&[64]),
        "SHA384" | "SHA3384" => HashRule::Hex(&[96]),
        "SHA512" | "SHA3512" | "WHIRLPOOL" => HashRule::Hex(&[128]),
        "SSDEEP" => HashRule::Ssdeep,
        _ => return None,
    })
}

fn hash_ok(rule: HashRule, value: &str) -> bool {
    match rule {
        HashRule::Hex(lengths) => lengths.contains(&value.len()) && value.bytes().all(is_hex),
        HashRule::Ssdeep => {
            (1..=128).contains(&value.len())
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b':' | b'.'))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    StartStop,
    Within,
    Repeats,
}

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    cur: Token,
    /// Current nesting of parentheses.
    depth: usize,
    /// The first error found by a check made after parsing (names, hashes, qualifiers): reported
    /// only when the pattern parses, like the reference does.
    deferred: Option<PatternError>,
}

type PResult<T> = Result<T, PatternError>;

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        let mut lexer = Lexer::new(src);
        let cur = lexer.next_token();
        Parser { src, lexer, cur, depth: 0, deferred: None }
    }

    fn advance(&mut self) -> Token {
        let next = self.lexer.next_token();
        std::mem::replace(&mut self.cur, next)
    }

    fn is(&self, kind: &Kind) -> bool {
        self.cur.kind == *kind
    }

    fn is_kw(&self, kw: Kw) -> bool {
        self.cur.kind == Kind::Kw(kw)
    }

    fn text(&self, t: &Token) -> &'a str {
        self.src.get(t.start..t.end).unwrap_or("")
    }

    fn defer(&mut self, position: usize, message: String) {
        if self.deferred.is_none() {
            self.deferred = Some(PatternError { position, message });
        }
    }

    /// How the current token reads in a message.
    fn describe(&self) -> String {
        let t = &self.cur;
        let s = snippet(self.src, t.start, t.end);
        match &t.kind {
            Kind::Eof => "the end of the pattern".into(),
            Kind::Str => format!("string {s}"),
            Kind::IntPos | Kind::IntNeg | Kind::FloatPos | Kind::FloatNeg => format!("number {s}"),
            Kind::Hex | Kind::Binary | Kind::Timestamp | Kind::Bool => format!("literal {s}"),
            Kind::Ident | Kind::IdentHyphen => format!("'{s}'{}", self.case_hint()),
            _ => format!("'{s}'"),
        }
    }

    /// For an identifier that is a keyword or boolean in the wrong case, a hint to that effect.
    fn case_hint(&self) -> String {
        let text = self.text(&self.cur);
        let upper = text.to_ascii_uppercase();
        if KEYWORDS.iter().any(|(k, _)| *k == upper) {
            format!(" (keywords are case-sensitive: write '{upper}')")
        } else if upper == "TRUE" || upper == "FALSE" {
            format!(" (booleans are lower case: write '{}')", text.to_ascii_lowercase())
        } else {
            String::new()
        }
    }

    /// The error for an unexpected current token; a lexical error is reported as itself.
    fn unexpected<T>(&self, expected: &str) -> PResult<T> {
        if let Kind::Invalid(msg) = &self.cur.kind {
            return Err(PatternError { position: self.cur.start, message: msg.clone() });
        }
        Err(PatternError {
            position: self.cur.start,
            message: format!("expected {expected}, found {}", self.describe()),
        })
    }

    fn expect(&mut self, kind: Kind, expected: &str) -> PResult<Token> {
        if self.cur.kind == kind {
            Ok(self.advance())
        } else {
            self.unexpected(expected)
        }
    }

    fn enter(&mut self) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            return Err(PatternError {
                position: self.cur.start,
                message: format!("parentheses nested deeper than {MAX_DEPTH} levels"),
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn pattern(&mut self) -> PResult<()> {
        if self.is(&Kind::Eof) {
            return Err(PatternError { position: self.cur.start, message: "the pattern is empty".into() });
        }
        self.obs_followed_by()?;
        if !self.is(&Kind::Eof) {
            return self.unexpected("'AND', 'OR', 'FOLLOWEDBY', a qualifier or the end of the pattern");
        }
        Ok(())
    }

    fn obs_followed_by(&mut self) -> PResult<()> {
        self.obs_or()?;
        while self.is_kw(Kw::FollowedBy) {
            self.advance();
            self.obs_or()?;
        }
        Ok(())
    }

    fn obs_or(&mut self) -> PResult<()> {
        self.obs_and()?;
        while self.is_kw(Kw::Or) {
            self.advance();
            self.obs_and()?;
        }
        Ok(())
    }

    fn obs_and(&mut self) -> PResult<()> {
        self.observation()?;
        while self.is_kw(Kw::And) {
            self.advance();
            self.observation()?;
        }
        Ok(())
    }

    fn observation(&mut self) -> PResult<()> {
        let simple = match self.cur.kind {
            Kind::LBrack => {
                self.advance();
                self.cmp_or()?;
                self.expect(Kind::RBrack, "']' (or 'AND', 'OR' within the observation)")?;
                true
            }
            Kind::LParen => {
                self.enter()?;
                self.advance();
                self.obs_followed_by()?;
                self.expect(Kind::RParen, "')' (or 'AND', 'OR', 'FOLLOWEDBY', a qualifier)")?;
                self.depth -= 1;
                false
            }
            _ => return self.unexpected("'[' or '(' to start an observation expression"),
        };
        let mut seen: Vec<Qualifier> = Vec::new();
        loop {
            let start = self.cur.start;
            let q = match self.cur.kind {
                Kind::Kw(Kw::Start) => {
                    self.advance();
                    self.expect(Kind::Timestamp, "a timestamp literal t'...' after START")?;
                    self.expect(Kind::Kw(Kw::Stop), "'STOP' after 'START t'...''")?;
                    self.expect(Kind::Timestamp, "a timestamp literal t'...' after STOP")?;
                    Qualifier::StartStop
                }
                Kind::Kw(Kw::Within) => {
                    self.advance();
                    if matches!(self.cur.kind, Kind::IntPos | Kind::FloatPos) {
                        self.advance();
                    } else {
                        return self.unexpected("a non-negative number of seconds after WITHIN");
                    }
                    self.expect(Kind::Kw(Kw::Seconds), "'SECONDS' after 'WITHIN n'")?;
                    Qualifier::Within
                }
                Kind::Kw(Kw::Repeats) => {
                    self.advance();
                    self.expect(Kind::IntPos, "a non-negative integer after REPEATS")?;
                    self.expect(Kind::Kw(Kw::Times), "'TIMES' after 'REPEATS n'")?;
                    Qualifier::Repeats
                }
                _ => break,
            };
            // `stix2-patterns` rejects a repeated qualifier type directly on a `[...]`.
            if simple {
                if seen.contains(&q) {
                    let name = match q {
                        Qualifier::StartStop => "START/STOP",
                        Qualifier::Within => "WITHIN",
                        Qualifier::Repeats => "REPEATS",
                    };
                    self.defer(start, format!("duplicate {name} qualifier on one observation"));
                } else {
                    seen.push(q);
                }
            }
        }
        Ok(())
    }

    fn cmp_or(&mut self) -> PResult<()> {
        self.cmp_and()?;
        while self.is_kw(Kw::Or) {
            self.advance();
            self.cmp_and()?;
        }
        Ok(())
    }

    fn cmp_and(&mut self) -> PResult<()> {
        self.prop_test()?;
        while self.is_kw(Kw::And) {
            self.advance();
            self.prop_test()?;
        }
        Ok(())
    }

    fn prop_test(&mut self) -> PResult<()> {
        match self.cur.kind {
            Kind::LParen => {
                self.enter()?;
                self.advance();
                self.cmp_or()?;
                self.expect(Kind::RParen, "')' (or 'AND', 'OR')")?;
                self.depth -= 1;
                return Ok(());
            }
            Kind::Kw(Kw::Exists) => {
                self.advance();
                self.object_path()?;
                return Ok(());
            }
            Kind::Kw(Kw::Not) => {
                self.advance();
                if self.is_kw(Kw::Exists) {
                    self.advance();
                    self.object_path()?;
                    return Ok(());
                }
                return self.unexpected(
                    "'EXISTS' after a leading NOT (otherwise NOT goes after the object path, e.g. file:name NOT = 'x')",
                );
            }
            Kind::Ident | Kind::IdentHyphen => {}
            _ => return self.unexpected("a comparison (an object path such as file:name), 'EXISTS' or '('"),
        }
        let hash = self.object_path()?;
        if self.is_kw(Kw::Not) {
            self.advance();
        }
        let op = self.cur.clone();
        match op.kind {
            Kind::Eq | Kind::Neq => {
                self.advance();
                let lit = self.literal(true)?;
                self.check_hash(hash.as_ref(), &lit);
            }
            Kind::Lt | Kind::Le | Kind::Gt | Kind::Ge => {
                self.advance();
                let lit = self.literal(false)?;
                self.check_hash(hash.as_ref(), &lit);
            }
            Kind::Kw(Kw::In) => {
                self.advance();
                self.set_literal(hash.as_ref())?;
            }
            Kind::Kw(Kw::Like | Kw::Matches | Kw::IsSubset | Kw::IsSuperset) => {
                self.advance();
                if !self.is(&Kind::Str) {
                    let name = self.text(&op);
                    return self.unexpected(&format!("a string literal after {name}"));
                }
                self.advance();
            }
            Kind::Ident | Kind::IdentHyphen | Kind::Kw(_) => {
                let text = snippet(self.src, op.start, op.end);
                return Err(PatternError {
                    position: op.start,
                    message: format!("unknown operator '{text}'{}", self.case_hint()),
                });
            }
            _ => {
                return self
                    .unexpected("a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET)")
            }
        }
        Ok(())
    }

    /// `type:property(.key|[n]|[*])*`; returns the hash rule when the path names a known hash.
    fn object_path(&mut self) -> PResult<Option<Hash>> {
        if !matches!(self.cur.kind, Kind::Ident | Kind::IdentHyphen) {
            return self.unexpected("an object type such as 'file'");
        }
        let ty = self.advance();
        let ty_text = self.text(&ty);
        if !OBSERVABLE_TYPES.contains(&ty_text) && !valid_type_name(ty_text) {
            self.defer(
                ty.start,
                format!(
                    "'{}' is not a valid object type name (a-z, 0-9 and '-', 3 to 250 characters)",
                    snippet(self.src, ty.start, ty.end)
                ),
            );
        }
        self.expect(Kind::Colon, "':' after the object type")?;
        let first_start = self.cur.start;
        let first = match self.cur.kind {
            Kind::Ident => {
                let t = self.advance();
                self.text(&t).to_string()
            }
            Kind::Str => {
                let t = self.advance();
                unescape(self.text(&t))
            }
            Kind::IdentHyphen => {
                return Err(PatternError {
                    position: self.cur.start,
                    message: format!(
                        "invalid property name '{}': property names cannot contain '-' (quote it as a key: 'a-b')",
                        snippet(self.src, self.cur.start, self.cur.end)
                    ),
                })
            }
            _ => return self.unexpected("a property name after ':'"),
        };
        if !valid_property_name(&first) {
            let shown: String = first.chars().take(40).collect();
            self.defer(
                first_start,
                format!("'{shown}' is not a valid property name (a-z, 0-9 and '_', 3 to 250 characters)"),
            );
        }
        let mut has_hashes = first == "hashes";
        let mut last_key: Option<String> = Some(first);
        loop {
            match self.cur.kind {
                Kind::Dot => {
                    self.advance();
                    let key = match self.cur.kind {
                        Kind::Ident => {
                            let t = self.advance();
                            self.text(&t).to_string()
                        }
                        Kind::Str => {
                            let t = self.advance();
                            unescape(self.text(&t))
                        }
                        Kind::IdentHyphen => {
                            return Err(PatternError {
                                position: self.cur.start,
                                message: format!(
                                    "a key containing '-' must be quoted: .'{}'",
                                    snippet(self.src, self.cur.start, self.cur.end)
                                ),
                            })
                        }
                        _ => return self.unexpected("a property name or a quoted key after '.'"),
                    };
                    has_hashes |= key == "hashes";
                    last_key = Some(key);
                }
                Kind::LBrack => {
                    self.advance();
                    if matches!(self.cur.kind, Kind::IntPos | Kind::IntNeg | Kind::Star) {
                        self.advance();
                    } else {
                        return self.unexpected("a list index (an integer or '*')");
                    }
                    self.expect(Kind::RBrack, "']' after the list index")?;
                    last_key = None;
                }
                _ => break,
            }
        }
        Ok(match last_key {
            Some(name) if has_hashes => hash_rule(&name).map(|rule| Hash { rule, name }),
            _ => None,
        })
    }

    /// A primitive literal (`any`: booleans too) or an orderable one; returns its token.
    fn literal(&mut self, any: bool) -> PResult<Token> {
        match self.cur.kind {
            Kind::IntPos
            | Kind::IntNeg
            | Kind::FloatPos
            | Kind::FloatNeg
            | Kind::Str
            | Kind::Binary
            | Kind::Hex
            | Kind::Timestamp => Ok(self.advance()),
            Kind::Bool if any => Ok(self.advance()),
            Kind::Bool => self.unexpected("an orderable literal (a boolean cannot be compared with <, <=, >, >=)"),
            Kind::LParen if any => self.unexpected("a literal value (a set '(...)' goes with IN)"),
            _ => self.unexpected("a literal value"),
        }
    }

    fn set_literal(&mut self, hash: Option<&Hash>) -> PResult<()> {
        self.expect(Kind::LParen, "'(' to start the set after IN")?;
        if self.is(&Kind::RParen) {
            // `()` is allowed by the grammar (and by `stix2-patterns`).
            self.advance();
            return Ok(());
        }
        loop {
            let lit = self.literal(true)?;
            self.check_hash(hash, &lit);
            match self.cur.kind {
                Kind::Comma => {
                    self.advance();
                }
                Kind::RParen => {
                    self.advance();
                    return Ok(());
                }
                _ => return self.unexpected("',' or ')' in the set"),
            }
        }
    }

    fn check_hash(&mut self, hash: Option<&Hash>, lit: &Token) {
        let Some(hash) = hash else { return };
        if lit.kind != Kind::Str {
            // As in `stix2-patterns`: a hash is only ever a string.
            let name: String = hash.name.chars().take(40).collect();
            let shown = snippet(self.src, lit.start, lit.end);
            self.defer(lit.start, format!("{shown} is not a valid {name} hash (hash values are strings)"));
            return;
        }
        let value = unescape(self.text(lit));
        if !hash_ok(hash.rule, &value) {
            let shown: String = value.chars().take(40).collect();
            let name: String = hash.name.chars().take(40).collect();
            self.defer(lit.start, format!("'{shown}' is not a valid {name} hash"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[&str] = &[
        // Real-world indicators (OASIS examples, ATT&CK, python-stix2 docs).
        "[ipv4-addr:value = '198.51.100.1/32' OR ipv4-addr:value = '203.0.113.33/32']",
        "[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f'] AND [process:name = 'x']",
        "[file:hashes.'SHA-256' = 'ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c']",
        "[file:hashes.'SHA-1' = 'f8f8a5d3a51c1a8ecb9d1d4e0a1d4a2b1f6f4e3d']",
        "[url:value = 'http://x4z9arb.cn/4712/']",
        "[domain-name:value = 'example.com' AND domain-name:resolves_to_refs[*].value = '198.51.100.1']",
        "[email-message:from_ref.value MATCHES '.+\\\\@example\\\\.com$' AND email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\\\.exe$']",
        "[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\System\\\\Foo\\\\Bar']",
        "[windows-registry-key:values[*].name = 'Foo']",
        "[windows-registry-key:values[0].data = 'x' AND windows-registry-key:values[-1].name != 'y']",
        "[file:name = 'foo.dll' AND file:parent_directory_ref.path = 'C:\\\\Windows\\\\System32']",
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value ISSUBSET '198.51.100.0/24']",
        "[ipv4-addr:value ISSUPERSET '198.51.100.0/24']",
        "[process:pid NOT = 4 AND process:name NOT LIKE 'svchost%']",
        "[user-account:account_login NOT IN ('root', 'admin')]",
        // Every comparison operator and literal kind.
        "[file:size == 25536 OR file:size <> 0 OR file:size != -1]",
        "[file:size < 1024 AND file:size <= 1024.5 AND file:size > -2 AND file:size >= +0]",
        "[file:size >= .5 AND file:size < -.25]",
        "[file:is_encrypted = true OR file:is_encrypted != false]",
        "[file:created > t'2016-01-01T00:00:00Z' AND file:modified <= t'2020-02-29T23:59:60.123456Z']",
        "[artifact:payload_bin = b'iVBORw0KGgoAAAANSUhEUgAAADI=']",
        "[artifact:payload_bin = b'YQ==' OR artifact:payload_bin = b'YWI=' OR artifact:payload_bin = b'YWJj']",
        "[file:magic_number_hex = h'ffd8' OR file:magic_number_hex = h'']",
        "[file:name IN ('a', 1, 2.5, true, h'00', b'YQ==', t'2016-01-01T00:00:00Z')]",
        "[file:name IN ()]",
        "[file:name LIKE 'a%' AND file:name MATCHES '^a' AND file:name ISSUBSET 'x' AND file:name ISSUPERSET 'y']",
        "[file:name = 'it\\'s' AND file:name = 'back\\\\slash' AND file:name = '' AND file:name = 'caf\u{e9} \u{1F600}']",
        "[EXISTS file:hashes.MD5]",
        "[NOT EXISTS windows-registry-key:values[*]]",
        // Qualifiers and observation operators.
        "[file:name = 'a'] WITHIN 5 SECONDS",
        "[file:name = 'a'] WITHIN 2.5 SECONDS",
        "[file:name = 'a'] REPEATS 5 TIMES WITHIN 10 SECONDS",
        "[file:name = 'a'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
        "([file:name = 'a'] AND [file:name = 'b']) REPEATS 2 TIMES REPEATS 3 TIMES",
        "[file:name = 'a'] FOLLOWEDBY [file:name = 'b'] OR [file:name = 'c'] AND [file:name = 'd']",
        "(([file:name = 'a'] FOLLOWEDBY [file:name = 'b']) WITHIN 60 SECONDS) OR [process:name = 'x']",
        // Parentheses, paths, custom objects.
        "[((file:name = 'a' OR file:name = 'b') AND (file:size > 1)) OR (file:size < 0)]",
        "[x-acme-widget:id = 'x-acme-widget--1' AND x-acme-widget:x_acme_colour = 'red']",
        "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
        "[file:'name' = 'a' AND file:x_dict.'Key With Spaces'.inner = 1 AND file:list[+3] = 2]",
        "[process:extensions.'windows-process-ext'.aslr_enabled = true]",
        // Layout: whitespace, comments, no spaces at all.
        "[file:name='a']AND[file:size>1]WITHIN 1 SECONDS",
        "  [ file : name  =\t'a' ]\r\n  OR\n[file:size = 1]  ",
        "[file:name = 'a'] /* block */ AND // line\n [file:size = 1] // trailing",
        "[file:name\u{a0}=\u{3000}'a']",
        // Timestamps that are real: leap day and leap second.
        "[file:created = t'2000-02-29T12:00:00Z' OR file:created = t'2016-12-31T23:59:60Z']",
    ];

    /// (pattern, fragment of the Display text, byte position).
    const INVALID: &[(&str, &str, usize)] = &[
        ("", "the pattern is empty", 0),
        ("   /* only a comment */ ", "the pattern is empty", 24),
        ("[file:name = 'a'", "expected ']'", 16),
        ("[file:name = 'a']]", "found ']'", 17),
        ("([file:name = 'a']", "expected ')'", 18),
        ("[(file:name = 'a']", "expected ')'", 17),
        ("[file:name 'a']", "expected a comparison operator", 11),
        ("[file:name EQUALS 'a']", "unknown operator 'EQUALS'", 11),
        ("[file:name like 'a%']", "write 'LIKE'", 11),
        ("[file:name = 'a'] and [file:size = 1]", "keywords are case-sensitive: write 'AND'", 18),
        ("[file:name = 'a' or file:size = 1]", "write 'OR'", 17),
        ("[file:name = 'a'] garbage", "the end of the pattern, found 'garbage'", 18),
        ("[file:name = 'a'] [file:size = 1]", "found '['", 18),
        ("file:name = 'a'", "expected '[' or '('", 0),
        ("[]", "expected a comparison", 1),
        ("[file:name = 'abc]", "unterminated string", 13),
        ("[file:name = 'a\\nb']", "invalid escape '\\n'", 15),
        ("[file:name = \"a\"]", "single quotes", 13),
        ("[file:created = t'2021-02-30T00:00:00Z']", "day 30 does not exist", 16),
        ("[file:created = t'2021-13-01T00:00:00Z']", "month 13 does not exist", 16),
        ("[file:created = t'2021-01-01T24:00:00Z']", "does not exist", 16),
        ("[file:created = t'2021-01-01 00:00:00Z']", "invalid timestamp literal", 16),
        ("[file:created = t'2021-01-01T00:00:00']", "invalid timestamp literal", 16),
        ("[file:created = T'2021-01-01T00:00:00Z']", "expected a literal value, found 'T'", 16),
        ("[file:magic_number_hex = h'abc']", "odd number of hex digits", 25),
        ("[file:magic_number_hex = h'zz']", "not a hex digit", 25),
        ("[artifact:payload_bin = b'YQ=']", "invalid binary literal", 24),
        ("[artifact:payload_bin = b'']", "invalid binary literal", 24),
        ("[artifact:payload_bin = b'Y!Q=']", "invalid binary literal", 24),
        ("[file:name IN (,)]", "expected a literal value", 15),
        ("[file:name IN ('a',)]", "expected a literal value", 19),
        ("[file:name IN ('a' 'b')]", "expected ',' or ')' in the set", 19),
        ("[file:name IN 'a']", "expected '(' to start the set", 14),
        ("[file:name = ()]", "a set '(...)' goes with IN", 13),
        ("[file:size < true]", "a boolean cannot be compared", 13),
        ("[file:name LIKE 5]", "a string literal after LIKE", 16),
        ("[file:name = 'a'] WITHIN -5 SECONDS", "non-negative number of seconds", 25),
        ("[file:name = 'a'] WITHIN 5", "'SECONDS'", 26),
        ("[file:name = 'a'] REPEATS 2.5 TIMES", "non-negative integer after REPEATS", 26),
        ("[file:name = 'a'] START '2016-01-01T00:00:00Z' STOP '2016-01-02T00:00:00Z'", "timestamp literal", 24),
        ("[file:name = 'a'] WITHIN 5 SECONDS WITHIN 6 SECONDS", "duplicate WITHIN qualifier", 35),
        ("WITHIN 5 SECONDS [file:name = 'a']", "expected '[' or '('", 0),
        ("[file:name = 'a'] LAST 5 SECONDS", "found 'LAST'", 18),
        ("[file:name NOT NOT = 'a']", "unknown operator 'NOT'", 15),
        ("[file:name = 'a' AND]", "expected a comparison", 20),
        ("[file:name = 'a'] FOLLOWEDBY", "expected '[' or '('", 28),
        ("[file:name-x = 'a']", "cannot contain '-'", 6),
        ("[file:hashes.SHA-256 = 'a']", "must be quoted", 13),
        ("[file:name[1.5] = 'a']", "list index", 11),
        ("[a:name = 'x']", "'a' is not a valid object type name", 1),
        ("[File:name = 'x']", "'File' is not a valid object type name", 1),
        ("[file:Name = 'x']", "'Name' is not a valid property name", 6),
        ("[x-foo:ab = 'x']", "'ab' is not a valid property name", 7),
        ("[file:hashes.MD5 = 'abc']", "'abc' is not a valid MD5 hash", 19),
        ("[file:hashes.'SHA-256' IN ('cead3f77f6cda6ec00f57d76c9a6879f')]", "not a valid SHA-256 hash", 27),
        ("[file:hashes.MD5 = 5]", "hash values are strings", 19),
        ("[file:name = 'a'] /* open", "unterminated comment", 18),
        ("[file:n\u{e9}me = 'a']", "unexpected character '\u{e9}'", 7),
        ("\u{1F600}\u{1F600}", "unexpected character", 0),
        ("[file:name = 'a'] \u{200b}", "unexpected character", 18),
        ("[file:name = --1]", "'-' must be followed by a number", 13),
        ("[file:name = 1e5]", "found 'e5'", 14),
        ("[file:name = 01]", "found number 1", 14),
    ];

    #[test]
    fn valid_patterns_pass() {
        assert!(VALID.len() >= 30);
        for p in VALID {
            if let Err(e) = check(p) {
                panic!("{p:?} should be valid, got: {e}");
            }
        }
    }

    #[test]
    fn invalid_patterns_fail_with_a_precise_message() {
        assert!(INVALID.len() >= 20);
        for (p, fragment, position) in INVALID {
            match check(p) {
                Ok(()) => panic!("{p:?} should be invalid"),
                Err(e) => {
                    let text = e.to_string();
                    assert!(text.contains(fragment), "{p:?}: {text:?} does not contain {fragment:?}");
                    assert_eq!(e.position, *position, "{p:?}: {text}");
                    assert!(p.is_char_boundary(e.position), "{p:?}: position {} inside a character", e.position);
                    assert!(text.ends_with(&format!("at byte {position}")), "{text}");
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "(".repeat(10_000);
        let e = check(&deep).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{e}");
        assert_eq!(e.position, 64);

        let inner = format!("[{}file:name = 'a'{}]", "(".repeat(100_000), ")".repeat(100_000));
        assert!(check(&inner).unwrap_err().message.contains("nested deeper"));

        // At the limit it is fine.
        let ok = format!("{}[{}file:name = 'a'{}]{}", "(".repeat(32), "(".repeat(32), ")".repeat(32), ")".repeat(32));
        assert_eq!(check(&ok), Ok(()));
        let over = format!("{}[{}file:name = 'a'{}]{}", "(".repeat(32), "(".repeat(33), ")".repeat(33), ")".repeat(32));
        assert!(check(&over).is_err());
    }

    #[test]
    fn long_inputs_are_linear() {
        let one = "[file:name = 'a' OR file:size > 1] ";
        let many = vec![one; 50_000].join("AND ");
        let started = std::time::Instant::now();
        assert_eq!(check(&many), Ok(()));
        let long_string = format!("[file:name = '{}']", "x\u{e9}".repeat(500_000));
        assert_eq!(check(&long_string), Ok(()));
        let long_name = format!("[file:{} = 'a']", "a".repeat(1_000_000));
        assert!(check(&long_name).unwrap_err().message.contains("not a valid property name"));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn never_panics_and_positions_are_char_boundaries() {
        // Every prefix of assorted patterns, and a deterministic soup of fragments.
        let mut inputs: Vec<String> = Vec::new();
        for p in VALID.iter().chain(INVALID.iter().map(|(p, _, _)| p)) {
            for (i, _) in p.char_indices() {
                inputs.push(p.get(..i).unwrap().to_string());
            }
        }
        let bits = [
            "[",
            "]",
            "(",
            ")",
            "'",
            "\\",
            "t'",
            "h'",
            "b'",
            "/*",
            "*/",
            "//",
            "\n",
            "-",
            "+",
            ".",
            "5",
            "0",
            ":",
            ",",
            "*",
            "file",
            "x-y",
            "AND",
            "OR",
            "NOT",
            "IN",
            "=",
            "<",
            ">=",
            "!",
            "\u{e9}",
            "\u{1F600}",
            "\u{a0}",
            " ",
            "WITHIN",
            "SECONDS",
            "t'2016-01-01T00:00:00Z'",
            "'a'",
            "hashes",
            ".MD5",
            "EXISTS",
            "true",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(bits[(seed % bits.len() as u64) as usize]);
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            inputs.push(s);
        }
        for s in &inputs {
            if let Err(e) = check(s) {
                assert!(e.position <= s.len() && s.is_char_boundary(e.position), "{s:?}: {e}");
                assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn names_follow_the_validator() {
        assert!(valid_type_name("x-acme-widget"));
        assert!(valid_type_name("ipv4-addr"));
        assert!(valid_type_name("abc-"));
        assert!(!valid_type_name("ab"));
        assert!(!valid_type_name("a--b"));
        assert!(!valid_type_name("x_y"));
        assert!(!valid_type_name(&"a".repeat(251)));
        assert!(valid_property_name("id"));
        assert!(valid_property_name("x_acme_colour"));
        assert!(!valid_property_name("ab"));
        assert!(!valid_property_name("MD5"));
    }
}
