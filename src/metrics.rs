//! Prometheus metrics: one registry for the process, served at `/metrics`.
//!
//! Like the tracing subscriber, the registry is process-wide (every layer records into it; no
//! layer reads it but the `/metrics` handler). Label values are bounded: route patterns (never
//! raw paths; `unmatched` for the rest), methods (`other` for unusual ones), status codes, and
//! the policy's own names: a partner name or `anonymous`, and only collection ids of the policy
//! (objects are counted only once a request on the collection succeeded).

use std::sync::OnceLock;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric Concordia exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, method and status.
    pub requests: IntCounterVec,
    /// Request latency by route pattern and method.
    pub request_seconds: HistogramVec,
    /// Object versions stored, by collection and partner.
    pub objects_written: IntCounterVec,
    /// Objects refused (validation, sharing policy), by collection and partner.
    pub objects_refused: IntCounterVec,
    /// Objects (or manifest records, versions) served, by collection and partner.
    pub objects_served: IntCounterVec,
    /// Object versions removed by a collection's retention, by collection.
    pub objects_purged: IntCounterVec,
    /// Versions in a `valid_now` derived collection whose `valid_until` passed, by collection.
    pub objects_expired: IntCounterVec,
    /// Failed logins by reason.
    pub auth_failures: IntCounterVec,
    /// Memory-hard password verifications run (the dummy ones for unknown names included).
    pub password_verifications: IntCounter,
    /// Requests refused by a limit: `requests`, `writes`, `logins`, `allow_from`.
    pub limited: IntCounterVec,
    /// Time spent waiting for a database connection.
    pub pool_wait_seconds: Histogram,
    /// Waits for a database connection that gave up (answered 503).
    pub pool_timeouts: IntCounter,
    /// Database connections by state (`idle`, `in_use`).
    pub pool_connections: IntGaugeVec,
    /// Size of the SQLite write-ahead log.
    pub sqlite_wal_bytes: IntGauge,
    /// Time to check one envelope's objects (I-JSON, STIX, sharing policy).
    pub validation_seconds: Histogram,
    /// Audit records waiting for their batch.
    pub audit_queue: IntGauge,
    /// Audit records committed by this node's appender.
    pub audit_records: IntCounter,
    /// 1 while the node serves, 0 while it drains before stopping.
    pub ready: IntGauge,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

/// Latency buckets from 250 µs to 10 s.
const SECONDS: &[f64] = &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

