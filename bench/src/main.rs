//! taxii-bench: a load driver and STIX 2.1 data generator for any TAXII 2.1 server.
//!
//! Subcommands: `generate` (deterministic STIX 2.1 data), `ingest` (POST envelopes, wait for the
//! status), `read` (page the whole collection following `next`, check every object exactly once),
//! `filtered` (match[id], match[type] + added_after, manifest: latency percentiles and
//! requests/s over N connections), `rss` (peak resident memory of a process).
//!
//! The HTTP client is a deliberately small blocking HTTP/1.1 keep-alive client over
//! `std::net::TcpStream` (Content-Length, chunked and close-delimited bodies), one connection per
//! thread, so that the client costs little next to the server. See bench/README.md.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

const TAXII_MEDIA: &str = "application/taxii+json;version=2.1";
/// Largest response body the client accepts (a page of 1,000 big objects is a few MB).
const MAX_BODY: u64 = 1 << 30;

// ------------------------------------------------------------------------------------------------
// Command line

/// Load driver and data generator for TAXII 2.1 servers (see bench/README.md).
#[derive(Debug, Parser)]
#[command(name = "taxii-bench", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write deterministic, valid STIX 2.1 objects (JSON lines or envelopes).
    Generate(GenerateArgs),
    /// POST the objects of a file in envelopes and wait for each status to complete.
    Ingest(IngestArgs),
    /// Page through the whole collection following `next`; check every object came back once.
    Read(ReadArgs),
    /// Filtered reads over N keep-alive connections: latency percentiles and requests/s.
    Filtered(FilteredArgs),
    /// Peak resident memory (VmHWM) of a process, optionally with its descendants.
    Rss(RssArgs),
}

