//! Configuration: built-in defaults < TOML file (`--config`) < `CONCORDIA_*` environment
//! variables < command-line flags, merged in [`Config::load`] and validated with every problem
//! reported at once. Every secret may come from a file instead (`database_url_file`,
//! `server_key_file`, `server_key_previous_file`, `metrics_token_file`; in the environment
//! `CONCORDIA_DATABASE_URL_FILE` etc.), and never prints (passwords in URLs are masked).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

/// One configuration layer; every field optional. The TOML file has exactly these keys, and each
/// has an environment variable `CONCORDIA_<KEY in upper case>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Address to listen on (default 127.0.0.1:8080).
    pub listen: Option<String>,
    /// Database URL: `sqlite://PATH` (or a path) or `postgres://…` (default sqlite://concordia.db).
    pub database_url: Option<String>,
    /// File holding `database_url` (e.g. a systemd credential or a container secret).
    pub database_url_file: Option<PathBuf>,
    /// SQLite only: `normal` (default; an acknowledged write survives the death of the process,
    /// not a power loss) or `full` (it survives a power loss too; every commit waits for fsync).
    pub durability: Option<String>,
    /// PEM certificate chain for HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates are accepted (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// PEM certificate revocation lists for client certificates; a revoked certificate is refused.
    pub tls_crl: Option<PathBuf>,
    /// Client certificates: `off` (default), `optional` (passwords and API keys keep working on
    /// the same port) or `required`.
    pub client_auth: Option<String>,
    /// How often the TLS files are checked for changes and reloaded, in seconds (default 5;
    /// SIGHUP reloads at once).
    pub tls_reload_seconds: Option<u64>,
    /// Allow plain HTTP on a non-loopback address because a TLS proxy sits in front.
    pub behind_tls_proxy: Option<bool>,
    /// The base URL partners use to reach this server, e.g. `https://taxii.example.org` (behind
    /// a TLS proxy: the proxy's public URL). Discovery answers with absolute URLs built from it.
    /// Default: the scheme and address the server listens on.
    pub public_url: Option<String>,
    /// Key that signs `next` tokens (at least 32 characters). Default: a random key generated
    /// once and kept in the database, so every node on the database shares it.
    pub server_key: Option<String>,
    /// File holding `server_key`.
    pub server_key_file: Option<PathBuf>,
    /// The key `server_key` replaced: `next` tokens it signed stay valid until
    /// `server_key_previous_until`, so pollers in the middle of a paging run are not broken.
    pub server_key_previous: Option<String>,
    /// File holding `server_key_previous`.
    pub server_key_previous_file: Option<PathBuf>,
    /// Until when (RFC 3339) tokens signed with `server_key_previous` are accepted.
    pub server_key_previous_until: Option<String>,
    /// Proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` and `X-Request-Id`
    /// headers are believed; from any other peer they are ignored. In the environment: comma
    /// separated.
    pub trusted_proxies: Option<Vec<String>>,
    /// The header the trusted proxies write the client's address in: `x-forwarded-for` (default)
    /// or `forwarded` (RFC 7239). Only that one is read.
    pub forwarded_header: Option<String>,
    /// Default request rate of a partner on each node, per second (policy `rate_limit` overrides;
    /// default 200). Also the rate of each anonymous client address.
    pub rate_limit_requests_per_second: Option<u32>,
    /// Default burst of requests above the rate (default 1000).
    pub rate_limit_burst: Option<u32>,
    /// Default objects a partner may add per minute on each node (policy `write_limit`
    /// overrides; default 200000).
    pub write_limit_objects_per_minute: Option<u32>,
    /// Failed password logins per minute for one partner name from one client address before
    /// further attempts from it are refused with 429 (default 10).
    pub login_failures_per_address_and_name: Option<u32>,
    /// Failed password logins per minute for one partner name from all addresses; over it, an
    /// address that failed for the name once gets no further try (default 100).
    pub login_failures_per_name: Option<u32>,
    /// Failed password logins per minute from one client address, for all names (default 300).
    pub login_failures_per_address: Option<u32>,
    /// Bearer token that `/metrics` requires (default: none, open to whoever reaches the port).
    pub metrics_token: Option<String>,
    /// File holding `metrics_token`.
    pub metrics_token_file: Option<PathBuf>,
    /// Seconds a client has to send a request's headers (default 5); then 408.
    pub request_header_timeout_seconds: Option<u64>,
    /// Longest pause, in seconds, while a request body arrives (default 10); then 408 and the
    /// connection is closed. The whole body must arrive within 30 times this.
    pub request_body_timeout_seconds: Option<u64>,
    /// On SIGTERM, seconds `/readyz` answers 503 while the node still serves, so the load
    /// balancer stops sending before the node drains (default 10).
    pub shutdown_grace_seconds: Option<u64>,
    /// Most objects per page (default 1000); larger `limit` values are clamped.
    pub max_page_size: Option<u64>,
    /// Hours a status resource stays readable (default 72; TAXII asks for at least 24).
    pub status_retention_hours: Option<u64>,
    /// Serve collections marked `public` to requests without credentials (default false).
    pub anonymous_read: Option<bool>,
    /// Seconds a verified login stays cached (default 60).
    pub auth_cache_seconds: Option<u64>,
    /// How often the server checks the database for policy and credential changes, in ms
    /// (default 1000).
    pub policy_refresh_ms: Option<u64>,
    /// HTTP worker threads (default: number of CPUs).
    pub workers: Option<usize>,
    /// Database read connections (default 8).
    pub pool_size: Option<u32>,
    /// `text` or `json` log lines (default text).
    pub log_format: Option<String>,
    /// Keep the audit trail (default true).
    pub audit: Option<bool>,
    /// Days audit records are kept; older ones are purged, leaving an anchor (default: forever).
    pub audit_retention_days: Option<u64>,
    /// How often each node runs the feeds' housekeeping (collection retention, expiry counts),
    /// in seconds (default 3600).
    pub feed_housekeeping_seconds: Option<u64>,
    /// Serve the operator console at `/console/` (default false).
    pub console: Option<bool>,
    /// Serve the console on this address instead of beside the TAXII API (for example an
    /// operators-only interface); the TAXII listener then has no `/console/`.
    pub console_listen: Option<String>,
    /// Minutes of inactivity after which a console session ends (default 30). In seconds:
    /// `console_idle_timeout_seconds`, which wins when both are set.
    pub console_idle_minutes: Option<u64>,
    /// Seconds of inactivity after which a console session ends.
    pub console_idle_timeout_seconds: Option<u64>,
    /// Hours without a successful poll after which the console lists a partner as quiet
    /// (default 24; at most 168).
    pub console_quiet_hours: Option<u64>,
}

