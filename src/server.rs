//! Builds and runs the HTTP server: state, routes, background refresh, TLS, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;

use crate::auth::{random_secret_hex, Authenticator};
use crate::config::Config;
use crate::http::PublicBase;
use crate::service::{Service, Settings};
use crate::storage::{self, Storage};

/// Opens the database and returns the `next`-token key: the configured one, else the key kept
/// in the database (created on first use, so all nodes on one database share it).
pub fn server_key(storage: &Storage, config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(k) = &config.server_key {
        return Ok(k.expose().as_bytes().to_vec());
    }
    let candidate = random_secret_hex();
    let key = storage
        .write_blocking(|c| storage::meta_insert_if_absent(c, "server_key", &candidate))
        .context("reading the server key from the database")?;
    Ok(key.into_bytes())
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the private key in {}", key.display()))?;
    // TLS 1.3 and 1.2 with rustls' AEAD-only suites; 0-RTT stays off (max_early_data_size = 0, T-004).
    let cfg = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match or are unsupported")?;
    Ok(cfg)
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

/// Starts the server and runs it until SIGINT/SIGTERM, finishing in-flight requests.
pub async fn run(config: Config, storage: Storage) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Requests refused below the routes get TAXII error resources too.
    actix_http::protocol_error::set_error_body(crate::http::error::protocol_error_body);
    let key = server_key(&storage, &config)?;
    let auth = Authenticator::new(storage.clone(), config.auth_cache_seconds);
    let settings = Settings {
        server_key: key,
        max_page_size: config.max_page_size,
        status_retention_hours: config.status_retention_hours,
        anonymous_read: config.anonymous_read,
    };
    let validator =
        Arc::new(crate::stix::Validator::new().map_err(|e| anyhow::anyhow!("loading the STIX schemas: {e}"))?);
    let service = Arc::new(Service::new(storage, auth, validator, settings));
    service.refresh(true).await.context("loading the sharing policy")?;

    // Pick up policy and credential changes made by `concordia apply` / `credential` or by
    // other nodes, and purge expired statuses.
    let refresher = service.clone();
    let period = Duration::from_millis(config.policy_refresh_ms);
    actix_web::rt::spawn(async move {
        let mut ticks: u64 = 0;
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
        }
    });

    // Bind first, so that the public base URL can name the real port (port 0 in tests).
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let public = public_base(&config, scheme, addr);
    tracing::info!(public_url = ?public, "absolute URLs in discovery");

    let data = web::Data::new(service);
    let public = web::Data::new(public);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(public.clone())
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms"))
            .configure(crate::http::configure)
            .default_service(web::to(crate::http::no_route))
    })
    .workers(config.workers)
    .worker_max_blocking_threads((config.pool_size as usize * 2).max(8))
    .shutdown_timeout(30);

    let server = match &config.tls {
        Some((cert, key)) => server.listen_rustls_0_23(listener, tls_config(cert, key)?)?,
        None => server.listen(listener).with_context(|| format!("listening on {addr}"))?,
    };
    for addr in server.addrs() {
        // Tests and scripts read this line to learn the port when listening on port 0.
        println!("concordia listening on {scheme}://{addr}");
    }
    tracing::info!(listen = %config.listen, tls = config.tls.is_some(), "server started");
    server.run().await.context("running the HTTP server")?;
    tracing::info!("server stopped");
    Ok(())
}
