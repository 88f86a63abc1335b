//! I-JSON (RFC 7493, required by TAXII 2.1 §1.6.7) on every way in: POST, `import`, `validate`.
//! A duplicate member name lets a consumer read another id or other markings than the ones
//! validated (parsers disagree on which copy wins), so it is refused: in the envelope with a 400
//! naming the member, inside an object as that object's own failure, with a JSON pointer.

use serde_json::Value;

use crate::helpers::*;

/// An indicator's JSON text with `extra` spliced in after its opening brace.
fn indicator_text(id: &str, extra: &str) -> String {
    let text = indicator(id, "2020-01-01T00:00:00.000Z").to_string();
    format!("{{{extra}{}", &text[1..])
}

fn post_text(s: &TestServer, body: &str) -> Resp {
    s.request("POST", &objects_path(SHARED), &as_("alice"), &[("Content-Type", TAXII)], Some(body.as_bytes()))
}

#[test]
fn a_duplicate_member_of_the_envelope_is_a_400_naming_it() {
    let s = base_server();
    let ok = indicator_text(&new_id("indicator"), "");
    for (body, member) in [
        (format!(r#"{{"objects":[{ok}],"objects":[]}}"#), "objects"),
        (format!(r#"{{"more":false,"objects":[{ok}],"more":true}}"#), "more"),
        (format!(r#"{{"objects":[{ok}],"\u006fbjects":[]}}"#), "objects"),
    ] {
        let r = post_text(&s, &body);
        r.expect(400);
        let e = r.json();
        assert_eq!(e["error_code"], "duplicate_member", "{e}");
        assert!(e["description"].as_str().unwrap().contains(&format!("'{member}'")), "names the member: {e}");
    }
    // Nothing of a refused envelope was stored.
    let all = s.read_all(&objects_path(SHARED), &as_("alice"), 100);
    assert!(all.is_empty(), "{all:?}");
}

/// Inside an object, the object fails on its own; the rest of the envelope is stored.
#[test]
fn an_object_with_a_duplicate_member_fails_on_its_own_with_a_pointer() {
    let s = base_server();
    let good = new_id("indicator");
    let cases = [
        // Two ids: a consumer could read either.
        (new_id("indicator"), r#""id":"indicator--00000000-0000-4000-8000-000000000000","#, "/id"),
        // Markings given twice, the second one empty: a way around a TLP ceiling.
        (
            new_id("indicator"),
            r#""object_marking_refs":["marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"],"object_marking_refs":[],"#,
            "/object_marking_refs",
        ),
        // The same name, once escaped.
        (new_id("indicator"), r#""\u006eame":"other","#, "/name"),
        // Deep inside.
        (
            new_id("indicator"),
            r#""external_references":[{"source_name":"a","source_name":"b"}],"#,
            "/external_references/0/source_name",
        ),
    ];
    let mut texts = vec![indicator_text(&good, "")];
    texts.extend(cases.iter().map(|(id, extra, _)| indicator_text(id, extra)));
    let r = post_text(&s, &format!(r#"{{"objects":[{}]}}"#, texts.join(",")));
    r.expect(202);
    let st = r.json();
    assert_eq!(st["success_count"], 1, "{st}");
    assert_eq!(st["failure_count"], cases.len(), "{st}");
    for (_, _, pointer) in &cases {
        let found = st["failures"].as_array().unwrap().iter().any(|f| {
            let m = f["message"].as_str().unwrap_or_default();
            m.contains(&format!("{pointer}:")) && m.contains("[i-json]") && m.contains("more than once")
        });
        assert!(found, "a failure names {pointer}: {st}");
    }
    let stored = s.read_all(&objects_path(SHARED), &as_("alice"), 100);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], good.as_str());
}

#[test]
fn numbers_a_double_cannot_carry_and_unpaired_surrogates_fail_the_object() {
    let s = base_server();
    let cases = [
        (r#""x_acme_count":9007199254740993,"#, "/x_acme_count", "2^53"),
        (r#""x_acme_big":[1e400],"#, "/x_acme_big/0", "IEEE 754"),
        (r#""x_acme_tiny":1e-400,"#, "/x_acme_tiny", "IEEE 754"),
        (r#""description":"a \ud800 b","#, "/description", "unpaired surrogate"),
        (r#""x_acme_low":"\udc00","#, "/x_acme_low", "unpaired surrogate"),
    ];
    let ids: Vec<String> = cases.iter().map(|_| new_id("indicator")).collect();
    let texts: Vec<String> = cases.iter().zip(&ids).map(|((extra, _, _), id)| indicator_text(id, extra)).collect();
    let r = post_text(&s, &format!(r#"{{"objects":[{}]}}"#, texts.join(",")));
    r.expect(202);
    let st = r.json();
    assert_eq!(st["failure_count"], cases.len(), "{st}");
    for ((_, pointer, words), id) in cases.iter().zip(&ids) {
        let f =
            st["failures"].as_array().unwrap().iter().find(|f| f["id"] == id.as_str()).expect("a failure per object");
        let m = f["message"].as_str().unwrap();
        assert!(m.contains(&format!("{pointer}:")) && m.contains(words), "{m}");
    }
    // Within range, and a paired surrogate (an emoji), are fine.
    let fine = indicator_text(&new_id("indicator"), r#""x_acme_count":9007199254740991,"description":"\ud83d\ude00","#);
    let r = post_text(&s, &format!(r#"{{"objects":[{fine}]}}"#));
    r.expect(202);
    assert_eq!(r.json()["success_count"], 1, "{}", r.text());
}

/// `validate` and `import` apply the same checks as POST.
#[test]
fn validate_and_import_refuse_what_post_refuses() {
    let s = base_server();
    let bad_id = new_id("indicator");
    let good_id = new_id("indicator");
    let file = s.dir.path().join("bundle.json");
    let body = format!(
        r#"{{"type":"bundle","id":"bundle--{}","objects":[{},{}]}}"#,
        uuid::Uuid::new_v4(),
        indicator_text(&bad_id, r#""name":"x","#),
        indicator_text(&good_id, "")
    );
    std::fs::write(&file, &body).unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, _) = s.cli(&["validate", "--json", path], None);
    assert!(!ok, "validate fails on the duplicate: {out}");
    let records: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(records[0]["valid"], false, "{out}");
    assert_eq!(records[0]["problems"][0]["property"], "/name", "{out}");
    assert_eq!(records[0]["problems"][0]["rule"], "i-json", "{out}");
    assert_eq!(records[1]["valid"], true, "{out}");

    let (ok, out, err) = s.cli(&["import", "--collection", SHARED, "--partner", "alice", path], None);
    assert!(!ok, "import reports the refused object: {out}{err}");
    assert!(err.contains("/name") && err.contains("more than once"), "{err}");
    let stored = s.read_all(&objects_path(SHARED), &as_("alice"), 100);
    let ids: Vec<&str> = stored.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![good_id.as_str()]);

    // A file whose top level names 'objects' twice is refused as a whole.
    std::fs::write(&file, format!(r#"{{"objects":[],"objects":[{}]}}"#, indicator_text(&new_id("indicator"), "")))
        .unwrap();
    let (ok, out, err) = s.cli(&["validate", path], None);
    assert!(!ok);
    assert!(format!("{out}{err}").contains("'objects' appears more than once"), "{out}{err}");
}

/// serde_json, which reads every object Concordia validates, reads an object whose first
/// member is named `$serde_json::private::RawValue` as the JSON text in that member's string;
/// every other parser reads an object with one odd member. Such an object could show the
/// validator (and the TLP check) other markings, or another object altogether, than what is
/// stored and served, so the name is refused wherever it appears. Found by the envelope fuzz
/// target, as was nesting deeper than serde_json reads.
#[test]
fn an_object_hidden_behind_a_parser_marker_is_refused() {
    let s = base_server();
    let hidden = new_id("indicator");
    let inner = indicator(&hidden, "2020-01-01T00:00:00.000Z").to_string();
    let whole = serde_json::json!({ "$serde_json::private::RawValue": inner }).to_string();
    let marked = new_id("indicator");
    let deep = new_id("indicator");
    let nested = format!(r#""x_acme_deep":{}1{},"#, "[".repeat(130), "]".repeat(130));
    let texts = [
        whole,
        indicator_text(
            &marked,
            r#""object_marking_refs":{"$serde_json::private::RawValue":"[\"marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487\"]"},"#,
        ),
        indicator_text(&deep, &nested),
    ];
    let r = post_text(&s, &format!(r#"{{"objects":[{}]}}"#, texts.join(",")));
    r.expect(202);
    let st = r.json();
    assert_eq!(st["success_count"], 0, "{st}");
    assert_eq!(st["failure_count"], 3, "{st}");
    let messages: Vec<&str> =
        st["failures"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert!(
        messages.iter().filter(|m| m.contains("[i-json]") && m.contains("reserved by a JSON parser")).count() == 2,
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("/x_acme_deep") && m.contains("nested deeper than 100 levels")),
        "{messages:?}"
    );
    let failed_ids: Vec<&str> = st["failures"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(!failed_ids.contains(&hidden.as_str()), "the hidden object is not what was read: {failed_ids:?}");
    assert!(s.read_all(&objects_path(SHARED), &as_("alice"), 100).is_empty());
}