macro_rules! merge_fields {
    ($base:ident, $over:ident, $($f:ident),*) => { $( if $over.$f.is_some() { $base.$f = $over.$f; } )* };
}

impl Layer {
    /// Fields set in `over` replace those in `self`.
    pub fn merge(mut self, over: Layer) -> Layer {
        merge_fields!(
            self,
            over,
            listen,
            database_url,
            database_url_file,
            durability,
            tls_cert,
            tls_key,
            tls_client_ca,
            tls_crl,
            client_auth,
            tls_reload_seconds,
            behind_tls_proxy,
            public_url,
            server_key,
            server_key_file,
            server_key_previous,
            server_key_previous_file,
            server_key_previous_until,
            trusted_proxies,
            forwarded_header,
            rate_limit_requests_per_second,
            rate_limit_burst,
            write_limit_objects_per_minute,
            login_failures_per_address_and_name,
            login_failures_per_name,
            login_failures_per_address,
            metrics_token,
            metrics_token_file,
            request_header_timeout_seconds,
            request_body_timeout_seconds,
            shutdown_grace_seconds,
            max_page_size,
            status_retention_hours,
            anonymous_read,
            auth_cache_seconds,
            policy_refresh_ms,
            workers,
            pool_size,
            log_format,
            audit,
            audit_retention_days,
            feed_housekeeping_seconds,
            console,
            console_listen,
            console_idle_minutes,
            console_idle_timeout_seconds,
            console_quiet_hours
        );
        self
    }