impl Metrics {
    fn build() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let requests = counter(
            &r,
            "concordia_http_requests_total",
            "HTTP requests by route, method and status",
            &["route", "method", "status"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("concordia_http_request_duration_seconds", "HTTP request latency by route and method")
                .buckets(SECONDS.to_vec()),
            &["route", "method"],
        )?;
        r.register(Box::new(request_seconds.clone()))?;
        let objects_written =
            counter(&r, "concordia_objects_written_total", "Object versions stored", &["collection", "partner"])?;
        let objects_refused =
            counter(&r, "concordia_objects_refused_total", "Objects refused on ingest", &["collection", "partner"])?;
        let objects_served = counter(
            &r,
            "concordia_objects_served_total",
            "Objects, manifest records or versions served",
            &["collection", "partner"],
        )?;
        let objects_purged = counter(
            &r,
            "concordia_objects_purged_total",
            "Object versions removed by their collection's retention_days",
            &["collection"],
        )?;
        let objects_expired = counter(
            &r,
            "concordia_objects_expired_total",
            "Versions whose valid_until passed in a derived collection that shows only objects valid now",
            &["collection"],
        )?;
        let auth_failures = counter(&r, "concordia_auth_failures_total", "Failed logins by reason", &["reason"])?;
        let limited = counter(&r, "concordia_limited_total", "Requests refused by a limit", &["limit"])?;
        let password_verifications = IntCounter::new(
            "concordia_password_verifications_total",
            "Memory-hard password verifications run (argon2), dummy ones for unknown names included",
        )?;
        r.register(Box::new(password_verifications.clone()))?;
        let pool_wait_seconds = Histogram::with_opts(
            HistogramOpts::new("concordia_db_pool_wait_seconds", "Time waiting for a database connection")
                .buckets(SECONDS.to_vec()),
        )?;
        r.register(Box::new(pool_wait_seconds.clone()))?;
        let pool_timeouts =
            IntCounter::new("concordia_db_pool_timeouts_total", "Database connection waits that timed out")?;
        r.register(Box::new(pool_timeouts.clone()))?;
        let pool_connections =
            IntGaugeVec::new(Opts::new("concordia_db_pool_connections", "Database connections by state"), &["state"])?;
        r.register(Box::new(pool_connections.clone()))?;
        let sqlite_wal_bytes = IntGauge::new("concordia_sqlite_wal_bytes", "Size of the SQLite write-ahead log")?;
        r.register(Box::new(sqlite_wal_bytes.clone()))?;
        let validation_seconds = Histogram::with_opts(
            HistogramOpts::new("concordia_validation_seconds", "Time to check one envelope's objects")
                .buckets(SECONDS.to_vec()),
        )?;
        r.register(Box::new(validation_seconds.clone()))?;
        let audit_queue = IntGauge::new("concordia_audit_queue", "Audit records waiting for their batch")?;
        r.register(Box::new(audit_queue.clone()))?;
        let audit_records = IntCounter::new("concordia_audit_records_total", "Audit records committed by this node")?;
        r.register(Box::new(audit_records.clone()))?;
        let ready = IntGauge::new("concordia_ready", "1 while the node serves, 0 while it drains")?;
        r.register(Box::new(ready.clone()))?;
        let info = IntGaugeVec::new(Opts::new("concordia_build_info", "Version of this Concordia"), &["version"])?;
        r.register(Box::new(info.clone()))?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(Metrics {
            registry: r,
            requests,
            request_seconds,
            objects_written,
            objects_refused,
            objects_served,
            objects_purged,
            objects_expired,
            auth_failures,
            password_verifications,
            limited,
            pool_wait_seconds,
            pool_timeouts,
            pool_connections,
            sqlite_wal_bytes,
            validation_seconds,
            audit_queue,
            audit_records,
            ready,
        })
    }

    /// The exposition, in Prometheus' text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding gathered families into memory cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The process's metrics. The definitions are fixed (names and labels checked by the tests), so
/// registering them cannot fail at run time; if it ever did, the process stops at once.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| match Metrics::build() {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be registered");
            std::process::abort()
        }
    })
}

/// The Content-Type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_once() {
        let m = get();
        m.requests.with_label_values(&["/taxii2/", "GET", "200"]).inc();
        m.request_seconds.with_label_values(&["/taxii2/", "GET"]).observe(0.001);
        m.objects_written.with_label_values(&["c", "p"]).inc();
        m.objects_refused.with_label_values(&["c", "p"]).inc();
        m.objects_served.with_label_values(&["c", "p"]).inc();
        m.objects_purged.with_label_values(&["c"]).inc();
        m.objects_expired.with_label_values(&["c"]).inc();
        m.auth_failures.with_label_values(&["invalid"]).inc();
        m.limited.with_label_values(&["requests"]).inc();
        m.pool_connections.with_label_values(&["idle"]).set(1);
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "concordia_http_requests_total",
            "concordia_http_request_duration_seconds",
            "concordia_objects_written_total",
            "concordia_objects_refused_total",
            "concordia_objects_served_total",
            "concordia_objects_purged_total",
            "concordia_objects_expired_total",
            "concordia_auth_failures_total",
            "concordia_password_verifications_total",
            "concordia_limited_total",
            "concordia_db_pool_wait_seconds",
            "concordia_db_pool_timeouts_total",
            "concordia_db_pool_connections",
            "concordia_sqlite_wal_bytes",
            "concordia_validation_seconds",
            "concordia_audit_queue",
            "concordia_audit_records_total",
            "concordia_ready",
            "concordia_build_info",
        ] {
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name} in\n{text}");
        }
        assert!(text.contains("concordia_http_requests_total{method=\"GET\",route=\"/taxii2/\",status=\"200\"}"));
    }
}