#[derive(Debug, Args)]
struct Output {
    /// Print one JSON summary line on stdout (the human text then goes to stderr).
    #[arg(long)]
    json: bool,
    /// KEY=VALUE copied into the JSON summary under "tags" (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

#[derive(Debug, Args)]
struct Target {
    /// Server base URL (http only), e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API root path below the URL, e.g. `alliance` or `taxii2/<uuid>`.
    #[arg(long)]
    api_root: String,
    /// Collection id.
    #[arg(long)]
    collection: String,
    /// HTTP Basic user name.
    #[arg(long, env = "TAXII_BENCH_USER")]
    user: Option<String>,
    /// HTTP Basic password (better given in the environment).
    #[arg(long, env = "TAXII_BENCH_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Per-request timeout in seconds (connect, send, and each read).
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One STIX object per line.
    Jsonl,
    /// One TAXII envelope ({"objects": [...]}) of --per-envelope objects per line.
    Envelopes,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Number of objects.
    #[arg(long)]
    count: usize,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generator: the same seed and count give the same bytes.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Objects per envelope with --format envelopes.
    #[arg(long, default_value_t = 1000)]
    per_envelope: usize,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct IngestArgs {
    #[command(flatten)]
    target: Target,
    /// Data file from `generate` (JSON lines of objects or of envelopes).
    #[arg(long)]
    file: PathBuf,
    /// Concurrent clients (each with its own connection); envelopes are handed out in file order.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Objects per POST.
    #[arg(long, default_value_t = 1000)]
    per_post: usize,
    /// Post at most this many objects of the file (default: all).
    #[arg(long)]
    max_objects: Option<usize>,
    /// Stop starting new POSTs after this many seconds (the run is then reported as capped).
    #[arg(long)]
    max_seconds: Option<f64>,
    /// How long to poll a `pending` status before giving up, seconds.
    #[arg(long, default_value_t = 300.0)]
    status_timeout: f64,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct ReadArgs {
    #[command(flatten)]
    target: Target,
    /// Page size asked for (servers may clamp it).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Number of distinct objects the collection must hold.
    #[arg(long)]
    expect: Option<usize>,
    /// Data file: the collection must hold exactly its first --known objects (default all).
    #[arg(long)]
    file: Option<PathBuf>,
    /// With --file: how many objects of the file were stored (e.g. after a capped ingest).
    #[arg(long)]
    known: Option<usize>,
    /// Give up after this many seconds (the run is then reported as capped).
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Ask for gzip pages (`Accept-Encoding: gzip`), inflate them as a client would, and report
    /// the bytes on the wire next to the bytes inflated.
    #[arg(long)]
    gzip: bool,
    #[command(flatten)]
    subset: Subset,
    #[command(flatten)]
    output: Output,
}

/// The part of a data file a derived collection holds: its objects of one type with at least
/// some confidence (the filter of the bench's feed).
#[derive(Debug, Args, Clone, Default)]
struct Subset {
    /// Only the objects of this type (a derived collection's `types`).
    #[arg(long)]
    only_type: Option<String>,
    /// Only the objects whose `confidence` is at least this (a derived collection's
    /// `confidence_min`).
    #[arg(long)]
    min_confidence: Option<i64>,
}

impl Subset {
    fn apply(&self, objects: Vec<Box<RawValue>>) -> Result<Vec<Box<RawValue>>> {
        if self.only_type.is_none() && self.min_confidence.is_none() {
            return Ok(objects);
        }
        #[derive(Deserialize)]
        struct Facet {
            #[serde(rename = "type")]
            ty: String,
            #[serde(default)]
            confidence: Option<i64>,
        }
        let mut out = Vec::with_capacity(objects.len() / 2);
        for raw in objects {
            let f: Facet = serde_json::from_str(raw.get()).context("object without a type")?;
            let type_ok = self.only_type.as_deref().is_none_or(|t| t == f.ty);
            let conf_ok = self.min_confidence.is_none_or(|m| f.confidence.is_some_and(|c| c >= m));
            if type_ok && conf_ok {
                out.push(raw);
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Args)]
struct FilteredArgs {
    #[command(flatten)]
    target: Target,
    /// Concurrent keep-alive connections (one thread each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Comma-separated workloads run one after another (id, type, manifest), or `mixed`
    /// (every request picks one of the three at random; reported per kind).
    #[arg(long, default_value = "id,type,manifest")]
    workload: String,
    /// Data file the collection was loaded from (the known ids, in ingest order).
    #[arg(long)]
    file: PathBuf,
    /// How many objects of the file were stored (default all).
    #[arg(long)]
    known: Option<usize>,
    /// `added_after` for the type and manifest workloads (default: the date_added of the object
    /// in the middle of the known ones, asked from the server).
    #[arg(long)]
    added_after: Option<String>,
    /// Draw each request's `added_after` at random between the `date_added` of the middle object
    /// and that of the object three quarters in, to the microsecond (no two requests ask for the
    /// same page), as clients paging through a collection do; without it every request asks for
    /// the page after one position (as consumers polling a feed from the same point do).
    #[arg(long)]
    spread: bool,
    /// Page size of the type and manifest workloads.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// At most this many requests per workload (a bound besides --duration).
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[command(flatten)]
    subset: Subset,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct RssArgs {
    /// Process id.
    #[arg(long)]
    pid: u32,
    /// Add the descendants' figures (servers that fork workers).
    #[arg(long)]
    children: bool,
    /// Also sample VmRSS every 100 ms for this many seconds and report the maximum.
    #[arg(long)]
    sample_seconds: Option<f64>,
    #[command(flatten)]
    output: Output,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Generate(a) => generate(&a),
        Cmd::Ingest(a) => ingest(&a),
        Cmd::Read(a) => read(&a),
        Cmd::Filtered(a) => filtered(&a),
        Cmd::Rss(a) => rss(&a),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("taxii-bench: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Prints the human text (stdout, or stderr with --json) and the JSON summary line (stdout).
fn emit(output: &Output, cmd: &str, text: &str, mut summary: Map<String, Value>) -> Result<()> {
    if output.json {
        eprintln!("{text}");
        let mut tags = Map::new();
        for t in &output.tags {
            let (k, v) = t.split_once('=').ok_or_else(|| anyhow!("--tag needs KEY=VALUE, got {t}"))?;
            tags.insert(k.to_owned(), Value::String(v.to_owned()));
        }
        summary.insert("cmd".into(), Value::String(cmd.to_owned()));
        summary.insert("tags".into(), Value::Object(tags));
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &Value::Object(summary))?;
        writeln!(out)?;
    } else {
        println!("{text}");
    }
    Ok(())
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

// ------------------------------------------------------------------------------------------------
// Deterministic randomness

/// SplitMix64: small, fast and good enough for test data; the same seed gives the same stream.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs.get(self.below(xs.len() as u64) as usize).copied().unwrap_or("")
    }
    fn uuid4(&mut self) -> uuid::Uuid {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        let mut bytes = [0u8; 16];
        for (dst, src) in bytes.iter_mut().zip(a.iter().chain(b.iter())) {
            *dst = *src;
        }
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
    fn hex(&mut self, chars: usize) -> String {
        let mut s = String::with_capacity(chars + 16);
        while s.len() < chars {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(chars);
        s
    }
}

// ------------------------------------------------------------------------------------------------
// generate

const TLP: &[&str] = &[
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", // TLP 1.0 GREEN
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", // TLP 1.0 AMBER
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", // TLP 1.0 WHITE
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", // TLP 2.0 GREEN
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", // TLP 2.0 CLEAR
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", // TLP 2.0 AMBER
];
/// A family's label (`FAMILIES` in lower case, spaces as hyphens): half of the indicators of one
/// family of the 16 in `FAMILIES` carry it, about 1.7 % of the objects (a selective filter).
const RARE_LABEL: &str = "kestrel";

const FAMILIES: &[&str] = &[
    "Cryptofrost",
    "Nightjar",
    "Ironveil",
    "Saltmarsh",
    "Blue Heron",
    "Glasswing",
    "Kestrel",
    "Dunmore",
    "Pale Lantern",
    "Thornbush",
    "Quickfang",
    "Mistral",
    "Obsidian Finch",
    "Redcap",
    "Lowtide",
    "Ashgrove",
];
const ACTORS: &[&str] = &[
    "Granite Typhoon",
    "Velvet Chollima",
    "Copper Mantis",
    "Silent Heron",
    "Rust Wolf",
    "Amber Jackal",
    "Cobalt Otter",
    "Juniper Lynx",
];
const SECTORS: &[&str] = &[
    "energy",
    "government-national",
    "defense",
    "financial-services",
    "healthcare",
    "telecommunications",
    "transportation",
    "utilities",
    "technology",
    "manufacturing",
];
const PHASES: &[&str] = &[
    "reconnaissance",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
];
const TLDS: &[&str] = &["net", "com", "org", "info", "biz", "top", "xyz", "online"];
const WORDS: &[&str] = &[
    "update", "secure", "cdn", "login", "mail", "portal", "cloud", "sync", "static", "api", "files", "support",
    "office", "vpn", "auth", "dl", "news", "relay", "gateway", "store",
];
const MALWARE_TYPES: &[&str] = &["ransomware", "backdoor", "remote-access-trojan", "downloader", "dropper", "spyware"];
const PORTS: &[&str] = &["443", "8443", "80", "8080", "4444", "53", "25"];

struct Generator {
    rng: Rng,
    /// Epoch seconds of the first object's `created`.
    clock: i64,
    identities: Vec<String>,
    malware: Vec<String>,
    actors: Vec<String>,
    indicators: Vec<String>,
}

fn remember(ring: &mut Vec<String>, id: &str) {
    if ring.len() >= 64 {
        ring.remove(0);
    }
    ring.push(id.to_owned());
}

fn ts_millis(secs: i64, millis: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            millis % 1000
        ),
        Err(_) => "2024-01-01T00:00:00.000Z".to_owned(),
    }
}

fn ts_secs(secs: i64) -> String {
    let mut s = ts_millis(secs, 0);
    // "...:SS.000Z" -> "...:SSZ"
    s.truncate(s.len().saturating_sub(5));
    s.push('Z');
    s
}

impl Generator {
    fn new(seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            clock: 1_704_067_200, // 2024-01-01T00:00:00Z
            identities: Vec::new(),
            malware: Vec::new(),
            actors: Vec::new(),
            indicators: Vec::new(),
        }
    }

    fn any_of(&mut self, ring: &[String]) -> Option<String> {
        ring.get(self.rng.below(ring.len() as u64) as usize).cloned()
    }

    /// created, modified (modified >= created), both with milliseconds.
    fn stamps(&mut self) -> (i64, String, String) {
        self.clock += self.rng.range(1, 40) as i64;
        let created = self.clock;
        let ms = self.rng.below(1000);
        let modified = if self.rng.chance(30) { created + self.rng.range(60, 86_400 * 30) as i64 } else { created };
        let ms2 = if modified == created { ms } else { self.rng.below(1000) };
        (created, ts_millis(created, ms), ts_millis(modified, ms2))
    }

    fn common(&mut self, ty: &str) -> (String, Map<String, Value>, i64) {
        let id = format!("{ty}--{}", self.rng.uuid4());
        let (created_secs, created, modified) = self.stamps();
        let mut m = Map::new();
        m.insert("type".into(), json!(ty));
        m.insert("spec_version".into(), json!("2.1"));
        m.insert("id".into(), json!(id));
        m.insert("created".into(), json!(created));
        m.insert("modified".into(), json!(modified));
        if let Some(by) = self.any_of(&self.identities.clone()) {
            m.insert("created_by_ref".into(), json!(by));
        }
        let marking = self.rng.pick(TLP);
        m.insert("object_marking_refs".into(), json!([marking]));
        (id, m, created_secs)
    }

    fn domain(&mut self) -> String {
        format!("{}-{}{}.{}", self.rng.pick(WORDS), self.rng.pick(WORDS), self.rng.below(10_000), self.rng.pick(TLDS))
    }

    fn ipv4(&mut self) -> String {
        // Documentation and benchmarking ranges only.
        let nets = ["192.0.2", "198.51.100", "203.0.113"];
        let net = nets.get(self.rng.below(3) as usize).copied().unwrap_or("192.0.2");
        format!("{net}.{}", self.rng.range(1, 254))
    }

    fn pattern(&mut self) -> (String, &'static str) {
        match self.rng.below(6) {
            0 => (
                format!(
                    "[file:hashes.'SHA-256' = '{}'] OR [file:hashes.MD5 = '{}']",
                    self.rng.hex(64),
                    self.rng.hex(32)
                ),
                "malicious-activity",
            ),
            1 => (
                format!(
                    "[ipv4-addr:value = '{}' OR ipv4-addr:value = '{}'] OR [domain-name:value = '{}']",
                    self.ipv4(),
                    self.ipv4(),
                    self.domain()
                ),
                "malicious-activity",
            ),
            2 => {
                let d = self.domain();
                let p = self.rng.pick(WORDS);
                let q = self.rng.hex(12);
                (format!("[url:value = 'https://{d}/{p}/{q}.php?id={}']", self.rng.below(100_000)), "compromised")
            }
            3 => (
                format!(
                    "([network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '{}' AND \
                     network-traffic:dst_port = {}] FOLLOWEDBY [file:name = '{}{}.exe']) WITHIN 600 SECONDS",
                    self.ipv4(),
                    self.rng.pick(PORTS),
                    self.rng.pick(WORDS),
                    self.rng.below(1000)
                ),
                "malicious-activity",
            ),
            4 => (
                format!(
                    "[email-message:from_ref.value = '{}@{}' AND email-message:subject = 'Invoice {} overdue']",
                    self.rng.pick(WORDS),
                    self.domain(),
                    self.rng.below(100_000)
                ),
                "attribution",
            ),
            _ => (
                format!(
                    "[domain-name:value = '{}'] OR [domain-name:value = '{}'] OR [x509-certificate:hashes.'SHA-1' = '{}']",
                    self.domain(),
                    self.domain(),
                    self.rng.hex(40)
                ),
                "anomalous-activity",
            ),
        }
    }

    fn kill_chain(&mut self) -> Value {
        json!([{ "kill_chain_name": "mitre-attack", "phase_name": self.rng.pick(PHASES) }])
    }

    fn indicator(&mut self) -> Value {
        let (id, mut m, created) = self.common("indicator");
        let (pattern, kind) = self.pattern();
        let family = self.rng.pick(FAMILIES);
        let n = self.rng.below(100_000);
        m.insert("name".into(), json!(format!("{family} infrastructure {n}")));
        let desc = match self.rng.below(4) {
            0 => format!(
                "Observed in {family} activity against the {} sector; block and search proxy logs.",
                self.rng.pick(SECTORS)
            ),
            1 => format!("{family} {} stage, seen by partner sensors.", self.rng.pick(PHASES)),
            2 => format!("Shared after incident response at a {} operator.", self.rng.pick(SECTORS)),
            _ => String::new(),
        };
        if !desc.is_empty() {
            m.insert("description".into(), json!(desc));
        }
        m.insert("indicator_types".into(), json!([kind]));
        m.insert("pattern".into(), json!(pattern));
        m.insert("pattern_type".into(), json!("stix"));
        m.insert("valid_from".into(), json!(ts_secs(created)));
        if self.rng.chance(30) {
            m.insert("valid_until".into(), json!(ts_secs(created + 90 * 86_400)));
        }
        if self.rng.chance(50) {
            m.insert("kill_chain_phases".into(), self.kill_chain());
        }
        m.insert("confidence".into(), json!(self.rng.range(15, 95)));
        if self.rng.chance(50) {
            m.insert("labels".into(), json!([family.to_lowercase().replace(' ', "-"), "partner-shared"]));
        }
        remember(&mut self.indicators, &id);
        Value::Object(m)
    }

    fn malware(&mut self) -> Value {
        let (id, mut m, created) = self.common("malware");
        let family = self.rng.pick(FAMILIES);
        let variant = self.rng.below(1000);
        m.insert("name".into(), json!(format!("{family} v{variant}")));
        m.insert("is_family".into(), json!(self.rng.chance(40)));
        let kind = self.rng.pick(MALWARE_TYPES);
        m.insert("malware_types".into(), json!([kind]));
        m.insert(
            "description".into(),
            json!(format!("{family} variant {variant}: {kind} written in C++, delivered by spear-phishing.")),
        );
        m.insert("aliases".into(), json!([format!("{}-{variant}", family.to_uppercase().replace(' ', ""))]));
        m.insert("first_seen".into(), json!(ts_secs(created - 86_400 * self.rng.range(1, 400) as i64)));
        m.insert("kill_chain_phases".into(), self.kill_chain());
        m.insert("architecture_execution_envs".into(), json!(["x86-64"]));
        m.insert("implementation_languages".into(), json!(["c++"]));
        remember(&mut self.malware, &id);
        Value::Object(m)
    }

    fn identity(&mut self) -> Value {
        let (id, mut m, _) = self.common("identity");
        let sector = self.rng.pick(SECTORS);
        let n = self.rng.below(10_000);
        m.insert("name".into(), json!(format!("{} operator {n}", sector.replace('-', " "))));
        m.insert("identity_class".into(), json!("organization"));
        m.insert("sectors".into(), json!([sector]));
        m.insert("contact_information".into(), json!(format!("soc@org{n}.example")));
        m.insert("description".into(), json!("Organisation referenced by shared intelligence."));
        remember(&mut self.identities, &id);
        Value::Object(m)
    }

    fn threat_actor(&mut self) -> Value {
        let (id, mut m, _) = self.common("threat-actor");
        let name = self.rng.pick(ACTORS);
        m.insert("name".into(), json!(format!("{name} cluster {}", self.rng.below(1000))));
        m.insert("threat_actor_types".into(), json!(["nation-state"]));
        m.insert("aliases".into(), json!([name.to_uppercase().replace(' ', "-")]));
        m.insert("roles".into(), json!(["agent"]));
        m.insert("sophistication".into(), json!("advanced"));
        m.insert("resource_level".into(), json!("government"));
        m.insert("primary_motivation".into(), json!("organizational-gain"));
        remember(&mut self.actors, &id);
        Value::Object(m)
    }

    fn relationship(&mut self) -> Value {
        let (_, mut m, _) = self.common("relationship");
        let ids = (self.indicators.clone(), self.malware.clone(), self.actors.clone(), self.identities.clone());
        let (kind, src, dst) = match self.rng.below(4) {
            0 => ("uses", self.any_of(&ids.2), self.any_of(&ids.1)),
            1 => ("targets", self.any_of(&ids.1), self.any_of(&ids.3)),
            2 => ("indicates", self.any_of(&ids.0), self.any_of(&ids.2)),
            _ => ("indicates", self.any_of(&ids.0), self.any_of(&ids.1)),
        };
        m.insert("relationship_type".into(), json!(kind));
        if let (Some(s), Some(d)) = (src, dst) {
            m.insert("source_ref".into(), json!(s));
            m.insert("target_ref".into(), json!(d));
        }
        if self.rng.chance(40) {
            m.insert("description".into(), json!("Derived from correlated partner sightings."));
        }
        Value::Object(m)
    }

    /// Object `i` of the stream: per 20 objects, 1 identity, 2 malware, 1 threat actor,
    /// 11 indicators (55 %), 5 relationships (25 %).
    fn object(&mut self, i: usize) -> Value {
        match i % 20 {
            0 => self.identity(),
            1 | 2 => self.malware(),
            3 => self.threat_actor(),
            4..=14 => self.indicator(),
            _ => self.relationship(),
        }
    }
}

fn generate(a: &GenerateArgs) -> Result<bool> {
    let t0 = Instant::now();
    let file = File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut g = Generator::new(a.seed);
    let per = a.per_envelope.max(1);
    let mut bytes = 0usize;
    let mut indicator_bytes = (0usize, 0usize);
    for i in 0..a.count {
        let text = serde_json::to_string(&g.object(i))?;
        bytes += text.len();
        if (4..=14).contains(&(i % 20)) {
            indicator_bytes.0 += text.len();
            indicator_bytes.1 += 1;
        }
        match a.format {
            Format::Jsonl => {
                w.write_all(text.as_bytes())?;
                w.write_all(b"\n")?;
            }
            Format::Envelopes => {
                w.write_all(if i % per == 0 { b"{\"objects\":[" } else { b"," })?;
                w.write_all(text.as_bytes())?;
                if i % per == per - 1 || i + 1 == a.count {
                    w.write_all(b"]}\n")?;
                }
            }
        }
    }
    w.flush()?;
    let secs = t0.elapsed().as_secs_f64();
    let avg = bytes as f64 / a.count.max(1) as f64;
    let avg_ind = indicator_bytes.0 as f64 / indicator_bytes.1.max(1) as f64;
    let text = format!(
        "generate: {} objects ({:.1} MB, {avg:.0} bytes/object, indicators {avg_ind:.0} bytes) to {} in {secs:.1} s",
        a.count,
        bytes as f64 / 1e6,
        a.out.display()
    );
    let summary = json!({
        "objects": a.count, "bytes": bytes, "avg_object_bytes": avg, "avg_indicator_bytes": avg_ind,
        "seed": a.seed, "seconds": secs, "ok": true,
    });
    emit(&a.output, "generate", &text, obj(summary))?;
    Ok(true)
}

/// The objects of a data file (JSON lines of objects, or of envelopes), as raw JSON.
fn load_objects(path: &Path, max: Option<usize>) -> Result<Vec<Box<RawValue>>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope {
        objects: Vec<Box<RawValue>>,
    }
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let max = max.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (n, line) in BufReader::with_capacity(1 << 20, f).lines().enumerate() {
        if out.len() >= max {
            break;
        }
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("{\"objects\"") {
            if let Ok(env) = serde_json::from_str::<Envelope>(line) {
                out.extend(env.objects);
                continue;
            }
        }
        let raw: Box<RawValue> =
            serde_json::from_str(line).with_context(|| format!("{}: line {} is not JSON", path.display(), n + 1))?;
        out.push(raw);
    }
    out.truncate(max);
    Ok(out)
}

#[derive(Deserialize)]
struct ObjKey {
    id: String,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default, rename = "type")]
    ty: Option<String>,
}

/// A 128-bit key of (id, modified): two FNV-1a hashes with different offsets.
fn key_of(id: &str, modified: Option<&str>) -> u128 {
    fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
        let mut h = seed;
        for p in parts {
            for b in *p {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01B3);
            }
            h ^= 0xFF;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        h
    }
    let m = modified.unwrap_or("").as_bytes();
    let parts: [&[u8]; 2] = [id.as_bytes(), m];
    (u128::from(fnv(0xCBF2_9CE4_8422_2325, &parts)) << 64) | u128::from(fnv(0x84222325_CBF29CE4, &parts))
}

fn object_keys(objects: &[Box<RawValue>]) -> Result<Vec<(String, u128)>> {
    objects
        .iter()
        .map(|raw| {
            let k: ObjKey = serde_json::from_str(raw.get()).context("object without an id")?;
            let key = key_of(&k.id, k.modified.as_deref());
            Ok((k.id, key))
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// HTTP/1.1 client

struct Endpoint {
    addr: String,
    host: String,
    base: String,
    auth: Option<String>,
    timeout: Duration,
}

impl Endpoint {
    fn new(t: &Target) -> Result<Self> {
        let rest =
            t.url.strip_prefix("http://").ok_or_else(|| anyhow!("only http:// URLs are supported, got {}", t.url))?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let addr = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:80") };
        let base = path.trim_matches('/');
        let root = t.api_root.trim_matches('/');
        let base = [base, root, "collections", t.collection.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .fold(String::new(), |acc, s| format!("{acc}/{s}"));
        let auth = match (&t.user, &t.password) {
            (Some(u), Some(p)) => {
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))))
            }
            (None, None) => None,
            _ => bail!("--user and --password go together"),
        };
        if !(t.timeout > 0.0 && t.timeout < 86_400.0) {
            bail!("--timeout must be between 0 and 86400 seconds");
        }
        Ok(Endpoint { addr, host: hostport.to_owned(), base, auth, timeout: Duration::from_secs_f64(t.timeout) })
    }

    /// `{base}/{api_root}/collections/{id}/{suffix}`
    fn coll(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.base)
    }