    /// Reads the `CONCORDIA_*` environment variables.
    pub fn from_env(problems: &mut Vec<String>) -> Layer {
        fn var<T: FromStr>(key: &str, problems: &mut Vec<String>) -> Option<T> {
            let name = format!("CONCORDIA_{}", key.to_ascii_uppercase());
            let value = std::env::var(&name).ok()?;
            match value.parse() {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push(format!("{name}='{value}' is not a valid value"));
                    None
                }
            }
        }
        Layer {
            listen: var("listen", problems),
            database_url: var("database_url", problems),
            database_url_file: var("database_url_file", problems),
            durability: var("durability", problems),
            tls_cert: var("tls_cert", problems),
            tls_key: var("tls_key", problems),
            tls_client_ca: var("tls_client_ca", problems),
            tls_crl: var("tls_crl", problems),
            client_auth: var("client_auth", problems),
            tls_reload_seconds: var("tls_reload_seconds", problems),
            behind_tls_proxy: var("behind_tls_proxy", problems),
            public_url: var("public_url", problems),
            server_key: var("server_key", problems),
            server_key_file: var("server_key_file", problems),
            server_key_previous: var("server_key_previous", problems),
            server_key_previous_file: var("server_key_previous_file", problems),
            server_key_previous_until: var("server_key_previous_until", problems),
            trusted_proxies: var::<String>("trusted_proxies", problems)
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()),
            forwarded_header: var("forwarded_header", problems),
            rate_limit_requests_per_second: var("rate_limit_requests_per_second", problems),
            rate_limit_burst: var("rate_limit_burst", problems),
            write_limit_objects_per_minute: var("write_limit_objects_per_minute", problems),
            login_failures_per_address_and_name: var("login_failures_per_address_and_name", problems),
            login_failures_per_name: var("login_failures_per_name", problems),
            login_failures_per_address: var("login_failures_per_address", problems),
            metrics_token: var("metrics_token", problems),
            metrics_token_file: var("metrics_token_file", problems),
            request_header_timeout_seconds: var("request_header_timeout_seconds", problems),
            request_body_timeout_seconds: var("request_body_timeout_seconds", problems),
            shutdown_grace_seconds: var("shutdown_grace_seconds", problems),
            max_page_size: var("max_page_size", problems),
            status_retention_hours: var("status_retention_hours", problems),
            anonymous_read: var("anonymous_read", problems),
            auth_cache_seconds: var("auth_cache_seconds", problems),
            policy_refresh_ms: var("policy_refresh_ms", problems),
            workers: var("workers", problems),
            pool_size: var("pool_size", problems),
            log_format: var("log_format", problems),
            audit: var("audit", problems),
            audit_retention_days: var("audit_retention_days", problems),
            feed_housekeeping_seconds: var("feed_housekeeping_seconds", problems),
            console: var("console", problems),
            console_listen: var("console_listen", problems),
            console_idle_minutes: var("console_idle_minutes", problems),
            console_idle_timeout_seconds: var("console_idle_timeout_seconds", problems),
            console_quiet_hours: var("console_quiet_hours", problems),
        }
    }
}

/// A secret that never prints.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// A database URL. It prints with its password masked (`check-config`, logs, errors); only
/// [`DatabaseUrl::expose`] gives the real one, to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", mask_url(&self.0))
    }
}

pub use crate::storage::mask_url;
pub use crate::storage::Durability;

/// Whether clients present certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Off,
    Optional,
    Required,
}

