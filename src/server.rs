//! Builds and runs the HTTP server: state, routes, background refresh, TLS (with mutual TLS and
//! reloads), the audit appender, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;

use crate::auth::{random_secret_hex, Authenticator};
use crate::config::Config;
use crate::http::{HttpSettings, PublicBase};
use crate::model::audit::{AuditKind, AuditRecord};
use crate::model::cursor::KeyRing;
use crate::model::time::now_micros;
use crate::service::audit::Auditor;
use crate::service::{Service, Settings};
use crate::storage::{self, Storage};
use crate::tls::Tls;

/// How often the node anchors the heads of the audit chains in the cluster chain.
const AUDIT_ANCHOR_EVERY: Duration = Duration::from_secs(60);

/// The `next`-token keys: the configured ones (`server_key`, `server_key_previous`), else those
/// kept in the database (created on first use, so all nodes on one database share them, and
/// rotated with `concordia rotate-key`). Returns whether they live in the database.
pub fn key_ring(storage: &Storage, config: &Config) -> anyhow::Result<(KeyRing, bool)> {
    if let Some(k) = &config.server_key {
        let mut ring = KeyRing::new(k.expose().as_bytes());
        if let Some((previous, until)) = &config.server_key_previous {
            ring = ring.with_previous(previous.expose().as_bytes(), *until);
        }
        return Ok((ring, false));
    }
    let candidate = random_secret_hex();
    let ring = storage
        .write_blocking(|c| {
            storage::meta_insert_if_absent(c, "server_key", &candidate)?;
            storage::load_keys(c)
        })
        .context("reading the server key from the database")?
        .unwrap_or_else(|| KeyRing::new(candidate.as_bytes()));
    Ok((ring, true))
}

/// The base of the absolute URLs in discovery: `public_url`, else the address listened on; when
/// that is every address (or a TLS proxy sits in front without `public_url`), the host each
/// request names.
fn public_base(config: &Config, scheme: &'static str, addr: std::net::SocketAddr) -> PublicBase {
    if let Some(url) = &config.public_url {
        return PublicBase::Fixed(url.clone());
    }
    if config.behind_tls_proxy {
        let fallback = format!("https://{addr}");
        tracing::warn!(
            "behind a TLS proxy without public_url: discovery builds its URLs from the Host header the proxy \
             forwards; set public_url (e.g. https://taxii.example.org) to the URL partners use"
        );
        return PublicBase::FromHost { scheme: "https", fallback };
    }
    let fallback = format!("{scheme}://{addr}");
    if addr.ip().is_unspecified() {
        return PublicBase::FromHost { scheme, fallback };
    }
    PublicBase::Fixed(fallback)
}

/// Keeps the TLS files current: reloads them when they change (checked every
/// `tls_reload_seconds`) and at once on SIGHUP.
fn watch_tls(tls: Arc<Tls>, every: Duration) {
    let reload = move |tls: &Tls, force: bool| match tls.reload(force) {
        Ok(true) => tracing::info!("TLS certificate, client CAs and CRLs reloaded"),
        Ok(false) => {}
        Err(e) => tracing::error!(error = format!("{e:#}"), "TLS files not reloaded; the previous ones stay in use"),
    };
    let polled = tls.clone();
    actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(every).await;
            reload(&polled, false);
        }
    });
    actix_web::rt::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be watched; TLS files are reloaded when they change");
            return;
        };
        while hup.recv().await.is_some() {
            reload(&tls, true);
        }
    });
}

/// Reads the client certificate of a mutual-TLS connection once, when it is established, for
/// every request on it (`HttpRequest::conn_data`).
fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    use actix_web::rt::net::TcpStream;
    // TCP_NODELAY: an answer goes out in several writes (a compressed page's last chunk comes
    // after its body), and with Nagle's algorithm the last small write waits for the client's
    // delayed ACK: 40 ms stalls on keep-alive connections. Every write here is a whole answer
    // or a large part of one, so nothing is lost by sending at once.
    if let Some(tcp) = conn.downcast_ref::<TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
    if let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() {
        let (tcp, session) = tls.get_ref();
        let _ = tcp.set_nodelay(true);
        if let Some(cert) = session.peer_certificates().and_then(<[_]>::first) {
            ext.insert(crate::tls::peer_certificate(cert.as_ref()));
        }
    }
}