    /// `{base}/{api_root}/status/{id}/`: the collection path with its last two segments replaced.
    fn status(&self, id: &str) -> String {
        let root = self.base.rsplitn(3, '/').nth(2).unwrap_or("");
        format!("{root}/status/{}/", enc(id))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn snippet(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
    }
}

/// Why a request failed, and whether it failed before a single byte of answer came back
/// (a reused keep-alive connection the server had closed: safe to retry on a new one).
struct Failure {
    nothing_received: bool,
    error: anyhow::Error,
}

fn fail<E: Into<anyhow::Error>>(nothing_received: bool) -> impl FnOnce(E) -> Failure {
    move |e| Failure { nothing_received, error: e.into() }
}

struct Conn {
    ep: Arc<Endpoint>,
    io: Option<BufReader<TcpStream>>,
    line: String,
    /// Extra header lines sent with every request (e.g. `Accept-Encoding`).
    extra: String,
}

impl Conn {
    fn new(ep: Arc<Endpoint>) -> Self {
        Conn { ep, io: None, line: String::new(), extra: String::new() }
    }

    fn connect(&self) -> Result<BufReader<TcpStream>> {
        let mut last = anyhow!("{} resolves to no address", self.ep.addr);
        for a in self.ep.addr.to_socket_addrs().with_context(|| format!("resolving {}", self.ep.addr))? {
            match TcpStream::connect_timeout(&a, self.ep.timeout) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(self.ep.timeout))?;
                    s.set_write_timeout(Some(self.ep.timeout))?;
                    return Ok(BufReader::with_capacity(256 * 1024, s));
                }
                Err(e) => last = anyhow!("connecting to {a}: {e}"),
            }
        }
        Err(last)
    }

    fn get(&mut self, path: &str) -> Result<Response> {
        self.request("GET", path, None)
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {TAXII_MEDIA}\r\n", self.ep.host);
        head.push_str("User-Agent: taxii-bench\r\n");
        head.push_str(&self.extra);
        if let Some(a) = &self.ep.auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Type: {TAXII_MEDIA}\r\nContent-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        for attempt in 0..2 {
            let reused = self.io.is_some();
            let mut io = match self.io.take() {
                Some(io) => io,
                None => self.connect()?,
            };
            match exchange(&mut io, &mut self.line, method, head.as_bytes(), body) {
                Ok((resp, keep)) => {
                    if keep {
                        self.io = Some(io);
                    }
                    return Ok(resp);
                }
                Err(f) if f.nothing_received && reused && attempt == 0 => continue,
                Err(f) => {
                    let timed_out = f.error.downcast_ref::<std::io::Error>().is_some_and(|e| {
                        matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                    });
                    let e = if timed_out {
                        anyhow!("timed out: no answer within {:.0} s", self.ep.timeout.as_secs_f64())
                    } else {
                        f.error
                    };
                    return Err(e.context(format!("{method} {path}")));
                }
            }
        }
        bail!("{method} {path}: the connection was closed twice")
    }
}

