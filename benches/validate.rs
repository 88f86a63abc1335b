#![allow(clippy::indexing_slicing, clippy::panic)]
//! Validation throughput: a typical ~700-byte indicator, parsed and validated (schema + rules +
//! pattern), on one core. Run with `cargo bench --bench validate`; prints objects/s for each of
//! five rounds and the median.

use std::time::Instant;

fn indicator(i: usize) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{:08x}-1c4b-4e5f-9a6b-7c8d9e0f1a2b","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z","name":"Benchmark indicator {i}","description":"A typical indicator used to measure validation throughput.","indicator_types":["malicious-activity"],"pattern":"[ipv4-addr:value = '198.51.{}.{}'] OR [domain-name:value = 'host{i}.example.net']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z","labels":["benchmark"],"object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],"external_references":[{{"source_name":"example","url":"https://example.net/advisory/{i}"}}]}}"#,
        i,
        i / 256 % 256,
        i % 256
    )
}

fn main() {
    let validator = match concordia::stix::Validator::new() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("schemas: {e}");
            std::process::exit(1);
        }
    };
    let n = 100_000;
    let docs: Vec<String> = (0..n).map(indicator).collect();
    let avg = docs.iter().map(String::len).sum::<usize>() / n;
    let mut rates = Vec::new();
    for round in 1..=5 {
        let start = Instant::now();
        let mut invalid = 0usize;
        for d in &docs {
            let value: serde_json::Value = match serde_json::from_str(d) {
                Ok(v) => v,
                Err(_) => {
                    invalid += 1;
                    continue;
                }
            };
            if !validator.validate(&value).is_empty() {
                invalid += 1;
            }
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        assert_eq!(invalid, 0, "the benchmark objects must be valid");
        println!("round {round}: {rate:.0} objects/s (parse + validate, {avg} bytes/object)");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("median: {:.0} objects/s on one core", rates[2]);
}
