//! The same hostile requests, byte for byte, to a server on SQLite and a server on PostgreSQL:
//! every answer must be the same (status and error code; for Add Objects, which objects failed;
//! for reads, which objects came back, and their bytes). A character, string or number that one
//! backend cannot store or compare (a NUL, say, which PostgreSQL text cannot hold) must get the
//! same clean 4xx, or the same per-object failure, on both.
//!
//! Runs when `CONCORDIA_TEST_PG` names a PostgreSQL server (as `.ci/run` does).

use std::fmt::Write as _;

use serde_json::Value;

use crate::helpers::*;

/// One request, as raw bytes on the wire.
struct Probe {
    label: String,
    request: Vec<u8>,
}

/// Percent-encodes every byte outside the unreserved set, so any byte string fits a URL.
fn pct(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (*b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Strings that break one store or another: NUL, control characters, bytes that are not UTF-8,
/// surrogates encoded as UTF-8, very long and non-ASCII ids, SQL and LIKE metacharacters,
/// numbers and timestamps at and beyond their ranges.
fn hostile() -> Vec<Vec<u8>> {
    let uuid = "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\0".to_vec(),
        format!("indicator--{uuid}\0").into_bytes(),
        b"indicator--\0".to_vec(),
        b"\x01\x02\x1f".to_vec(),
        b"\x7f".to_vec(),
        b"a\r\nX-Injected: 1".to_vec(),
        b"\xff".to_vec(),
        b"\xc3\x28".to_vec(),
        b"\xed\xa0\x80".to_vec(),
        "é".as_bytes().to_vec(),
        format!("indicator--{}", "é".repeat(18)).into_bytes(),
        "\u{1d54f}\u{202e}\u{feff}".as_bytes().to_vec(),
        format!("indicator--{}", uuid.to_uppercase()).into_bytes(),
        format!("INDICATOR--{uuid}").into_bytes(),
        format!("{}--{uuid}", "x".repeat(251)).into_bytes(),
        format!("indicator--{}", "a".repeat(4000)).into_bytes(),
        "a".repeat(6000).into_bytes(),
        b"' OR 1=1 --".to_vec(),
        b"%_\\".to_vec(),
        b"99999999999999999999999".to_vec(),
        b"-1".to_vec(),
        b"0".to_vec(),
        b"1e400".to_vec(),
        b"NaN".to_vec(),
        b"9999-12-31T23:59:59.999999Z".to_vec(),
        b"0000-01-01T00:00:00Z".to_vec(),
        b"1970-01-01T00:00:00+14:00".to_vec(),
        b"2016-02-30T00:00:00Z".to_vec(),
        b"first,last,all".to_vec(),
        b"2.1,\x00".to_vec(),
    ];
    v.push(format!("indicator--{uuid},{}", "indicator--\0").into_bytes());
    v
}

fn get(target: &str, auth: &str, accept: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn request(method: &str, target: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(r, "{k}: {v}\r\n");
    }
    let _ = write!(r, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// JSON texts for property values: hostile strings as JSON strings (NUL and surrogate escapes
/// included), raw control characters (invalid JSON), numbers beyond a double.
fn hostile_json_values() -> Vec<String> {
    let mut out: Vec<String> = hostile()
        .into_iter()
        .filter_map(|b| String::from_utf8(b).ok())
        .map(|s| serde_json::to_string(&s).unwrap_or_default())
        .collect();
    out.extend(
        [
            r#""\u0000""#,
            r#""a\u0000b""#,
            r#""\ud800""#,
            r#""\udfff x""#,
            r#""\ud83d\ude00""#,
            "\"raw\u{1}control\"",
            "\"tab\tinside\"",
            "1e400",
            "9007199254740993",
            "-0",
            "1E+2",
            "123456789012345678901234567890",
            "[]",
            "{}",
            "null",
        ]
        .map(str::to_owned),
    );
    out
}

fn probes(alice: &str) -> Vec<Probe> {
    let mut out = Vec::new();
    let mut add = |label: String, request: Vec<u8>| out.push(Probe { label, request });
    let objects = objects_path(SHARED);
    for (n, h) in hostile().iter().enumerate() {
        let e = pct(h);
        for path in [
            format!("{objects}{e}/"),
            format!("{objects}{e}/versions/"),
            format!("/r/collections/{e}/"),
            format!("/r/collections/{e}/objects/"),
            format!("/{e}/"),
            format!("/r/status/{e}/"),
        ] {
            add(format!("GET path #{n} {path:.80}"), get(&path, alice, TAXII));
        }
        add(
            format!("DELETE path #{n}"),
            request(
                "DELETE",
                &format!("{objects}{e}/"),
                &[("Authorization", alice.to_owned()), ("Accept", TAXII.into())],
                b"",
            ),
        );
        for param in [
            "added_after",
            "limit",
            "next",
            "match[id]",
            "match[type]",
            "match[version]",
            "match[spec_version]",
            "match[labels]",
            "match[confidence-gte]",
            "match[confidence-lte]",
            "match[created_by_ref]",
            "match[tlp]",
            "match[foo]",
            "match[id]=indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f&match[id]",
        ] {
            for endpoint in ["objects", "manifest"] {
                let target = format!(
                    "/r/collections/{SHARED}/{endpoint}/?{}={e}",
                    param.replace('[', "%5B").replace(']', "%5D")
                );
                add(format!("GET {endpoint} ?{param} #{n}"), get(&target, alice, TAXII));
            }
        }
        // Credentials made of it.
        let user = basic_header(&String::from_utf8_lossy(h), "pw-alice-secret");
        add(format!("Basic user #{n}"), get("/taxii2/", &user, TAXII));
        let raw_basic = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [h.as_slice(), b":x"].concat())
        );
        add(format!("Basic raw user #{n}"), get("/taxii2/", &raw_basic, TAXII));
        add(format!("Bearer #{n}"), get("/taxii2/", &format!("Bearer cnc_{}_{}", pct(h), pct(h)), TAXII));
        add(format!("Accept #{n}"), get("/taxii2/", alice, &String::from_utf8_lossy(h).replace(['\r', '\n'], "")));
    }
    // Objects carrying hostile values in each kind of property; each object has its own id, the
    // same on both servers.
    for (n, value) in hostile_json_values().iter().enumerate() {
        let mut texts = Vec::new();
        for (k, prop) in
            ["name", "description", "labels", "x_acme_field", "created", "id", "type", "external_references"]
                .iter()
                .enumerate()
        {
            let id = format!("indicator--00000000-0000-4000-8000-{:06}{:06}", n, k);
            let base = indicator(&id, "2020-01-01T00:00:00.000Z");
            let mut map = base.as_object().cloned().unwrap_or_default();
            map.remove(*prop);
            let rest = serde_json::to_string(&Value::Object(map)).unwrap_or_default();
            let value = match *prop {
                "labels" => format!("[{value}]"),
                "external_references" => format!(r#"[{{"source_name":{value}}}]"#),
                _ => value.clone(),
            };
            texts.push(format!(r#"{{"{prop}":{value},{}"#, &rest[1..]));
        }
        // And as a member name.
        let id = format!("indicator--00000000-0000-4000-8000-{:06}999999", n);
        let rest = indicator(&id, "2020-01-01T00:00:00.000Z").to_string();
        if value.starts_with('"') {
            texts.push(format!("{{{value}:1,{}", &rest[1..]));
        }
        let body = format!(r#"{{"objects":[{}]}}"#, texts.join(","));
        let headers = [("Authorization", alice.to_owned()), ("Accept", TAXII.into()), ("Content-Type", TAXII.into())];
        add(format!("POST object values #{n} {value:.40}"), request("POST", &objects, &headers, body.as_bytes()));
    }
    // The conformance suite's bad-input cases.
    let headers = |ct: &str| {
        vec![("Authorization", alice.to_owned()), ("Accept", TAXII.to_owned()), ("Content-Type", ct.to_owned())]
    };
    for (label, ct, body) in [
        ("not JSON", TAXII, b"{not json".to_vec()),
        ("array", TAXII, b"[1,2]".to_vec()),
        ("no objects", TAXII, b"{}".to_vec()),
        ("empty objects", TAXII, br#"{"objects":[]}"#.to_vec()),
        ("objects not a list", TAXII, br#"{"objects":{}}"#.to_vec()),
        ("object not an object", TAXII, br#"{"objects":[1,"x",null]}"#.to_vec()),
        ("duplicate objects member", TAXII, br#"{"objects":[],"objects":[]}"#.to_vec()),
        ("invalid UTF-8", TAXII, b"{\"objects\":[\"\xff\"]}".to_vec()),
        ("deep nesting", TAXII, format!(r#"{{"objects":[{}{}]}}"#, "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        ("wrong content type", "application/json", br#"{"objects":[]}"#.to_vec()),
        ("TAXII 2.0 content type", "application/vnd.oasis.taxii+json; version=2.0", br#"{"objects":[]}"#.to_vec()),
        ("trailing garbage", TAXII, br#"{"objects":[]} x"#.to_vec()),
        ("BOM", TAXII, b"\xef\xbb\xbf{\"objects\":[]}".to_vec()),
    ] {
        add(format!("POST {label}"), request("POST", &objects, &headers(ct), &body));
    }
    for (label, target, accept) in [
        ("Accept 2.0", "/taxii2/", "application/taxii+json;version=2.0"),
        ("Accept json", "/r/collections/", "application/json"),
        ("unknown route", "/r/collections/x/y/z/w/", TAXII),
        ("forged next", &*format!("/r/collections/{SHARED}/objects/?next=eyJ9.AAAA"), TAXII),
        ("limit huge", &*format!("/r/collections/{SHARED}/objects/?limit=18446744073709551616"), TAXII),
    ] {
        add(format!("GET {label}"), get(target, alice, accept));
    }
    add("PUT".into(), request("PUT", &objects, &headers(TAXII), b"{}"));
    add(
        "no credentials".into(),
        format!("GET {objects} HTTP/1.1\r\nHost: x\r\nAccept: {TAXII}\r\nConnection: close\r\n\r\n").into_bytes(),
    );
    out
}

/// What must be the same on both backends.
fn outcome(r: Option<RawResp>) -> String {
    let Some(r) = r else { return "no answer".into() };
    let mut s = format!("{} {}", r.status, r.error_code());
    if let Ok(body) = serde_json::from_slice::<Value>(&r.body) {
        if r.status == 202 {
            let mut failed: Vec<&str> =
                body["failures"].as_array().into_iter().flatten().filter_map(|f| f["id"].as_str()).collect();
            failed.sort_unstable();
            let _ = write!(s, " ok={} failed={failed:?}", body["success_count"]);
        } else if r.status == 200 {
            let ids: Vec<&str> =
                body["objects"].as_array().into_iter().flatten().filter_map(|o| o["id"].as_str()).collect();
            let _ = write!(s, " objects={ids:?} more={}", body["more"]);
        }
    }
    s
}

#[test]
fn sqlite_and_postgresql_answer_hostile_requests_alike() {
    let Some(pg) = test_pg() else {
        eprintln!("differential: CONCORDIA_TEST_PG is not set; the SQLite/PostgreSQL comparison needs both");
        return;
    };
    let servers = [TestServer::start_on(None, BASE_POLICY, &[]), TestServer::start_on(Some(&pg), BASE_POLICY, &[])];
    for s in &servers {
        s.add_password("alice", "pw-alice-secret");
    }
    let alice = basic_header("alice", "pw-alice-secret");
    let probes = probes(&alice);
    let mut differences = Vec::new();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for p in &probes {
        let a = outcome(raw_http(&servers[0].base, &p.request));
        let b = outcome(raw_http(&servers[1].base, &p.request));
        *statuses.entry(a.split(' ').next().unwrap_or_default().to_owned()).or_default() += 1;
        if a.starts_with('5') || b.starts_with('5') {
            differences.push(format!("{}: a 5xx: sqlite {a} / postgres {b}", p.label));
        } else if a != b {
            differences.push(format!("{}: sqlite {a} / postgres {b}", p.label));
        }
    }
    // What was stored is the same, byte for byte.
    let read = |s: &TestServer| -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            more: bool,
            #[serde(default)]
            objects: Vec<Box<serde_json::value::RawValue>>,
        }
        let target = format!("{}?match[version]=all&match[spec_version]=2.0,2.1&limit=1000", objects_path(SHARED));
        let r = raw_http(&s.base, &get(&target, &alice, TAXII)).expect("an answer");
        assert_eq!(r.status, 200);
        let page: Page = serde_json::from_slice(&r.body).expect("an envelope");
        assert!(!page.more, "one page holds everything stored");
        let mut all: Vec<String> = page.objects.into_iter().map(|o| o.get().to_owned()).collect();
        all.sort();
        all
    };
    let (stored_a, stored_b) = (read(&servers[0]), read(&servers[1]));
    if stored_a != stored_b {
        differences.push(format!(
            "stored objects differ: {} on SQLite, {} on PostgreSQL",
            stored_a.len(),
            stored_b.len()
        ));
    }
    println!(
        "differential: {} requests to each backend, {} objects stored on each, statuses {statuses:?}, {} difference(s)",
        probes.len(),
        stored_a.len(),
        differences.len()
    );
    assert!(differences.is_empty(), "the backends answered differently:\n{}", differences.join("\n"));
}