fn exchange(
    io: &mut BufReader<TcpStream>,
    line: &mut String,
    method: &str,
    head: &[u8],
    body: Option<&[u8]>,
) -> std::result::Result<(Response, bool), Failure> {
    {
        let s = io.get_mut();
        s.write_all(head).map_err(fail(true))?;
        if let Some(b) = body {
            s.write_all(b).map_err(fail(true))?;
        }
        s.flush().map_err(fail(true))?;
    }
    // Status line (skipping any 1xx interim response).
    let (status, http10) = loop {
        line.clear();
        let n = match io.read_line(line) {
            Ok(n) => n,
            Err(e) => {
                let stale = matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                );
                return Err(Failure { nothing_received: stale, error: e.into() });
            }
        };
        if n == 0 {
            return Err(Failure { nothing_received: true, error: anyhow!("connection closed by the server") });
        }
        let mut parts = line.split_whitespace();
        let version = parts.next().unwrap_or("");
        let code: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Failure { nothing_received: false, error: anyhow!("bad status line {line:?}") })?;
        if !version.starts_with("HTTP/1.") {
            return Err(Failure { nothing_received: false, error: anyhow!("bad status line {line:?}") });
        }
        if (100..200).contains(&code) {
            // Interim response: skip its headers.
            loop {
                line.clear();
                let n = io.read_line(line).map_err(fail(false))?;
                if n == 0 || line.trim().is_empty() {
                    break;
                }
            }
            continue;
        }
        break (code, version == "HTTP/1.0");
    };
    let mut headers = Vec::new();
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut keep = !http10;
    loop {
        line.clear();
        let n = io.read_line(line).map_err(fail(false))?;
        if n == 0 {
            return Err(Failure { nothing_received: false, error: anyhow!("connection closed in the headers") });
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.parse().map_err(|_| Failure { nothing_received: false, error: anyhow!("bad Content-Length") })?,
                );
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            } else if k.eq_ignore_ascii_case("connection") {
                let v = v.to_ascii_lowercase();
                if v.contains("close") {
                    keep = false;
                } else if v.contains("keep-alive") {
                    keep = true;
                }
            }
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    let mut out = Vec::new();
    let no_body = method == "HEAD" || status == 204 || status == 304;
    if no_body {
    } else if chunked {
        loop {
            line.clear();
            io.read_line(line).map_err(fail(false))?;
            let size_text = line.trim().split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| Failure { nothing_received: false, error: anyhow!("bad chunk size {size_text:?}") })?;
            if size == 0 {
                loop {
                    line.clear();
                    let n = io.read_line(line).map_err(fail(false))?;
                    if n == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if out.len() as u64 + size > MAX_BODY {
                return Err(Failure { nothing_received: false, error: anyhow!("response body over {MAX_BODY} bytes") });
            }
            let got = io.by_ref().take(size).read_to_end(&mut out).map_err(fail(false))?;
            if got as u64 != size {
                return Err(Failure { nothing_received: false, error: anyhow!("connection closed in a chunk") });
            }
            line.clear();
            io.read_line(line).map_err(fail(false))?;
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(Failure { nothing_received: false, error: anyhow!("response body over {MAX_BODY} bytes") });
        }
        out.reserve(n as usize);
        let got = io.by_ref().take(n).read_to_end(&mut out).map_err(fail(false))?;
        if got as u64 != n {
            return Err(Failure { nothing_received: false, error: anyhow!("connection closed in the body") });
        }
    } else {
        io.by_ref().take(MAX_BODY).read_to_end(&mut out).map_err(fail(false))?;
        keep = false;
    }
    Ok((Response { status, headers, body: out }, keep))
}

// ------------------------------------------------------------------------------------------------
// Statistics

