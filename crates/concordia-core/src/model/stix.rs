//! What the server needs to know about a STIX object to store and index it.

use super::time::stix_version_key;

/// The indexed properties of one STIX object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub id: String,
    pub stix_type: String,
    /// The version as written in the object (`modified`, else `created`); `None` for objects
    /// without either (most SCOs), which the server versions by `date_added` (T-217).
    pub version: Option<String>,
    /// Normalised comparison key of `version`.
    pub version_key: Option<String>,
    pub spec_version: String,
    /// What filters look at (confidence, TLP, labels, validity, ...).
    pub facets: super::feed::Facets,
}

struct Head<'a> {
    id: Option<serde_json::Value>,
    stix_type: Option<&'a serde_json::Value>,
    spec_version: Option<serde_json::Value>,
    modified: Option<serde_json::Value>,
    created: Option<serde_json::Value>,
}

/// A problem with one object, reported in the status `failures` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProblem {
    /// The object's id when it has a usable one, else a position marker.
    pub id: String,
    pub version: String,
    pub message: String,
}

/// Whether `ty` has the syntax of a STIX type name (STIX 2.1 §3.1 / §11.1): 3 to 250 characters
/// of `a-z`, `0-9` and `-`, starting and ending with a letter or digit, without `--`.
pub fn valid_type(ty: &str) -> bool {
    (3..=250).contains(&ty.len())
        && ty.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !ty.starts_with('-')
        && !ty.ends_with('-')
        && !ty.contains("--")
}

/// Checks that `id` is `type--UUID` with a lower-case type name; returns the type.
pub fn valid_identifier(id: &str) -> Option<&str> {
    let (ty, uuid) = id.split_once("--")?;
    // RFC 4122: hex digits are case-insensitive on input.
    let uuid_ok = uuid.len() == 36 && uuid::Uuid::parse_str(uuid).is_ok();
    (valid_type(ty) && uuid_ok).then_some(ty)
}

/// A value as shown in a message: control characters escaped, at most 60 characters.
pub fn shown(value: &str) -> String {
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", escaped.get(..cut).unwrap_or_default()),
        None => escaped,
    }
}

/// Deepest nesting of arrays and objects allowed inside one STIX object. Real objects stay far
/// below it; deeper ones would break consumers whose JSON parsers recurse.
pub const MAX_DEPTH: usize = 64;

/// Nesting depth of a JSON text (arrays and objects), ignoring brackets inside strings.
pub fn nesting_depth(raw: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for b in raw.bytes() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses one raw object (position `index` in the envelope) and reads its indexed properties.
pub fn read_object(raw: &str, index: usize) -> Result<(ObjectHead, serde_json::Value), ObjectProblem> {
    let problem = |id: String, version: String, message: String| ObjectProblem { id, version, message };
    let marker = format!("objects[{index}]");
    if !raw.trim_start().starts_with('{') {
        return Err(problem(marker, String::new(), "object is not a JSON object".into()));
    }
    if nesting_depth(raw) > MAX_DEPTH {
        return Err(problem(
            marker,
            String::new(),
            format!("object nests arrays/objects deeper than {MAX_DEPTH} levels"),
        ));
    }
    let value: serde_json::Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => return Err(problem(marker, String::new(), format!("object could not be read: {e}"))),
    };
    head_of(&value, index).map(|h| (h, value))
}

/// Reads the indexed properties of one raw object (position `index` in the envelope).
pub fn read_head(raw: &str, index: usize) -> Result<ObjectHead, ObjectProblem> {
    read_object(raw, index).map(|(head, _)| head)
}

