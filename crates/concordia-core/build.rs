//! Embeds `schemas/**/*.json` (our STIX 2.1 JSON Schemas, at the top of the repository) into
//! the crate, and makes cargo re-run when a schema changes.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=../../schemas");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../..");
    let mut files = Vec::new();
    walk(&root.join("schemas"), &mut files);
    files.sort();
    let mut code =
        String::from("/// (path relative to schemas/, file contents)\npub static SCHEMA_FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(root.join("schemas")).unwrap_or(f).to_string_lossy().replace('\\', "/");
        // The path is resolved when the crate compiles, not baked in here: a checkout at another
        // path that shares the target directory reuses this build script's output.
        code.push_str(&format!(
            "    ({rel:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/../../schemas/{rel}\"))),\n"
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("schemas.rs");
    if let Err(e) = std::fs::write(&out, code) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
}