/// Percentile (0..=1) of sorted values.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn deadline(max_seconds: Option<f64>) -> Result<Option<Instant>> {
    match max_seconds {
        None => Ok(None),
        Some(s) if s > 0.0 && s < 86_400.0 * 7.0 => Ok(Some(Instant::now() + Duration::from_secs_f64(s))),
        Some(_) => bail!("--max-seconds must be positive and under a week"),
    }
}

// ------------------------------------------------------------------------------------------------
// ingest

#[derive(Deserialize)]
struct StatusResource {
    id: String,
    status: String,
    #[serde(default)]
    success_count: u64,
    #[serde(default)]
    failure_count: u64,
    #[serde(default)]
    pending_count: u64,
    #[serde(default)]
    failures: Vec<StatusDetail>,
}

#[derive(Deserialize)]
struct StatusDetail {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Default)]
struct IngestTotals {
    posts: usize,
    sent_objects: u64,
    sent_bytes: u64,
    stored: u64,
    failed: u64,
    errors: Vec<String>,
    latencies: Vec<f64>,
    last_done: Option<Instant>,
}

fn ingest(a: &IngestArgs) -> Result<bool> {
    let ep = Arc::new(Endpoint::new(&a.target)?);
    if a.clients == 0 || a.clients > 256 || a.per_post == 0 {
        bail!("--clients must be 1..=256 and --per-post at least 1");
    }
    let objects = load_objects(&a.file, a.max_objects)?;
    let total = objects.len();
    // Envelopes are built before the clock starts: the client's own work is not measured.
    let bodies: Vec<(usize, Vec<u8>)> = objects
        .chunks(a.per_post)
        .map(|chunk| {
            let mut b = Vec::with_capacity(chunk.iter().map(|o| o.get().len() + 1).sum::<usize>() + 16);
            b.extend_from_slice(b"{\"objects\":[");
            for (i, o) in chunk.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(o.get().as_bytes());
            }
            b.extend_from_slice(b"]}");
            (chunk.len(), b)
        })
        .collect();
    drop(objects);
    let stop_at = deadline(a.max_seconds)?;
    let status_timeout = Duration::from_secs_f64(a.status_timeout.clamp(0.1, 86_400.0));
    let next = AtomicUsize::new(0);
    let totals = Mutex::new(IngestTotals::default());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..a.clients {
            s.spawn(|| {
                let mut conn = Conn::new(ep.clone());
                loop {
                    if stop_at.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((count, body)) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let outcome = post_envelope(&mut conn, &ep, body, status_timeout);
                    let dt = t.elapsed().as_secs_f64();
                    let Ok(mut tot) = totals.lock() else { break };
                    tot.posts += 1;
                    tot.sent_objects += *count as u64;
                    tot.sent_bytes += body.len() as u64;
                    tot.latencies.push(dt);
                    tot.last_done = Some(Instant::now());
                    match outcome {
                        Ok((st, msgs)) => {
                            tot.stored += st.success_count;
                            tot.failed += st.failure_count + st.pending_count;
                            if st.success_count + st.failure_count + st.pending_count != *count as u64 {
                                tot.errors.push(format!(
                                    "status {} counts {} objects, the envelope had {count}",
                                    st.id,
                                    st.success_count + st.failure_count + st.pending_count
                                ));
                            }
                            for m in msgs {
                                if tot.errors.len() < 10 {
                                    tot.errors.push(m);
                                }
                            }
                        }
                        Err(e) => {
                            tot.failed += *count as u64;
                            if tot.errors.len() < 10 {
                                tot.errors.push(format!("{e:#}"));
                            }
                        }
                    }
                }
            });
        }
    });
    let tot = totals.into_inner().map_err(|_| anyhow!("a client thread panicked"))?;
    let secs = tot.last_done.map_or(0.0, |d| (d - t0).as_secs_f64()).max(1e-9);
    let capped = (tot.sent_objects as usize) < total;
    let rate = tot.stored as f64 / secs;
    let mbs = tot.sent_bytes as f64 / 1e6 / secs;
    let lat = sorted(tot.latencies);
    let ok = tot.failed == 0 && tot.errors.is_empty() && !capped;
    let mut text = format!(
        "ingest: {} of {} objects stored in {secs:.2} s = {} objects/s, {mbs:.1} MB/s ({} client(s), {} POSTs of \
         up to {}, {:.0} bytes/object); failures {}; POST p50 {:.1} ms p99 {:.1} ms",
        thousands(tot.stored as f64),
        thousands(total as f64),
        thousands(rate),
        a.clients,
        tot.posts,
        a.per_post,
        tot.sent_bytes as f64 / tot.sent_objects.max(1) as f64,
        tot.failed,
        pct(&lat, 0.5) * 1e3,
        pct(&lat, 0.99) * 1e3,
    );
    if capped {
        text.push_str(&format!(
            "\n  CAPPED: stopped after {:.0} s with {} of {total} objects posted",
            a.max_seconds.unwrap_or(0.0),
            tot.sent_objects
        ));
    }
    for e in &tot.errors {
        text.push_str(&format!("\n  error: {e}"));
    }
    let summary = json!({
        "objects": total, "posted": tot.sent_objects, "stored": tot.stored, "failures": tot.failed,
        "posts": tot.posts, "clients": a.clients, "per_post": a.per_post, "bytes": tot.sent_bytes,
        "seconds": secs, "objects_per_s": rate, "mb_per_s": mbs,
        "post_p50_ms": pct(&lat, 0.5) * 1e3, "post_p99_ms": pct(&lat, 0.99) * 1e3,
        "capped": capped, "max_seconds": a.max_seconds, "errors": tot.errors, "ok": ok,
    });
    emit(&a.output, "ingest", &text, obj(summary))?;
    Ok(ok)
}

/// POSTs one envelope; if the status is `pending`, polls it until it completes.
/// Returns the final status and up to five failure messages.
fn post_envelope(
    conn: &mut Conn,
    ep: &Endpoint,
    body: &[u8],
    status_timeout: Duration,
) -> Result<(StatusResource, Vec<String>)> {
    let path = ep.coll("objects/");
    let r = conn.request("POST", &path, Some(body))?;
    if !(200..300).contains(&r.status) {
        bail!("POST answered {}: {}", r.status, r.snippet());
    }
    let mut st: StatusResource = serde_json::from_slice(&r.body)
        .with_context(|| format!("POST answered {} without a status resource: {}", r.status, r.snippet()))?;
    let started = Instant::now();
    let mut wait = Duration::from_millis(10);
    while st.status != "complete" {
        if started.elapsed() > status_timeout {
            bail!("status {} still {} after {:.0} s", st.id, st.status, status_timeout.as_secs_f64());
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(500));
        let r = conn.get(&ep.status(&st.id))?;
        if r.status != 200 {
            bail!("GET status {} answered {}: {}", st.id, r.status, r.snippet());
        }
        st = serde_json::from_slice(&r.body).context("status resource")?;
    }
    let msgs = st
        .failures
        .iter()
        .take(5)
        .map(|f| format!("{}: {}", f.id.as_deref().unwrap_or("?"), f.message.as_deref().unwrap_or("")))
        .collect();
    Ok((st, msgs))
}

// ------------------------------------------------------------------------------------------------
// read

/// What the paging loop needs from a page: whether there is more, and where it continues. The
/// objects are kept as raw JSON and checked on another thread.
#[derive(Deserialize)]
struct PageHead<'a> {
    #[serde(default)]
    more: bool,
    #[serde(default)]
    next: Option<Value>,
    #[serde(default, borrow)]
    objects: Option<&'a RawValue>,
}

/// The objects of one page, for the checker thread.
#[derive(Deserialize)]
struct PageObjects {
    #[serde(default)]
    objects: Vec<ObjKey>,
}

/// Exactly-once bookkeeping of a full read, fed page by page.
#[derive(Default)]
struct ReadCheck {
    seen: HashSet<u128>,
    objects: u64,
    duplicates: u64,
    unexpected: u64,
    errors: Vec<String>,
}

impl ReadCheck {
    fn page(&mut self, n: u64, body: &[u8], expected: Option<&HashSet<u128>>) {
        let page: PageObjects = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(e) => {
                self.errors.push(format!("the objects of page {n} do not parse: {e}"));
                return;
            }
        };
        for o in &page.objects {
            self.objects += 1;
            let k = key_of(&o.id, o.modified.as_deref());
            if !self.seen.insert(k) {
                self.duplicates += 1;
            }
            if expected.is_some_and(|e| !e.contains(&k)) {
                self.unexpected += 1;
            }
        }
    }
}