/// HTTPS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub crl: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub reload_seconds: u64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    pub durability: Durability,
    pub tls: Option<TlsSettings>,
    pub behind_tls_proxy: bool,
    /// Validated, without a trailing slash.
    pub public_url: Option<String>,
    pub server_key: Option<Secret>,
    /// The key `server_key` replaced, and until when its tokens are accepted.
    pub server_key_previous: Option<(Secret, crate::model::time::Micros)>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub forwarded_header: crate::http::client::ForwardedHeader,
    /// Default request and write limits of partners (and of anonymous clients).
    pub limits: crate::service::limits::Defaults,
    pub login_limits: crate::auth::LoginLimits,
    pub metrics_token: Option<Secret>,
    pub request_header_timeout: std::time::Duration,
    pub request_body_timeout: std::time::Duration,
    pub shutdown_grace: std::time::Duration,
    pub max_page_size: u64,
    pub status_retention_hours: u64,
    pub anonymous_read: bool,
    pub auth_cache_seconds: u64,
    pub policy_refresh_ms: u64,
    pub workers: usize,
    pub pool_size: u32,
    pub json_logs: bool,
    pub audit: bool,
    pub audit_retention_days: Option<u64>,
    pub feed_housekeeping_seconds: u64,
    /// The operator console, when it is on.
    pub console: Option<ConsoleConfig>,
}

/// Where and how the operator console is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// A listener of its own, or `None` beside the TAXII API.
    pub listen: Option<SocketAddr>,
    pub idle_timeout: std::time::Duration,
    pub quiet_hours: u64,
}

