//! Compressed transfers: pages in gzip or zstd when `Accept-Encoding` asks for them, gzip
//! request bodies on POST with `max_content_length` applied to the decompressed size.

use std::io::{Read as _, Write as _};

use serde_json::{json, Value};

use crate::helpers::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).expect("a gzip body");
    out
}

/// The server's peak resident memory (kB), from /proc.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn post_encoded(s: &TestServer, coding: &str, body: &[u8]) -> Resp {
    s.request(
        "POST",
        &objects_path(SHARED),
        &as_("alice"),
        &[("Content-Type", TAXII), ("Content-Encoding", coding)],
        Some(body),
    )
}

#[test]
fn pages_are_compressed_when_asked_and_inflate_to_the_same_bytes() {
    let s = base_server();
    let objs: Vec<Value> =
        (0..60).map(|i| indicator(&new_id("indicator"), &format!("2021-01-01T00:00:{i:02}.000Z"))).collect();
    s.add("r", SHARED, &as_("alice"), &objs);
    let pages = [
        objects_path(SHARED),
        format!("/r/collections/{SHARED}/manifest/"),
        format!("{}?match[type]=indicator&limit=10", objects_path(SHARED)),
    ];
    for path in &pages {
        let plain = s.get(path, &as_("alice"));
        plain.expect(200);
        assert_eq!(plain.header("content-encoding"), None, "no Accept-Encoding, no compression: {path}");

        let gz = s.request("GET", path, &as_("alice"), &[("Accept-Encoding", "gzip")], None);
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(gz.header("content-type"), Some(TAXII));
        assert!(gz.header("vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")), "Vary");
        assert!(
            gz.body.len() * 2 < plain.body.len(),
            "STIX JSON compresses: {} of {}",
            gz.body.len(),
            plain.body.len()
        );
        assert_eq!(gunzip(&gz.body), plain.body, "gzip inflates to the very bytes of the plain answer: {path}");

        let zs = s.request("GET", path, &as_("alice"), &[("Accept-Encoding", "zstd")], None);
        assert_eq!(zs.header("content-encoding"), Some("zstd"), "{path}");
        assert_eq!(zstd::decode_all(&zs.body[..]).unwrap(), plain.body, "zstd inflates to the same bytes: {path}");

        // A client that refuses every coding gets the plain answer.
        let id = s.request("GET", path, &as_("alice"), &[("Accept-Encoding", "identity")], None);
        assert_eq!(id.header("content-encoding"), None);
        assert_eq!(id.body, plain.body);
    }
    // Error resources too stay TAXII errors when compressed.
    let r = s.request("GET", "/r/collections/nope/objects/", &as_("alice"), &[("Accept-Encoding", "gzip")], None);
    assert_eq!(r.status, 404);
    let e: Value = serde_json::from_slice(&gunzip(&r.body)).unwrap();
    assert_eq!(e["http_status"], "404");
}

#[test]
fn gzip_request_bodies_are_stored_as_if_sent_plain() {
    let s = base_server();
    let ids: Vec<String> = (0..20).map(|_| new_id("indicator")).collect();
    let objs: Vec<Value> = ids.iter().map(|id| indicator(id, "2021-02-02T00:00:00.000Z")).collect();
    let plain = serde_json::to_vec(&json!({ "objects": objs })).unwrap();
    for coding in ["gzip", "x-gzip", "GZIP"] {
        let r = post_encoded(&s, coding, &gzip(&plain));
        r.expect(202);
        let st = r.json();
        // The first POST stores them; the next ones find them stored (same version).
        assert_eq!(st["success_count"], 20, "{coding}: {st}");
        assert_eq!(st["failure_count"], 0, "{coding}: {st}");
    }
    let got = s.read_all(&format!("{}?match[type]=indicator", objects_path(SHARED)), &as_("alice"), 100);
    let mut seen: Vec<String> = got.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);
    // Bytes in = bytes out: the stored object is the object as sent, inside the gzip.
    let one = s.get(&format!("{}{}/", objects_path(SHARED), ids[0]), &as_("alice"));
    one.expect(200);
    assert_eq!(one.json()["objects"][0], objs[0]);
    // identity is the same as no coding.
    let body = serde_json::to_vec(&json!({ "objects": [malware(&new_id("malware"))] })).unwrap();
    post_encoded(&s, "identity", &body).expect(202);
}