fn read(a: &ReadArgs) -> Result<bool> {
    let ep = Arc::new(Endpoint::new(&a.target)?);
    let expected: Option<HashSet<u128>> = match &a.file {
        Some(f) => {
            let objs = a.subset.apply(load_objects(f, a.known)?)?;
            Some(object_keys(&objs)?.into_iter().map(|(_, k)| k).collect())
        }
        None => None,
    };
    let expect_n = a.expect.or(expected.as_ref().map(HashSet::len));
    let stop_at = deadline(a.max_seconds)?;
    let mut conn = Conn::new(ep.clone());
    if a.gzip {
        conn.extra.push_str("Accept-Encoding: gzip\r\n");
    }
    // Bytes inflated (the JSON), bytes on the wire (the same unless compressed), compressed pages.
    let (mut pages, mut bytes, mut wire, mut gzipped) = (0u64, 0u64, 0u64, 0u64);
    let mut latencies = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut capped = false;
    let mut query = format!("?limit={}", a.limit);
    // The paging loop only finds `more` and `next`; a second thread parses every object and
    // checks it, so the driver's JSON work overlaps the server's next page.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(16);
    let t0 = Instant::now();
    let check = std::thread::scope(|s| {
        let expected = expected.as_ref();
        let checker = s.spawn(move || {
            let mut check =
                ReadCheck { seen: HashSet::with_capacity(expect_n.unwrap_or(1024)), ..ReadCheck::default() };
            for (n, body) in rx {
                check.page(n, &body, expected);
            }
            check
        });
        loop {
            if stop_at.is_some_and(|d| Instant::now() >= d) {
                capped = true;
                break;
            }
            let t = Instant::now();
            let r = match conn.get(&ep.coll(&format!("objects/{query}"))) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    break;
                }
            };
            latencies.push(t.elapsed().as_secs_f64());
            if r.status != 200 {
                errors.push(format!("page {} answered {}: {}", pages + 1, r.status, r.snippet()));
                break;
            }
            pages += 1;
            wire += r.body.len() as u64;
            let date_added_last = r.header("X-TAXII-Date-Added-Last").map(str::to_owned);
            let compressed = r.header("Content-Encoding").is_some_and(|c| c.eq_ignore_ascii_case("gzip"));
            let body = if compressed {
                // As a client would: inflate before finding `next` (on the paging thread).
                gzipped += 1;
                let mut plain = Vec::with_capacity(r.body.len() * 6);
                if let Err(e) = flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut plain) {
                    errors.push(format!("page {pages} is not valid gzip: {e}"));
                    break;
                }
                plain
            } else {
                r.body
            };
            bytes += body.len() as u64;
            let (more, next, empty) = match serde_json::from_slice::<PageHead<'_>>(&body) {
                Ok(p) => (p.more, p.next, p.objects.is_none_or(|o| o.get().trim_start().starts_with("[]"))),
                Err(e) => {
                    errors.push(format!("page {pages} is not an envelope: {e}"));
                    break;
                }
            };
            if tx.send((pages, body)).is_err() {
                errors.push("the checker thread stopped".into());
                break;
            }
            if !more {
                break;
            }
            query = match next {
                Some(Value::String(n)) => format!("?limit={}&next={}", a.limit, enc(&n)),
                Some(Value::Number(n)) => format!("?limit={}&next={n}", a.limit),
                _ => match date_added_last {
                    // No `next`: resume after the last object of the page.
                    Some(last) => format!("?limit={}&added_after={}", a.limit, enc(&last)),
                    None => {
                        errors
                            .push(format!("page {pages} says more but gives neither next nor X-TAXII-Date-Added-Last"));
                        break;
                    }
                },
            };
            if empty {
                errors.push(format!("page {pages} is empty but says more"));
                break;
            }
        }
        drop(tx);
        checker.join().map_err(|_| anyhow!("the checker thread panicked"))
    })?;
    errors.extend(check.errors);
    let (objects, duplicates, mut unexpected, seen) = (check.objects, check.duplicates, check.unexpected, check.seen);
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let unique = seen.len() as u64;
    let missing = expect_n.map_or(0, |n| (n as u64).saturating_sub(unique));
    if expected.is_none() {
        // Without the data file, objects beyond the expected count are the unexpected ones.
        unexpected = expect_n.map_or(0, |n| unique.saturating_sub(n as u64));
    }
    let rate = objects as f64 / secs;
    let first_page = latencies.first().copied().unwrap_or(0.0);
    let lat = sorted(latencies);
    let ok = errors.is_empty() && !capped && duplicates == 0 && missing == 0 && unexpected == 0;
    let mut text = format!(
        "read: {} objects in {pages} pages (limit {}) in {secs:.2} s = {} objects/s, {:.1} MB/s; page p50 {:.1} ms \
         p99 {:.1} ms; unique {}, duplicates {duplicates}, missing {missing}, unexpected {unexpected}",
        thousands(objects as f64),
        a.limit,
        thousands(rate),
        bytes as f64 / 1e6 / secs,
        pct(&lat, 0.5) * 1e3,
        pct(&lat, 0.99) * 1e3,
        thousands(unique as f64),
    );
    if let Some(n) = expect_n {
        text.push_str(&format!(" (expected {})", thousands(n as f64)));
    }
    if a.gzip {
        text.push_str(&format!(
            "\n  gzip: {gzipped} of {pages} pages compressed; {:.1} MB on the wire for {:.1} MB of JSON ({:.1}x), {:.1} MB/s on the wire",
            wire as f64 / 1e6,
            bytes as f64 / 1e6,
            bytes as f64 / (wire as f64).max(1.0),
            wire as f64 / 1e6 / secs,
        ));
    }
    if capped {
        text.push_str(&format!("\n  CAPPED: stopped after {:.0} s", a.max_seconds.unwrap_or(0.0)));
    }
    for e in &errors {
        text.push_str(&format!("\n  error: {e}"));
    }
    let summary = json!({
        "objects": objects, "unique": unique, "duplicates": duplicates, "missing": missing,
        "unexpected": unexpected, "expected": expect_n, "pages": pages, "limit": a.limit, "bytes": bytes,
        "wire_bytes": wire, "wire_mb_per_s": wire as f64 / 1e6 / secs, "gzip": a.gzip, "gzip_pages": gzipped,
        "seconds": secs, "objects_per_s": rate, "mb_per_s": bytes as f64 / 1e6 / secs,
        "page_p50_ms": pct(&lat, 0.5) * 1e3, "page_p99_ms": pct(&lat, 0.99) * 1e3,
        "first_page_ms": first_page * 1e3,
        "capped": capped, "max_seconds": a.max_seconds, "errors": errors, "ok": ok,
    });
    emit(&a.output, "read", &text, obj(summary))?;
    Ok(ok)
}