impl Config {
    /// Merges file < environment < flags and validates the result.
    pub fn load(file: Option<&std::path::Path>, flags: Layer) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let from_file = match file {
            None => Layer::default(),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
                    problems.push(format!("{}: {e}", path.display()));
                    Layer::default()
                }),
                Err(e) => {
                    problems.push(format!("cannot read config file {}: {e}", path.display()));
                    Layer::default()
                }
            },
        };
        let env = Layer::from_env(&mut problems);
        let l = from_file.merge(env).merge(flags);
        let cfg = Config::validate(l, &mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }

    fn validate(l: Layer, problems: &mut Vec<String>) -> Config {
        let listen = l.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!("listen '{listen}' is not an address such as 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let client_auth = match l.client_auth.as_deref().unwrap_or("off") {
            "off" => ClientAuth::Off,
            "optional" => ClientAuth::Optional,
            "required" => ClientAuth::Required,
            other => {
                problems.push(format!("client_auth '{other}' must be off, optional or required"));
                ClientAuth::Off
            }
        };
        for p in [&l.tls_cert, &l.tls_key, &l.tls_client_ca, &l.tls_crl].into_iter().flatten() {
            if !p.is_file() {
                problems.push(format!("TLS file {} does not exist", p.display()));
            }
        }
        let tls = match (l.tls_cert, l.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert,
                key,
                client_ca: l.tls_client_ca.clone(),
                crl: l.tls_crl.clone(),
                client_auth,
                reload_seconds: l.tls_reload_seconds.unwrap_or(5).max(1),
            }),
            (None, None) => None,
            _ => {
                problems.push("tls_cert and tls_key must be given together".into());
                None
            }
        };
        if client_auth != ClientAuth::Off && (tls.is_none() || l.tls_client_ca.is_none()) {
            problems.push(
                "client_auth optional or required needs HTTPS (tls_cert, tls_key) and tls_client_ca, the CAs whose client certificates are accepted".into(),
            );
        }
        if l.tls_client_ca.is_some() && client_auth == ClientAuth::Off {
            problems.push(
                "tls_client_ca is set but client_auth is off; set client_auth = \"optional\" or \"required\"".into(),
            );
        }
        if l.tls_crl.is_some() && l.tls_client_ca.is_none() {
            problems.push("tls_crl needs tls_client_ca".into());
        }
        if l.audit_retention_days == Some(0) {
            problems.push("audit_retention_days must be at least 1 (leave it out to keep records forever)".into());
        }
        let behind_tls_proxy = l.behind_tls_proxy.unwrap_or(false);
        if tls.is_none() && !behind_tls_proxy && !listen.ip().is_loopback() {
            problems.push(format!(
                "refusing to serve plain HTTP on non-loopback address {listen}: give --tls-cert/--tls-key, or --behind-tls-proxy if a TLS proxy terminates HTTPS"
            ));
        }
        let console_listen = l.console_listen.as_deref().and_then(|a| match a.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.push(format!("console_listen '{a}' is not an address such as 127.0.0.1:8081"));
                None
            }
        });
        if let Some(addr) = console_listen {
            if tls.is_none() && !behind_tls_proxy && !addr.ip().is_loopback() {
                problems.push(format!(
                    "refusing to serve the console over plain HTTP on non-loopback address {addr}: give --tls-cert/--tls-key, or --behind-tls-proxy if a TLS proxy terminates HTTPS"
                ));
            }
            if addr == listen && addr.port() != 0 {
                problems.push(format!(
                    "console_listen {addr} is the TAXII listen address; leave it unset to serve the console there"
                ));
            }
        }
        if l.console_listen.is_some() && l.console != Some(true) {
            problems.push("console_listen is set but the console is off: set console = true".into());
        }
        let idle_seconds = match (l.console_idle_timeout_seconds, l.console_idle_minutes) {
            (Some(s), _) => s,
            (None, Some(m)) => m.saturating_mul(60),
            (None, None) => 1800,
        };
        if idle_seconds == 0 {
            problems.push("console_idle_timeout_seconds must be at least 1".into());
        }
        let quiet_hours = l.console_quiet_hours.unwrap_or(24);
        if !(1..=168).contains(&quiet_hours) {
            problems.push(format!("console_quiet_hours {quiet_hours} must be between 1 and 168"));
        }
        let console = (l.console == Some(true)).then(|| ConsoleConfig {
            listen: console_listen,
            idle_timeout: std::time::Duration::from_secs(idle_seconds.max(1)),
            quiet_hours: quiet_hours.clamp(1, 168),
        });
        let public_url = l.public_url.as_deref().and_then(|u| match parse_public_url(u) {
            Ok(u) => Some(u),
            Err(why) => {
                problems.push(format!("public_url '{u}' {why}"));
                None
            }
        });
        let server_key = secret("server_key", l.server_key, l.server_key_file, problems);
        if server_key.as_ref().is_some_and(|k| k.len() < 32) {
            problems.push("server_key must be at least 32 characters long".into());
        }
        let previous = secret("server_key_previous", l.server_key_previous, l.server_key_previous_file, problems);
        let server_key_previous = match (previous, l.server_key_previous_until.as_deref()) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                problems.push(
                    "server_key_previous and server_key_previous_until go together (the old key, and until when its next tokens are accepted)".into(),
                );
                None
            }
            (Some(k), Some(until)) => {
                if server_key.is_none() {
                    problems.push("server_key_previous needs server_key (the new key)".into());
                }
                if k.len() < 32 {
                    problems.push("server_key_previous must be at least 32 characters long".into());
                }
                match crate::model::time::parse_taxii(until) {
                    Some(t) => Some((Secret(k), t)),
                    None => {
                        problems.push(format!(
                            "server_key_previous_until '{until}' is not an RFC 3339 time such as 2027-01-01T00:00:00Z"
                        ));
                        None
                    }
                }
            }
        };
        let database_url = secret("database_url", l.database_url, l.database_url_file, problems)
            .unwrap_or_else(|| "sqlite://concordia.db".into());
        let durability = match l.durability.as_deref().unwrap_or("normal") {
            "normal" => Durability::Normal,
            "full" => Durability::Full,
            other => {
                problems.push(format!("durability '{other}' must be normal or full"));
                Durability::Normal
            }
        };
        let mut trusted_proxies = Vec::new();
        for p in l.trusted_proxies.unwrap_or_default() {
            match crate::model::policy::parse_network(&p) {
                Ok(net) => trusted_proxies.push(net),
                Err(e) => problems.push(format!("trusted_proxies: {e}")),
            }
        }
        let forwarded_header = match l.forwarded_header.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("x-forwarded-for") => crate::http::client::ForwardedHeader::XForwardedFor,
            Some("forwarded") => crate::http::client::ForwardedHeader::Forwarded,
            Some(other) => {
                problems.push(format!("forwarded_header '{other}' must be x-forwarded-for or forwarded"));
                crate::http::client::ForwardedHeader::XForwardedFor
            }
        };
        let limits = crate::service::limits::Defaults {
            requests_per_second: l.rate_limit_requests_per_second.unwrap_or(200),
            burst: l.rate_limit_burst.unwrap_or(1000),
            objects_per_minute: l.write_limit_objects_per_minute.unwrap_or(200_000),
        };
        if limits.requests_per_second == 0 || limits.burst == 0 || limits.objects_per_minute == 0 {
            problems.push(
                "rate_limit_requests_per_second, rate_limit_burst and write_limit_objects_per_minute must be at least 1".into(),
            );
        }
        let login_limits = crate::auth::LoginLimits {
            per_address_and_name: l.login_failures_per_address_and_name.unwrap_or(10),
            per_name: l.login_failures_per_name.unwrap_or(100),
            per_address: l.login_failures_per_address.unwrap_or(300),
        };
        if login_limits.per_address_and_name == 0 || login_limits.per_name == 0 || login_limits.per_address == 0 {
            problems.push(
                "login_failures_per_address_and_name, login_failures_per_name and login_failures_per_address must be at least 1".into(),
            );
        }
        let metrics_token = secret("metrics_token", l.metrics_token, l.metrics_token_file, problems);
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16 || !t.bytes().all(|c| c.is_ascii_graphic())) {
            problems.push("metrics_token must be at least 16 printable characters without spaces".into());
        }
        let seconds = |v: Option<u64>, default: u64, name: &str, problems: &mut Vec<String>| {
            let v = v.unwrap_or(default);
            if v == 0 || v > 3600 {
                problems.push(format!("{name} must be between 1 and 3600"));
            }
            std::time::Duration::from_secs(v.clamp(1, 3600))
        };
        let request_header_timeout =
            seconds(l.request_header_timeout_seconds, 5, "request_header_timeout_seconds", problems);
        let request_body_timeout =
            seconds(l.request_body_timeout_seconds, 10, "request_body_timeout_seconds", problems);
        let grace = l.shutdown_grace_seconds.unwrap_or(10);
        if grace > 3600 {
            problems.push("shutdown_grace_seconds must be at most 3600".into());
        }
        let shutdown_grace = std::time::Duration::from_secs(grace.min(3600));
        let max_page_size = l.max_page_size.unwrap_or(1000);
        if !(1..=100_000).contains(&max_page_size) {
            problems.push("max_page_size must be between 1 and 100000".into());
        }
        let status_retention_hours = l.status_retention_hours.unwrap_or(72);
        if status_retention_hours < 24 {
            problems.push("status_retention_hours must be at least 24 (TAXII 2.1 §4.3)".into());
        }
        let json_logs = match l.log_format.as_deref().unwrap_or("text") {
            "text" => false,
            "json" => true,
            other => {
                problems.push(format!("log_format '{other}' must be text or json"));
                false
            }
        };
        let workers = l.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
        if workers == 0 || workers > 256 {
            problems.push("workers must be between 1 and 256".into());
        }
        // Two connections per core: more only queue inside the database. Measured with
        // bench/run.sh on 2 cores and PostgreSQL at 1M objects: 4 connections gave a p99 of
        // 12-17 ms on filtered pages at 16 clients, 8 gave 17-21 ms and 2 gave 12-20 ms.
        let pool_size = l.pool_size.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            u32::try_from(cores * 2).unwrap_or(256).clamp(4, 64)
        });
        if pool_size == 0 || pool_size > 256 {
            problems.push("pool_size must be between 1 and 256".into());
        }
        Config {
            listen,
            database_url: DatabaseUrl(database_url),
            durability,
            tls,
            behind_tls_proxy,
            public_url,
            server_key: server_key.map(Secret),
            server_key_previous,
            trusted_proxies,
            forwarded_header,
            limits,
            login_limits,
            metrics_token: metrics_token.map(Secret),
            request_header_timeout,
            request_body_timeout,
            shutdown_grace,
            max_page_size,
            status_retention_hours,
            anonymous_read: l.anonymous_read.unwrap_or(false),
            auth_cache_seconds: l.auth_cache_seconds.unwrap_or(60),
            policy_refresh_ms: l.policy_refresh_ms.unwrap_or(1000).max(50),
            workers,
            pool_size,
            json_logs,
            audit: l.audit.unwrap_or(true),
            audit_retention_days: l.audit_retention_days,
            feed_housekeeping_seconds: l.feed_housekeeping_seconds.unwrap_or(3600).max(1),
            console,
        }
    }
}