/// Starts the server and runs it until SIGINT/SIGTERM, finishing in-flight requests and
/// committing the audit records still queued.
pub async fn run(config: Config, storage: Storage) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Requests refused below the routes get TAXII error resources too.
    actix_http::protocol_error::set_error_body(crate::http::error::protocol_error_body);
    let (keys, keys_in_database) = key_ring(&storage, &config)?;
    tracing::info!(key = keys.current_id(), previous = ?keys.previous(), "next-token keys");
    let auth = Authenticator::with_limits(storage.clone(), config.auth_cache_seconds, config.login_limits);
    let settings = Settings {
        keys,
        keys_in_database,
        limits: config.limits,
        max_page_size: config.max_page_size,
        status_retention_hours: config.status_retention_hours,
        anonymous_read: config.anonymous_read,
        audit: config.audit,
    };
    let validator =
        Arc::new(crate::stix::Validator::new().map_err(|e| anyhow::anyhow!("loading the STIX schemas: {e}"))?);
    let auditor = if config.audit {
        Auditor::start(storage.clone(), AUDIT_ANCHOR_EVERY).await.context("starting the audit trail")?
    } else {
        Auditor::disabled()
    };
    let service = Arc::new(Service::new(storage, auth, validator, auditor, settings));
    service.refresh(true).await.context("loading the sharing policy")?;

    // Pick up policy and credential changes made by `concordia apply` / `credential` or by
    // other nodes; purge expired statuses and, with a retention, old audit records.
    let refresher = service.clone();
    let period = Duration::from_millis(config.policy_refresh_ms);
    let retention = config.audit_retention_days;
    let housekeeping =
        (config.feed_housekeeping_seconds.saturating_mul(1000) / period.as_millis().max(1) as u64).max(1);
    actix_web::rt::spawn(async move {
        let mut ticks: u64 = 0;
        let hourly = (3_600_000 / period.as_millis().max(1) as u64).max(1);
        loop {
            actix_web::rt::time::sleep(period).await;
            if let Err(e) = refresher.refresh(false).await {
                tracing::warn!(error = %e, "policy refresh failed");
            }
            ticks += 1;
            if ticks % (600_000 / period.as_millis().max(1) as u64).max(1) == 0 {
                match refresher.purge_statuses().await {
                    Ok(n) if n > 0 => tracing::info!(status.count = n, "purged expired statuses"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "status purge failed"),
                }
            }
            if ticks % housekeeping == 1 % housekeeping {
                // On its own task: a long purge must not hold up policy refreshes (revocations).
                let feeds = refresher.clone();
                if !feeds.housekeeping.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    actix_web::rt::spawn(async move {
                        feeds.housekeep_feeds().await;
                        feeds.housekeeping.store(false, std::sync::atomic::Ordering::Release);
                    });
                }
            }
            if let Some(days) = retention.filter(|_| ticks % hourly == 1) {
                match refresher.purge_audit(days).await {
                    Ok(n) if n > 0 => tracing::info!(record.count = n, "purged audit records past their retention"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "audit purge failed"),
                }
            }
        }
    });

    // Bind first, so that the public base URL can name the real port (port 0 in tests).
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let public = public_base(&config, scheme, addr);
    tracing::info!(public_url = ?public, "absolute URLs in discovery");

    let tls = match &config.tls {
        Some(settings) => {
            // A client certificate refused in the handshake is a failed login too.
            let audit_svc = service.clone();
            let on_refused: crate::tls::OnRefused = Arc::new(move |fingerprint: String, reason: String| {
                // The handshake does not know the client's address; the fingerprint names the
                // certificate.
                tracing::info!(certificate = %fingerprint, reason = %reason, "client certificate refused");
                crate::metrics::get().auth_failures.with_label_values(&["certificate_refused"]).inc();
                if audit_svc.audit.enabled() {
                    audit_svc.audit.record_blocking(AuditRecord {
                        at: now_micros(),
                        kind: AuditKind::AuthFailure.as_str().into(),
                        credential_method: Some("certificate".into()),
                        credential_id: Some(fingerprint),
                        action: "tls_handshake".into(),
                        detail: Some(serde_json::json!({ "reason": reason }).to_string()),
                        ..AuditRecord::default()
                    });
                }
            });
            let tls = Arc::new(Tls::load(settings, Some(on_refused))?);
            watch_tls(tls.clone(), Duration::from_secs(settings.reload_seconds));
            Some(tls)
        }
        None => None,
    };

    let console = config.console.as_ref().map(|c| {
        web::Data::new(Arc::new(crate::service::console::Console::new(
            service.clone(),
            crate::service::console::ConsoleSettings {
                public_origin: config
                    .public_url
                    .as_deref()
                    .and_then(|u| url::Url::parse(u).ok())
                    .map(|u| u.origin().ascii_serialization()),
                idle_timeout: c.idle_timeout,
                quiet_hours: c.quiet_hours,
                login_limits: config.login_limits,
            },
        )))
    });
    // The console beside the TAXII API, unless it has a listener of its own.
    let console_here = console.clone().filter(|_| config.console.as_ref().is_some_and(|c| c.listen.is_none()));
    let data = web::Data::new(service.clone());
    let public = web::Data::new(public);
    let http_settings = web::Data::new(HttpSettings {
        proxies: crate::http::client::TrustedProxies::new(config.trusted_proxies.clone(), config.forwarded_header),
        metrics_token: config.metrics_token.as_ref().map(|t| t.expose().to_owned()),
        body_timeout: config.request_body_timeout,
    });
    crate::metrics::get().ready.set(1);
    let console_settings = http_settings.clone();
    let server = HttpServer::new(move || {
        let app = App::new()
            .app_data(data.clone())
            .app_data(public.clone())
            .app_data(http_settings.clone())
            .wrap(middleware::from_fn(crate::http::request_layer))
            // Outermost: gzip or zstd when Accept-Encoding asks for it (pages compress several
            // times over); the request layer's metrics and audit see the uncompressed answer.
            .wrap(middleware::Compress::default());
        // Registered before the TAXII routes, whose `/{root}/` would take `/console/`.
        let app = match &console_here {
            Some(c) => app.app_data(c.clone()).configure(crate::http::console::configure),
            None => app,
        };
        app.configure(crate::http::configure).default_service(web::to(crate::http::no_route))
    })
    .on_connect(on_connect)
    .workers(config.workers)
    .worker_max_blocking_threads((config.pool_size as usize * 2).max(8))
    .client_request_timeout(config.request_header_timeout)
    // Signals are handled below: SIGTERM first turns /readyz to 503 for the grace period.
    .disable_signals()
    .shutdown_timeout(30);

    let server = match &tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls.server_config())?,
        None => server.listen(listener).with_context(|| format!("listening on {addr}"))?,
    };
    for addr in server.addrs() {
        // Tests and scripts read this line to learn the port when listening on port 0.
        println!("concordia listening on {scheme}://{addr}");
    }
    tracing::info!(listen = %config.listen, tls = config.tls.is_some(), "server started");
    let server = server.run();
    let mut handles = vec![server.handle()];
    // The console on a listener of its own: only the console there.
    let console_server = match (config.console.as_ref().and_then(|c| c.listen), console) {
        (Some(addr), Some(console)) => {
            let listener =
                std::net::TcpListener::bind(addr).with_context(|| format!("binding console_listen {addr}"))?;
            let bound = listener.local_addr().context("reading the console's bound address")?;
            let svc = web::Data::new(service.clone());
            let cs = HttpServer::new(move || {
                App::new()
                    .app_data(svc.clone())
                    .app_data(console_settings.clone())
                    .app_data(console.clone())
                    .wrap(middleware::from_fn(crate::http::request_layer))
                    .wrap(middleware::Compress::default())
                    .configure(crate::http::console::configure)
                    .route("/", web::get().to(crate::http::console::to_front))
                    .default_service(web::to(crate::http::no_route))
            })
            .on_connect(on_connect)
            .workers(1)
            .client_request_timeout(config.request_header_timeout)
            .disable_signals()
            .shutdown_timeout(30);
            let cs = match &tls {
                Some(tls) => cs.listen_rustls_0_23(listener, tls.server_config())?,
                None => cs.listen(listener).with_context(|| format!("listening on {bound}"))?,
            };
            println!("concordia console listening on {scheme}://{bound}");
            tracing::info!(listen = %bound, "console started on its own listener");
            let cs = cs.run();
            handles.push(cs.handle());
            Some(cs)
        }
        _ => None,
    };
    watch_signals(handles, service.clone(), config.shutdown_grace);
    match console_server {
        Some(cs) => {
            let (a, b) = futures_util::future::join(server, cs).await;
            a.context("running the HTTP server")?;
            b.context("running the console's HTTP server")?;
        }
        None => server.await.context("running the HTTP server")?,
    }
    service.audit.close().await;
    tracing::info!("server stopped");
    Ok(())
}

/// SIGTERM (a service manager, an orchestrator): `/readyz` answers 503 at once while the node
/// keeps serving for `grace`, so load balancers stop sending it requests; then it stops
/// accepting connections, finishes the requests in flight (up to 30 s) and commits the queued
/// audit records. SIGINT (Ctrl-C) skips the grace period. A second signal stops at once (still
/// finishing requests in flight).
fn watch_signals(handles: Vec<actix_web::dev::ServerHandle>, service: Arc<Service>, grace: Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    actix_web::rt::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("SIGTERM and SIGINT cannot be watched; stop the server with SIGKILL");
            return;
        };
        let graceful = tokio::select! {
            _ = term.recv() => true,
            _ = int.recv() => false,
        };
        service.start_draining();
        crate::metrics::get().ready.set(0);
        if graceful && !grace.is_zero() {
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "SIGTERM: /readyz now answers 503; draining after the grace period"
            );
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                _ = term.recv() => tracing::info!("second SIGTERM: draining now"),
                _ = int.recv() => tracing::info!("SIGINT: draining now"),
            }
        }
        tracing::info!("draining: no new connections; finishing the requests in flight");
        futures_util::future::join_all(handles.iter().map(|h| h.stop(true))).await;
    });
}