// ------------------------------------------------------------------------------------------------
// filtered

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Type,
    Manifest,
    /// The richer filters (interop §3.13.2), each a page after the same position.
    Labels,
    Confidence,
    Tlp,
    CreatedBy,
    /// Selective filters: a label on about 1.7 % of the objects; a label on none (the worst case
    /// for a filter evaluated on rows: every row after the position is looked at).
    RareLabel,
    NoMatch,
    /// `match[relationships-all]` of a random object.
    Related,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Id => "id",
            Kind::Type => "type",
            Kind::Manifest => "manifest",
            Kind::Labels => "labels",
            Kind::Confidence => "confidence",
            Kind::Tlp => "tlp",
            Kind::CreatedBy => "created_by",
            Kind::RareLabel => "rare_label",
            Kind::NoMatch => "no_match",
            Kind::Related => "related",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "id" => Ok(Kind::Id),
            "type" => Ok(Kind::Type),
            "manifest" => Ok(Kind::Manifest),
            "labels" => Ok(Kind::Labels),
            "confidence" => Ok(Kind::Confidence),
            "tlp" => Ok(Kind::Tlp),
            "created_by" => Ok(Kind::CreatedBy),
            "rare_label" => Ok(Kind::RareLabel),
            "no_match" => Ok(Kind::NoMatch),
            "related" => Ok(Kind::Related),
            other => bail!(
                "unknown workload {other:?} (id, type, manifest, labels, confidence, tlp, created_by, rare_label, no_match, related or mixed)"
            ),
        }
    }
    fn describe(self, page: usize) -> String {
        match self {
            Kind::Id => "objects/?match[id]=<random known id>".to_owned(),
            Kind::Type => format!("objects/?match[type]=indicator&added_after=<mid>&limit={page}"),
            Kind::Manifest => format!("manifest/?added_after=<mid>&limit={page}"),
            Kind::Labels => format!("objects/?match[labels]=partner-shared&added_after=<mid>&limit={page}"),
            Kind::Confidence => format!("objects/?match[confidence-gte]=80&added_after=<mid>&limit={page}"),
            Kind::Tlp => format!("objects/?match[tlp]=green&added_after=<mid>&limit={page}"),
            Kind::CreatedBy => format!("objects/?match[created_by_ref]=<an author>&added_after=<mid>&limit={page}"),
            Kind::RareLabel => format!("objects/?match[labels]={RARE_LABEL}&added_after=<mid>&limit={page}"),
            Kind::NoMatch => format!("objects/?match[labels]=no-such-label&added_after=<mid>&limit={page}"),
            Kind::Related => "objects/?match[relationships-all]=<random known id>".to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct ManifestPage {
    #[serde(default)]
    objects: Vec<ManifestRecord>,
}

#[derive(Deserialize)]
struct ManifestRecord {
    #[serde(default)]
    date_added: Option<String>,
}

/// The `date_added` of one object, from its manifest record, else from the page header.
/// A TAXII timestamp's Unix microseconds.
fn unix_micros(ts: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("not a timestamp: {ts}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).context("timestamp out of range")
}

/// Unix microseconds as a TAXII timestamp (microsecond precision, UTC).
fn taxii_timestamp(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"))
        .unwrap_or_default()
}

fn date_added_of(conn: &mut Conn, ep: &Endpoint, id: &str) -> Result<String> {
    let r = conn.get(&ep.coll(&format!("manifest/?match%5Bid%5D={}", enc(id))))?;
    if r.status == 200 {
        if let Ok(m) = serde_json::from_slice::<ManifestPage>(&r.body) {
            if let Some(d) = m.objects.first().and_then(|o| o.date_added.clone()) {
                return Ok(d);
            }
        }
    }
    let r = conn.get(&ep.coll(&format!("objects/?match%5Bid%5D={}", enc(id))))?;
    match r.header("X-TAXII-Date-Added-First") {
        Some(d) if r.status == 200 => Ok(d.to_owned()),
        _ => bail!("cannot learn the date_added of {id} (status {}): {}", r.status, r.snippet()),
    }
}

struct KindStats {
    latencies: Vec<f64>,
    errors: u64,
    bytes: u64,
    samples: Vec<String>,
}

/// Every how many responses of a connection the driver parses and checks in full (the first one
/// always): on a 2-core machine, parsing every 100-object page took a quarter of the CPU the
/// server needed. The others are checked for status 200 and a JSON object body (and, for
/// `match[id]`, that the id is in it).
const FULL_CHECK_EVERY: usize = 8;

fn check_response(kind: Kind, r: &Response, id: &str, page: usize, full: bool) -> Result<()> {
    if r.status != 200 {
        bail!("HTTP {}: {}", r.status, r.snippet());
    }
    if !full {
        if !r.body.trim_ascii_start().starts_with(b"{") {
            bail!("the body is not a JSON object: {}", r.snippet());
        }
        if kind == Kind::Id && !r.body.windows(id.len().max(1)).any(|w| w == id.as_bytes()) {
            bail!("match[id]={id} did not return it");
        }
        return Ok(());
    }
    match kind {
        Kind::Id => {
            let p: PageObjects = serde_json::from_slice(&r.body)?;
            if p.objects.len() != 1 || p.objects.first().is_none_or(|o| o.id != id) {
                bail!("match[id]={id} gave {} objects", p.objects.len());
            }
        }
        Kind::Type => {
            let p: PageObjects = serde_json::from_slice(&r.body)?;
            if p.objects.is_empty() || p.objects.len() > page {
                bail!("type page has {} objects", p.objects.len());
            }
            if let Some(o) = p.objects.iter().find(|o| o.ty.as_deref().unwrap_or("") != "indicator") {
                bail!("match[type]=indicator returned {}", o.id);
            }
        }
        Kind::Manifest => {
            let m: ManifestPage = serde_json::from_slice(&r.body)?;
            if m.objects.is_empty() || m.objects.len() > page {
                bail!("manifest page has {} records", m.objects.len());
            }
        }
        Kind::Labels | Kind::Confidence | Kind::Tlp | Kind::CreatedBy | Kind::RareLabel => {
            let p: PageObjects = serde_json::from_slice(&r.body)?;
            if p.objects.len() > page {
                bail!("{} page has {} objects", kind.name(), p.objects.len());
            }
        }
        Kind::NoMatch => {
            let p: PageObjects = serde_json::from_slice(&r.body)?;
            if !p.objects.is_empty() {
                bail!("match[labels]=no-such-label returned {} objects", p.objects.len());
            }
        }
        Kind::Related => {
            let p: PageObjects = serde_json::from_slice(&r.body)?;
            if !p.objects.iter().any(|o| o.id == id) {
                bail!("match[relationships-all]={id} did not return the object itself");
            }
        }
    }
    Ok(())
}

fn filtered(a: &FilteredArgs) -> Result<bool> {
    let ep = Arc::new(Endpoint::new(&a.target)?);
    if a.connections == 0 || a.connections > 1024 {
        bail!("--connections must be 1..=1024");
    }
    if !(a.duration > 0.0 && a.duration <= 3600.0) {
        bail!("--duration must be in (0, 3600] seconds");
    }
    let objs = a.subset.apply(load_objects(&a.file, a.known)?)?;
    let ids: Vec<String> = object_keys(&objs)?.into_iter().map(|(id, _)| id).collect();
    // An author of objects (an identity the data's created_by_ref point to), for match[created_by_ref].
    let author = objs
        .iter()
        .find_map(|raw| {
            let v: Value = serde_json::from_str(raw.get()).ok()?;
            v.get("created_by_ref").and_then(Value::as_str).map(str::to_owned)
        })
        .unwrap_or_default();
    drop(objs);
    if ids.is_empty() {
        bail!("no known objects in {}", a.file.display());
    }
    let mixed = a.workload.trim() == "mixed";
    let kinds: Vec<Kind> = if mixed {
        vec![Kind::Id, Kind::Type, Kind::Manifest]
    } else {
        a.workload.split(',').map(Kind::parse).collect::<Result<_>>()?
    };
    let added_after = match &a.added_after {
        Some(s) => s.clone(),
        None => {
            let mid = ids.get(ids.len() / 2).map(String::as_str).unwrap_or("");
            date_added_of(&mut Conn::new(ep.clone()), &ep, mid)?
        }
    };
    // With --spread: the range of positions (Unix microseconds) each request draws from.
    let span = if a.spread {
        let q3 = ids.get(ids.len() * 3 / 4).map(String::as_str).unwrap_or("");
        let q3 = date_added_of(&mut Conn::new(ep.clone()), &ep, q3)?;
        let (lo, hi) = (unix_micros(&added_after)?, unix_micros(&q3)?);
        if hi <= lo {
            bail!("--spread: the positions {added_after} and {q3} give no range");
        }
        Some((lo, hi))
    } else {
        None
    };
    let paths = |kind: Kind, id: &str, added_after: &str| -> String {
        match kind {
            Kind::Id => ep.coll(&format!("objects/?match%5Bid%5D={}", enc(id))),
            Kind::Type => ep.coll(&format!(
                "objects/?match%5Btype%5D=indicator&added_after={}&limit={}",
                enc(added_after),
                a.page
            )),
            Kind::Manifest => ep.coll(&format!("manifest/?added_after={}&limit={}", enc(added_after), a.page)),
            Kind::Labels => ep.coll(&format!(
                "objects/?match%5Blabels%5D=partner-shared&added_after={}&limit={}",
                enc(added_after),
                a.page
            )),
            Kind::Confidence => ep.coll(&format!(
                "objects/?match%5Bconfidence-gte%5D=80&added_after={}&limit={}",
                enc(added_after),
                a.page
            )),
            Kind::Tlp => {
                ep.coll(&format!("objects/?match%5Btlp%5D=green&added_after={}&limit={}", enc(added_after), a.page))
            }
            Kind::CreatedBy => ep.coll(&format!(
                "objects/?match%5Bcreated_by_ref%5D={}&added_after={}&limit={}",
                enc(&author),
                enc(added_after),
                a.page
            )),
            Kind::RareLabel => ep.coll(&format!(
                "objects/?match%5Blabels%5D={RARE_LABEL}&added_after={}&limit={}",
                enc(added_after),
                a.page
            )),
            Kind::NoMatch => ep.coll(&format!(
                "objects/?match%5Blabels%5D=no-such-label&added_after={}&limit={}",
                enc(added_after),
                a.page
            )),
            Kind::Related => ep.coll(&format!("objects/?match%5Brelationships-all%5D={}", enc(id))),
        }
    };
    // Runs: each a list of kinds to draw from, for `duration` seconds.
    let runs: Vec<Vec<Kind>> = if mixed { vec![kinds.clone()] } else { kinds.iter().map(|k| vec![*k]).collect() };
    let mut text = format!(
        "filtered: {} connections, {:.0} s per workload, {} known ids, added_after {}",
        a.connections,
        a.duration,
        ids.len(),
        if a.spread { "<random, mid to three quarters>" } else { added_after.as_str() }
    );
    let mut results = Vec::new();
    let mut all_ok = true;
    for (run_no, run) in runs.iter().enumerate() {
        let stats: Vec<Mutex<KindStats>> = run
            .iter()
            .map(|_| Mutex::new(KindStats { latencies: Vec::new(), errors: 0, bytes: 0, samples: Vec::new() }))
            .collect();
        let issued = AtomicUsize::new(0);
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs_f64(a.duration);
        std::thread::scope(|s| {
            for t in 0..a.connections {
                let (ids, run, stats, issued, paths, ep, added_after) =
                    (&ids, run, &stats, &issued, &paths, ep.clone(), &added_after);
                let seed = a.seed ^ ((run_no as u64) << 32) ^ (t as u64).wrapping_mul(0x9E37_79B9);
                s.spawn(move || {
                    let mut rng = Rng::new(seed);
                    let mut conn = Conn::new(ep);
                    let mut local: Vec<KindStats> = run
                        .iter()
                        .map(|_| KindStats { latencies: Vec::new(), errors: 0, bytes: 0, samples: Vec::new() })
                        .collect();
                    while Instant::now() < end && issued.fetch_add(1, Ordering::Relaxed) < a.max_requests {
                        let which = rng.below(run.len() as u64) as usize;
                        let (Some(kind), Some(st)) = (run.get(which), local.get_mut(which)) else { break };
                        let id = ids.get(rng.below(ids.len() as u64) as usize).map(String::as_str).unwrap_or("");
                        let path = match span {
                            Some((lo, hi)) => {
                                let at = lo + i64::try_from(rng.below((hi - lo) as u64)).unwrap_or(0);
                                paths(*kind, id, &taxii_timestamp(at))
                            }
                            None => paths(*kind, id, added_after),
                        };
                        let t = Instant::now();
                        let r = conn.get(&path);
                        let dt = t.elapsed().as_secs_f64();
                        st.latencies.push(dt);
                        let full = st.latencies.len() % FULL_CHECK_EVERY == 1;
                        let checked = r.and_then(|r| {
                            st.bytes += r.body.len() as u64;
                            check_response(*kind, &r, id, a.page, full)
                        });
                        if let Err(e) = checked {
                            st.errors += 1;
                            if st.samples.len() < 3 {
                                st.samples.push(format!("{e:#}"));
                            }
                            // A failed connection is not reused.
                            conn = Conn::new(conn.ep.clone());
                        }
                    }
                    for (mine, shared) in local.into_iter().zip(stats.iter()) {
                        if let Ok(mut s) = shared.lock() {
                            s.latencies.extend(mine.latencies);
                            s.errors += mine.errors;
                            s.bytes += mine.bytes;
                            for m in mine.samples {
                                if s.samples.len() < 3 {
                                    s.samples.push(m);
                                }
                            }
                        }
                    }
                });
            }
        });
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        for (kind, st) in run.iter().zip(stats) {
            let st = st.into_inner().map_err(|_| anyhow!("a connection thread panicked"))?;
            let n = st.latencies.len();
            let lat = sorted(st.latencies);
            let ok = st.errors == 0 && n > 0;
            all_ok &= ok;
            let rps = n as f64 / secs;
            text.push_str(&format!(
                "\n  {:<8} {:>8} req in {secs:.1} s = {} req/s; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.1} \
                 ms; errors {}  [{}]",
                kind.name(),
                n,
                thousands(rps),
                pct(&lat, 0.5) * 1e3,
                pct(&lat, 0.9) * 1e3,
                pct(&lat, 0.99) * 1e3,
                lat.last().copied().unwrap_or(0.0) * 1e3,
                st.errors,
                kind.describe(a.page)
            ));
            for m in &st.samples {
                text.push_str(&format!("\n    error: {m}"));
            }
            results.push(json!({
                "workload": kind.name(), "mixed": mixed, "requests": n, "errors": st.errors, "seconds": secs,
                "requests_per_s": rps, "p50_ms": pct(&lat, 0.5) * 1e3, "p90_ms": pct(&lat, 0.9) * 1e3,
                "p99_ms": pct(&lat, 0.99) * 1e3, "max_ms": lat.last().copied().unwrap_or(0.0) * 1e3,
                "mb_per_s": st.bytes as f64 / 1e6 / secs, "error_samples": st.samples, "ok": ok,
            }));
        }
    }
    let summary = json!({
        "connections": a.connections, "duration": a.duration, "known": ids.len(), "page": a.page,
        "added_after": added_after, "spread": a.spread, "workloads": results, "ok": all_ok,
    });
    emit(&a.output, "filtered", &text, obj(summary))?;
    Ok(all_ok)
}

// ------------------------------------------------------------------------------------------------
// rss

/// (VmHWM, VmRSS) in kB of one process.
fn proc_mem(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("no process {pid}"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmHWM:"), field("VmRSS:")))
}

/// The process and all its descendants (by the ppid in /proc/*/stat).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                // pid (comm) state ppid ...; comm may contain spaces, so split after the last ')'.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u32>().ok());
                if let Some(pp) = ppid {
                    parents.push((p, pp));
                }
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while let Some(&cur) = tree.get(i) {
        for (p, pp) in &parents {
            if *pp == cur && !tree.contains(p) {
                tree.push(*p);
            }
        }
        i += 1;
    }
    tree
}

fn rss(a: &RssArgs) -> Result<bool> {
    let pids = if a.children { process_tree(a.pid) } else { vec![a.pid] };
    let mut hwm = 0u64;
    let mut cur = 0u64;
    for p in &pids {
        let (h, r) = proc_mem(*p)?;
        hwm += h;
        cur += r;
    }
    let mut sampled = cur;
    if let Some(s) = a.sample_seconds {
        let end = Instant::now() + Duration::from_secs_f64(s.clamp(0.0, 3600.0));
        while Instant::now() < end {
            let pids = if a.children { process_tree(a.pid) } else { vec![a.pid] };
            let now: u64 = pids.iter().filter_map(|p| proc_mem(*p).ok()).map(|(_, r)| r).sum();
            sampled = sampled.max(now);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let text = format!(
        "rss: pid {} ({} process(es)): peak {:.1} MB (VmHWM), now {:.1} MB{}",
        a.pid,
        pids.len(),
        hwm as f64 / 1024.0,
        cur as f64 / 1024.0,
        if a.sample_seconds.is_some() {
            format!(", sampled max {:.1} MB", sampled as f64 / 1024.0)
        } else {
            String::new()
        }
    );
    let summary = json!({
        "pid": a.pid, "processes": pids.len(), "peak_mb": hwm as f64 / 1024.0, "rss_mb": cur as f64 / 1024.0,
        "sampled_max_mb": sampled as f64 / 1024.0, "ok": true,
    });
    emit(&a.output, "rss", &text, obj(summary))?;
    Ok(true)
}