/// The indexed properties of a parsed object.
pub fn head_of(value: &serde_json::Value, index: usize) -> Result<ObjectHead, ObjectProblem> {
    let problem = |id: String, version: String, message: String| ObjectProblem { id, version, message };
    let marker = format!("objects[{index}]");
    let Some(map) = value.as_object() else {
        return Err(problem(marker, String::new(), "object is not a JSON object".into()));
    };
    let head = Head {
        id: map.get("id").cloned(),
        stix_type: map.get("type"),
        spec_version: map.get("spec_version").cloned(),
        modified: map.get("modified").cloned(),
        created: map.get("created").cloned(),
    };
    let id = match head.id {
        // Indexed in lower case: RFC 4122 hex digits are case-insensitive, so `…--ABC…` and
        // `…--abc…` are one object (the body keeps the producer's spelling).
        Some(serde_json::Value::String(s)) => s.to_ascii_lowercase(),
        Some(_) => {
            return Err(problem(marker, String::new(), "property 'id' must be a string of the form type--UUID".into()))
        }
        None => return Err(problem(marker, String::new(), "object has no 'id' property".into())),
    };
    let version_text = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let shown_version = {
        let m = version_text(&head.modified);
        if m.is_empty() {
            version_text(&head.created)
        } else {
            m
        }
    };
    let fail = |msg: String| Err(problem(id.clone(), shown_version.clone(), msg));
    let Some(id_type) = valid_identifier(&id) else {
        return fail(format!("property 'id' ('{id}') must be of the form type--UUID with a lower-case type"));
    };
    let stix_type: String = match head.stix_type {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(_) => return fail("property 'type' must be a string".into()),
        None => return fail("object has no 'type' property".into()),
    };
    if stix_type != id_type {
        return fail(format!("property 'type' ('{stix_type}') does not match the type in 'id' ('{id_type}')"));
    }
    let mut version = None;
    let mut version_key = None;
    for (name, value) in [("modified", &head.modified), ("created", &head.created)] {
        match value {
            None => {}
            Some(serde_json::Value::String(s)) => match stix_version_key(s) {
                Some(k) => {
                    if version.is_none() {
                        version = Some(s.clone());
                        version_key = Some(k);
                    }
                }
                None => {
                    return fail(format!(
                        "property '{name}' ('{s}') is not a STIX timestamp such as 2016-01-01T01:01:01.000Z"
                    ))
                }
            },
            Some(_) => return fail(format!("property '{name}' must be a string timestamp")),
        }
    }
    let spec_version = match head.spec_version {
        Some(serde_json::Value::String(s)) if s == "2.1" || s == "2.0" => s,
        Some(serde_json::Value::String(s)) => {
            return fail(format!("spec_version '{s}' is not supported; this server stores STIX 2.1 (and 2.0)"))
        }
        Some(_) => return fail("property 'spec_version' must be a string".into()),
        // T-219/A-4: without spec_version, an object with created/modified is STIX 2.0, else a 2.1 SCO.
        None if version.is_some() => "2.0".into(),
        None => "2.1".into(),
    };
    Ok(ObjectHead { id, stix_type, version, version_key, spec_version, facets: super::feed::Facets::of(map) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IND: &str = r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.123Z","pattern":"[ipv4-addr:value = '1.2.3.4']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}"#;

    #[test]
    fn reads_an_indicator() {
        let h = read_head(IND, 0).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(h.stix_type, "indicator");
        assert_eq!(h.version.as_deref(), Some("2016-04-06T20:03:48.123Z"));
        assert_eq!(h.spec_version, "2.1");
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(r#"{"a":"[[[{{{\"[","b":[{"c":[]}]}"#), 4);
    }

    #[test]
    fn sco_without_timestamps_is_21_and_unversioned() {
        let h = read_head(
            r#"{"type":"ipv4-addr","id":"ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd","value":"1.2.3.4"}"#,
            0,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(h.spec_version, "2.1");
        assert_eq!(h.version, None);
    }

    #[test]
    fn problems_name_the_property() {
        let cases = [
            (r#"[1,2]"#, "not a JSON object"),
            (r#"{"type":"indicator"}"#, "no 'id'"),
            (r#"{"id":"indicator--x","type":"indicator"}"#, "type--UUID"),
            (r#"{"id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","type":"malware"}"#, "does not match"),
            (
                r#"{"id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","type":"indicator","modified":"yesterday"}"#,
                "'modified'",
            ),
            (
                r#"{"id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","type":"indicator","spec_version":"3.0"}"#,
                "spec_version",
            ),
        ];
        for (raw, want) in cases {
            let p = read_head(raw, 3).err().unwrap_or_else(|| panic!("accepted {raw}"));
            assert!(p.message.contains(want), "{raw}: {}", p.message);
        }
    }
}