/// A secret given directly or in a file (`NAME_file`), never both. The file's content is trimmed.
fn secret(name: &str, value: Option<String>, file: Option<PathBuf>, problems: &mut Vec<String>) -> Option<String> {
    match (value, file) {
        (Some(_), Some(_)) => {
            problems.push(format!("set {name} or {name}_file, not both"));
            None
        }
        (Some(v), None) => Some(v),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(v) => Some(v.trim().to_owned()),
            Err(e) => {
                problems.push(format!("cannot read {name}_file {}: {e}", path.display()));
                None
            }
        },
        (None, None) => None,
    }
}

/// Checks a public base URL: absolute http(s), a host, no credentials, query or fragment.
/// Returns it without a trailing slash (a path prefix, for a proxy that adds one, is kept).
fn parse_public_url(u: &str) -> Result<String, &'static str> {
    let parsed = url::Url::parse(u).map_err(|_| "is not an absolute URL such as https://taxii.example.org")?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("must start with https:// (or http://)");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host name");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or a fragment");
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win() {
        let a = Layer { listen: Some("127.0.0.1:1".into()), max_page_size: Some(5), ..Layer::default() };
        let b = Layer { listen: Some("127.0.0.1:2".into()), ..Layer::default() };
        let m = a.merge(b);
        assert_eq!(m.listen.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(m.max_page_size, Some(5));
    }

    #[test]
    fn public_urls() {
        assert_eq!(parse_public_url("https://taxii.example.org/").as_deref(), Ok("https://taxii.example.org"));
        assert_eq!(parse_public_url("https://h.example:8443/hub/").as_deref(), Ok("https://h.example:8443/hub"));
        assert_eq!(parse_public_url("HTTPS://H.Example").as_deref(), Ok("https://h.example"));
        for bad in ["taxii.example.org", "/alliance/", "ftp://h.example", "https://u:p@h.example", "https://h/?q=1"] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(mask_url("postgres://u:s3cret@db.example:5432/hub"), "postgres://u:***@db.example:5432/hub");
        assert_eq!(mask_url("postgres://u:p@ss@w0rd@db/hub"), "postgres://u:***@db/hub");
        assert_eq!(mask_url("postgres://u:pa?ss#x@db/hub"), "postgres://u:***@db/hub");
        assert_eq!(
            mask_url("postgres://u@db/hub?sslmode=require&password=x1&a=b"),
            "postgres://u@db/hub?sslmode=require&password=***&a=b"
        );
        assert_eq!(mask_url("host=db user=u password='a b' dbname=hub"), "host=db user=u password=*** dbname=hub");
        assert_eq!(mask_url("sqlite:///var/lib/concordia/concordia.db"), "sqlite:///var/lib/concordia/concordia.db");
        let url = DatabaseUrl::new("postgres://u:s3cret@db/hub");
        assert!(!format!("{url} {url:?}").contains("s3cret"));
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "postgres://u:fromfile@db/hub\n").unwrap();
        let mut problems = Vec::new();
        let l = Layer { database_url_file: Some(path.clone()), ..Layer::default() };
        let c = Config::validate(l, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.database_url.expose(), "postgres://u:fromfile@db/hub");
        let l = Layer { database_url: Some("x".into()), database_url_file: Some(path), ..Layer::default() };
        let _ = Config::validate(l, &mut problems);
        assert_eq!(problems, vec!["set database_url or database_url_file, not both".to_owned()]);
    }

    #[test]
    fn every_problem_is_reported() {
        let l = Layer {
            listen: Some("0.0.0.0:8080".into()),
            server_key: Some("short".into()),
            max_page_size: Some(0),
            status_retention_hours: Some(1),
            log_format: Some("xml".into()),
            public_url: Some("example.org".into()),
            ..Layer::default()
        };
        let mut problems = Vec::new();
        let _ = Config::validate(l, &mut problems);
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }
}