#[test]
fn t155_a_gzip_bomb_is_a_413_and_is_never_inflated_into_memory() {
    let s = base_server(); // max_content_length = 100000
                           // 80 MB of JSON whitespace inside an envelope: about 80 KB of gzip, under the limit as sent.
    let mut bomb_plain = b"{\"objects\": [".to_vec();
    bomb_plain.resize(80 * 1024 * 1024, b' ');
    bomb_plain.extend_from_slice(b"]}");
    let bomb = gzip(&bomb_plain);
    drop(bomb_plain);
    assert!(bomb.len() < 100_000, "the compressed bomb fits the limit: {}", bomb.len());
    // Warm the server up on the same path with honest bodies first (pool connections, worker
    // arenas, buffers): the peak below then measures the bombs alone.
    let mut warm = serde_json::to_vec(&json!({ "objects": [malware(&new_id("malware"))] })).unwrap();
    warm.resize(99_000, b' ');
    for _ in 0..8 {
        post_encoded(&s, "gzip", &gzip(&warm)).expect(202);
    }
    let before = peak_rss_kb(s.pid());
    for _ in 0..3 {
        let r = post_encoded(&s, "gzip", &bomb);
        r.expect(413);
        let e = r.json();
        assert_eq!(e["error_code"], "too_large");
        let d = e["description"].as_str().unwrap();
        assert!(d.contains("decompressed") && d.contains("100000"), "{d}");
    }
    // Inflated, one bomb would add 80 MB; stopped at the limit, it adds about 100 KB.
    let grown = peak_rss_kb(s.pid()).saturating_sub(before);
    println!("compression: three gzip bombs grew the server's peak RSS by {grown} kB");
    assert!(grown < 30 * 1024, "inflating stopped at the limit: peak RSS grew by {grown} kB");
    // Exactly at the limit once inflated is accepted; one byte more is not.
    let objs = json!({ "objects": [malware(&new_id("malware"))] });
    let mut fit = serde_json::to_vec(&objs).unwrap();
    fit.resize(100_000, b' ');
    post_encoded(&s, "gzip", &gzip(&fit)).expect(202);
    fit.push(b' ');
    post_encoded(&s, "gzip", &gzip(&fit)).expect(413);
}

#[test]
fn corrupt_or_unsupported_codings_are_clean_errors() {
    let s = base_server();
    let body = serde_json::to_vec(&json!({ "objects": [malware(&new_id("malware"))] })).unwrap();
    // Not gzip at all, and a gzip cut in half.
    let r = post_encoded(&s, "gzip", &body);
    r.expect(400);
    assert!(r.json()["description"].as_str().unwrap().contains("gzip"));
    let mut cut = gzip(&body);
    cut.truncate(cut.len() / 2);
    post_encoded(&s, "gzip", &cut).expect(400);
    // Codings this server does not read, or gzip applied twice: 415 naming what it accepts.
    for coding in ["br", "deflate", "zstd", "gzip, gzip", "compress", "gzip, br"] {
        let r = post_encoded(&s, coding, &gzip(&body));
        r.expect(415);
        assert_eq!(r.json()["error_code"], "unsupported_content_encoding", "{coding}");
        assert_eq!(r.header("accept-encoding"), Some("gzip, identity"), "{coding}");
    }
    // Nothing was stored by any of them.
    let got = s.read_all(&objects_path(SHARED), &as_("alice"), 100);
    assert!(got.is_empty(), "{got:?}");
}
