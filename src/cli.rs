//! The command line: `serve`, `migrate`, `apply`, `credential`, `operator`, `access`,
//! `check-config`, `rotate-key`, `audit`, `purge`, `validate`, `import`.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use crate::auth::{hash_password, new_api_key};
use crate::config::{Config, Layer};
use crate::model::access::Principal;
use crate::model::policy::Policy;
use crate::model::time::{format_taxii, now_micros, parse_taxii};
use crate::service::audit::ExportFilter;
use crate::service::audit::Operator;
use crate::service::operator::{self, record_migrations};
use crate::service::Service;
use crate::storage::{self, credentials, Storage, StorageError};

/// Concordia: a TAXII 2.1 server for sharing STIX 2.1 threat intelligence between partners.
#[derive(Debug, Parser)]
#[command(name = "concordia", version, about)]
pub struct Cli {
    /// TOML configuration file (see README: Configuration).
    #[arg(long, global = true, env = "CONCORDIA_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB (default sqlite://concordia.db).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the TAXII 2.1 server.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create or update API roots, partners, groups and collections from a policy file.
    Apply {
        /// The policy file (TOML), e.g. examples/alliance.toml.
        policy: PathBuf,
        /// Show what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Also remove partners (with their credentials) and empty collections absent from the file.
        #[arg(long)]
        prune: bool,
    },
    /// Manage partner credentials (passwords and API keys).
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Manage the operators of the console (accounts separate from partners).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// List the collections a partner can read or write.
    Access {
        /// Partner name.
        partner: String,
    },
    /// Print the merged configuration (secrets masked) and exit non-zero if it is invalid.
    CheckConfig,
    /// Replace the key that signs `next` tokens (kept in the database; with `server_key` in the
    /// configuration, rotate there instead: see README). Tokens signed with the old key stay
    /// valid for the grace period; every node picks the new key up within policy_refresh_ms.
    RotateKey {
        /// Hours tokens signed with the old key stay valid.
        #[arg(long, default_value_t = 24)]
        grace_hours: u64,
        /// Rotate even though the key before the current one is still in its grace period
        /// (its tokens stop working at once).
        #[arg(long)]
        force: bool,
    },
    /// The audit trail: verify, recipients of an object, export, purge.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Remove the object versions older than their collection's retention_days now (every
    /// server node also does this hourly), recorded in the audit trail.
    Purge,
    /// Validate STIX 2.1 files offline (bundles, envelopes, lists or single objects) with the
    /// server's rules; exits non-zero if any object is invalid.
    Validate {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON record per object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bulk-load STIX files (e.g. an ATT&CK release) into a collection, through the same
    /// validation, sharing policy, storage and audit as the server, recorded as added by a
    /// partner (who must be allowed to write the collection, unless --operator).
    Import {
        /// Collection id.
        #[arg(long)]
        collection: String,
        /// The partner the objects are recorded as added by.
        #[arg(long)]
        partner: String,
        /// Load into a collection the partner may not write, as an operator action.
        #[arg(long)]
        operator: bool,
        /// Objects per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Files to load.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every hash chain of the audit trail; exit 1 naming the first broken link.
    Verify,
    /// Every partner that was served an object (or one version of it): when, and through
    /// which credential.
    Recipients {
        /// The STIX id, e.g. indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f.
        object_id: String,
        /// Only this version (the object's `modified`, or `created`).
        #[arg(long)]
        version: Option<String>,
        /// One JSON record per delivery instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write audit records to stdout, for the operator's SIEM.
    Export {
        /// From this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Until this time (RFC 3339, exclusive).
        #[arg(long)]
        until: Option<String>,
        /// Only this partner's requests.
        #[arg(long)]
        partner: Option<String>,
        /// Only requests on this collection (id).
        #[arg(long)]
        collection: Option<String>,
        /// jsonl (one JSON record per line) or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Remove records older than audit_retention_days now (the server also does it hourly).
    Purge,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    /// PEM certificate chain: serve HTTPS (TLS 1.2/1.3).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates are accepted (mutual TLS).
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// PEM CRLs for client certificates.
    #[arg(long)]
    tls_crl: Option<PathBuf>,
    /// Client certificates: off, optional or required.
    #[arg(long)]
    client_auth: Option<String>,
    /// Allow plain HTTP on a non-loopback address because a TLS proxy terminates HTTPS.
    #[arg(long)]
    behind_tls_proxy: bool,
    /// The base URL partners use, e.g. https://taxii.example.org (behind a proxy, the proxy's);
    /// discovery answers with absolute URLs built from it.
    #[arg(long)]
    public_url: Option<String>,
    /// Serve collections marked public to requests without credentials.
    #[arg(long)]
    anonymous_read: bool,
    /// HTTP worker threads.
    #[arg(long)]
    workers: Option<usize>,
    /// Do not apply pending migrations at start.
    #[arg(long)]
    no_migrate: bool,
    /// Start a demo: a fresh concordia-demo.db with the example alliance policy, demo
    /// credentials (printed) and sample STIX objects.
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Add a console operator: a password read from stdin, and/or a client certificate.
    Add {
        /// Operator name (lower case letters, digits, '-', '_', '.').
        name: String,
        /// Read the password from standard input (one line, at least 12 characters).
        #[arg(long, required_unless_present = "certificate")]
        password_stdin: bool,
        /// The operator's client certificate: its sha256:<hex> fingerprint, or a PEM file
        /// (signs in over mutual TLS).
        #[arg(long)]
        certificate: Option<String>,
    },
    /// List the console operators.
    List,
    /// Remove a console operator and end its sessions.
    Remove {
        /// Operator name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialCommand {
    /// Add a password (read from stdin) or generate an API key (printed once) for a partner.
    Add {
        /// Partner name.
        partner: String,
        /// Read the password from standard input (one line).
        #[arg(long, conflicts_with = "api_key", required_unless_present = "api_key")]
        password_stdin: bool,
        /// Generate an API key and print it on standard output (shown only this once).
        #[arg(long)]
        api_key: bool,
        /// A note to tell credentials apart (e.g. "sentinel connector").
        #[arg(long)]
        label: Option<String>,
        /// Expiry time, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List a partner's credentials (never their secrets).
    List {
        /// Partner name.
        partner: String,
    },
    /// Revoke a credential now.
    Revoke {
        /// Credential id (from `credential list`).
        id: String,
    },
    /// Make a credential expire (now, or at --at).
    Expire {
        /// Credential id (from `credential list`).
        id: String,
        /// When, RFC 3339; default now.
        #[arg(long)]
        at: Option<String>,
    },
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: not in journald, files or a log shipper.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli, flags: Layer) -> anyhow::Result<Config> {
    let layer =
        Layer { database_url: cli.database_url.clone(), log_format: cli.log_format.clone(), ..Layer::default() }
            .merge(flags);
    Config::load(cli.config.as_deref(), layer)
        .map_err(|problems| anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - ")))
}

fn open(config: &Config, migrate: bool) -> anyhow::Result<Storage> {
    let options = storage::Options { pool_size: config.pool_size, migrate, durability: config.durability };
    Storage::open(config.database_url.expose(), options)
        .with_context(|| format!("opening database {}", config.database_url))
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    parse_taxii(s).with_context(|| format!("'{s}' is not an RFC 3339 time such as 2027-01-01T00:00:00Z"))
}

fn not_found(what: &str) -> impl Fn(StorageError) -> anyhow::Error + '_ {
    move |e| match e {
        StorageError::NotFound => anyhow::anyhow!("{what} not found"),
        other => anyhow::Error::new(other),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(a) => {
            let flags = Layer {
                listen: a.listen.clone(),
                tls_cert: a.tls_cert.clone(),
                tls_key: a.tls_key.clone(),
                tls_client_ca: a.tls_client_ca.clone(),
                tls_crl: a.tls_crl.clone(),
                client_auth: a.client_auth.clone(),
                behind_tls_proxy: a.behind_tls_proxy.then_some(true),
                public_url: a.public_url.clone(),
                anonymous_read: a.anonymous_read.then_some(true),
                workers: a.workers,
                ..Layer::default()
            };
            let demo_default_db =
                a.demo && cli.database_url.is_none() && std::env::var_os("CONCORDIA_DATABASE_URL").is_none();
            let flags = if demo_default_db {
                Layer { database_url: Some("sqlite://concordia-demo.db".into()), ..flags }
            } else {
                flags
            };
            let config = load_config(&cli, flags)?;
            init_tracing(config.json_logs);
            if demo_default_db {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("concordia-demo.db{suffix}"));
                }
            }
            let storage = open(&config, !a.no_migrate)?;
            let operator = Operator::from_environment(config.audit);
            record_migrations(&storage, &operator).context("recording the migrations")?;
            if a.demo {
                let lines = crate::demo::load(&storage, &operator).context("loading the demo")?;
                let scheme = if config.tls.is_some() { "https" } else { "http" };
                let base = format!("{scheme}://{}", config.listen);
                println!("Concordia demo: example alliance policy loaded from examples/alliance.toml, sample objects in 'Alliance indicators'.");
                println!("Demo credentials (HTTP Basic user = partner name):");
                for l in lines {
                    println!("{l}");
                }
                println!("Try:");
                println!("  curl -u cert-alpha:demo-cert-alpha {base}/taxii2/");
                println!(
                    "  curl -u cert-alpha:demo-cert-alpha {base}/alliance/collections/{}/objects/",
                    crate::demo::ALLIANCE_COLLECTION
                );
                if let Some(console) = &config.console {
                    let hash = hash_password(crate::demo::DEMO_OPERATOR_PASSWORD)
                        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
                    operator::add_operator(&storage, &operator, "demo-operator", Some(&hash), None, now_micros())
                        .context("adding the demo operator")?;
                    let at = console.listen.map_or_else(|| base.clone(), |a| format!("{scheme}://{a}"));
                    println!(
                        "Console: {at}/console/ (operator demo-operator, password {})",
                        crate::demo::DEMO_OPERATOR_PASSWORD
                    );
                }
            }
            actix_web::rt::System::new().block_on(crate::server::run(config, storage))
        }
        Command::Migrate => {
            let config = load_config(&cli, Layer::default())?;
            let storage = open(&config, true)?;
            let applied = storage.migrations_applied();
            record_migrations(&storage, &Operator::from_environment(config.audit))?;
            println!("applied {} migration(s) to {}", applied.len(), config.database_url);
            Ok(())
        }
        Command::Apply { policy, dry_run, prune } => {
            let config = load_config(&cli, Layer::default())?;
            let text = std::fs::read_to_string(policy).with_context(|| format!("reading {}", policy.display()))?;
            let parsed = Policy::from_toml(&text).map_err(|p| {
                anyhow::anyhow!("{} is not a valid policy:\n  - {}", policy.display(), p.join("\n  - "))
            })?;
            let (storage, operator) = open_as_operator(&config)?;
            let plan = operator::apply_policy(&storage, &operator, &parsed, *prune, *dry_run)?;
            print!("{plan}");
            match (*dry_run, plan.changes.len()) {
                (_, 0) => println!("no changes: the database already matches {}", policy.display()),
                (false, n) => println!("applied {n} change(s)"),
                (true, n) => println!("dry run: {n} change(s) would be applied"),
            }
            Ok(())
        }
        Command::Credential(cmd) => {
            let config = load_config(&cli, Layer::default())?;
            let (storage, operator) = open_as_operator(&config)?;
            credential(&storage, &operator, cmd)
        }
        Command::Operator(cmd) => {
            let config = load_config(&cli, Layer::default())?;
            let (storage, operator) = open_as_operator(&config)?;
            operator_command(&storage, &operator, cmd)
        }
        Command::Access { partner } => {
            let config = load_config(&cli, Layer::default())?;
            let storage = open(&config, true)?;
            let rows =
                storage.read_blocking(|c| storage::access::partner_access(c, partner)).map_err(not_found("partner"))?;
            if rows.is_empty() {
                println!("{partner} can access no collection");
            }
            for (root, id, title, rights) in rows {
                let r = match (rights.read, rights.write) {
                    (true, true) => "read+write",
                    (true, false) => "read",
                    _ => "write",
                };
                println!("/{root}/collections/{id}/  {r:<10}  {title}");
            }
            print_certificates(&storage, partner)?;
            Ok(())
        }
        Command::Validate { files, json } => validate(files, *json),
        Command::Import { collection, partner, operator: force, batch, files } => {
            let config = load_config(&cli, Layer::default())?;
            init_tracing(config.json_logs);
            let (storage, operator) = open_as_operator(&config)?;
            let import = Import { collection, partner, operator_override: *force, batch: (*batch).clamp(1, 50_000) };
            run_import(&config, storage, &operator, &import, files)
        }
        Command::Purge => {
            let config = load_config(&cli, Layer::default())?;
            init_tracing(config.json_logs);
            let (storage, operator) = open_as_operator(&config)?;
            let purged = crate::service::feeds::purge_retention(&storage, &operator, now_micros())?;
            if purged.is_empty() {
                println!("no collection has retention_days");
            }
            for p in purged {
                println!("{} ({}): {} object versions purged", p.title, p.collection, p.versions);
            }
            Ok(())
        }
        Command::CheckConfig => {
            let config = load_config(&cli, Layer::default())?;
            println!("{config:#?}");
            Ok(())
        }
        Command::RotateKey { grace_hours, force } => {
            let config = load_config(&cli, Layer::default())?;
            if config.server_key.is_some() {
                bail!(
                    "server_key is set in the configuration, so the database's key is not used: to rotate, move the \
                     current key to server_key_previous, set server_key_previous_until to the end of the grace \
                     period, put a new key in server_key, and restart the nodes one by one"
                );
            }
            let (storage, operator) = open_as_operator(&config)?;
            let keys = storage.read_blocking(storage::load_keys)?;
            if let Some((id, until)) = keys.as_ref().and_then(|k| k.previous()).filter(|(_, u)| *u > now_micros()) {
                if !*force {
                    bail!(
                        "the previous key {id} is still accepted until {}: rotating again now would end its grace \
                         period at once, breaking pollers still paging with it; wait, or pass --force",
                        format_taxii(until)
                    );
                }
            }
            let grace = grace_hours.saturating_mul(3600);
            let (old, new) = operator::rotate_key(&storage, &operator, grace, now_micros())?;
            let until = format_taxii(
                now_micros().saturating_add(i64::try_from(grace.saturating_mul(1_000_000)).unwrap_or(i64::MAX)),
            );
            match old {
                Some(old) => println!(
                    "next-token key rotated: {old} -> {new}; tokens signed with {old} are accepted until {until}"
                ),
                None => println!("next-token key created: {new}"),
            }
            Ok(())
        }
        Command::Audit(cmd) => {
            let config = load_config(&cli, Layer::default())?;
            let (storage, operator) = open_as_operator(&config)?;
            audit(&config, &storage, &operator, cmd)
        }
    }
}

/// Opens the database for an operator action (migrations recorded) and says who acts.
fn open_as_operator(config: &Config) -> anyhow::Result<(Storage, Operator)> {
    let storage = open(config, true)?;
    let operator = Operator::from_environment(config.audit);
    record_migrations(&storage, &operator).context("recording the migrations")?;
    Ok((storage, operator))
}

/// Prints the certificate identities of a partner (from the policy).
fn print_certificates(storage: &Storage, partner: &str) -> anyhow::Result<()> {
    let certs =
        storage.read_blocking(|c| storage::access::partner_certificates(c, partner)).map_err(not_found("partner"))?;
    for (kind, pattern) in certs {
        println!("certificate  {kind:<11}  {pattern}");
    }
    Ok(())
}

fn audit(config: &Config, storage: &Storage, operator: &Operator, cmd: &AuditCommand) -> anyhow::Result<()> {
    use std::io::Write as _;
    match cmd {
        AuditCommand::Verify => {
            let v = crate::service::audit::verify(storage)?;
            if v.breaks.is_empty() {
                println!("audit trail intact: {} record(s) in {} chain(s)", v.records, v.chains);
                return Ok(());
            }
            for b in &v.breaks {
                println!("BROKEN {b}");
            }
            bail!(
                "the audit trail does not verify: {} chain(s) broken; first: {}",
                v.breaks.len(),
                v.breaks.first().map(ToString::to_string).unwrap_or_default()
            )
        }
        AuditCommand::Recipients { object_id, version, json } => {
            let deliveries =
                crate::service::audit::recipients(storage, object_id, version.as_deref()).map_err(|e| match e {
                    StorageError::Conflict(m) => anyhow::anyhow!(m),
                    e => e.into(),
                })?;
            if *json {
                for d in &deliveries {
                    println!("{}", serde_json::to_string(d)?);
                }
                return Ok(());
            }
            if deliveries.is_empty() {
                println!(
                    "no partner was served {object_id}{}",
                    version.as_deref().map(|v| format!(" version {v}")).unwrap_or_default()
                );
                return Ok(());
            }
            println!(
                "{:<20}  {:<27}  {:<11}  {:<44}  {:<27}  request id",
                "partner", "served at", "credential", "credential id", "version"
            );
            for d in &deliveries {
                println!(
                    "{:<20}  {:<27}  {:<11}  {:<44}  {:<27}  {}",
                    d.partner,
                    d.served_at,
                    d.credential_method,
                    d.credential_id,
                    d.version,
                    d.request_id.as_deref().unwrap_or("")
                );
            }
            let mut partners: Vec<&str> = deliveries.iter().map(|d| d.partner.as_str()).collect();
            partners.sort_unstable();
            partners.dedup();
            println!("{} deliveries to {} partner(s): {}", deliveries.len(), partners.len(), partners.join(", "));
            Ok(())
        }
        AuditCommand::Export { since, until, partner, collection, format } => {
            let partner_id = match partner {
                Some(p) => {
                    Some(storage.read_blocking(|c| storage::access::partner_id(c, p)).map_err(not_found("partner"))?)
                }
                None => None,
            };
            let filter = ExportFilter {
                since: since.as_deref().map(parse_time).transpose()?,
                until: until.as_deref().map(parse_time).transpose()?,
                partner_id,
                collection_id: collection.clone(),
            };
            let csv = match format.as_str() {
                "jsonl" => false,
                "csv" => true,
                other => bail!("--format {other}: use jsonl or csv"),
            };
            let out = std::io::stdout();
            let mut out = std::io::BufWriter::new(out.lock());
            if csv {
                writeln!(out, "{}", crate::service::audit::CSV_COLUMNS.join(","))?;
            }
            let io = |e: std::io::Error| StorageError::Unavailable(Box::new(e));
            crate::service::audit::export(storage, &filter, |e| {
                if csv {
                    writeln!(out, "{}", crate::service::audit::csv_line(&e)).map_err(io)
                } else {
                    writeln!(out, "{}", serde_json::to_string(&e).unwrap_or_default()).map_err(io)
                }
            })?;
            out.flush()?;
            Ok(())
        }
        AuditCommand::Purge => {
            let Some(days) = config.audit_retention_days else {
                bail!("audit_retention_days is not set: records are kept forever");
            };
            let span = i64::try_from(days.saturating_mul(86_400_000_000)).unwrap_or(i64::MAX);
            let before = now_micros().saturating_sub(span);
            let by = operator.id.clone();
            let n = storage.write_blocking(|c| crate::service::audit::purge(c, before, &by))?;
            println!("purged {n} audit record(s) older than {days} day(s)");
            Ok(())
        }
    }
}

/// The fingerprint of a certificate given as `sha256:<hex>` or as a PEM file.
fn certificate_fingerprint(given: &str) -> anyhow::Result<String> {
    if let Some(f) = crate::model::policy::parse_fingerprint(given) {
        return Ok(f);
    }
    let pem = std::fs::read(given)
        .with_context(|| format!("'{given}' is neither a sha256:<hex> fingerprint nor a readable PEM file"))?;
    let (_, block) =
        x509_parser::pem::parse_x509_pem(&pem).map_err(|e| anyhow::anyhow!("{given}: not a PEM certificate: {e}"))?;
    Ok(crate::tls::peer_certificate(&block.contents).fingerprint)
}

fn operator_command(storage: &Storage, operator: &Operator, cmd: &OperatorCommand) -> anyhow::Result<()> {
    match cmd {
        OperatorCommand::Add { name, password_stdin, certificate } => {
            if !crate::model::policy::valid_name(name) {
                bail!("'{name}' is not a valid operator name: use 1-64 lower case letters, digits, '-', '_' or '.'");
            }
            let hash = if *password_stdin {
                if std::io::stdin().is_terminal() {
                    eprintln!("password for operator {name}: ");
                }
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
                let password = line.trim_end_matches(['\n', '\r']);
                if password.chars().count() < 12 {
                    bail!("an operator's password must be at least 12 characters long");
                }
                Some(hash_password(password).map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?)
            } else {
                None
            };
            let certificate = certificate.as_deref().map(certificate_fingerprint).transpose()?;
            operator::add_operator(storage, operator, name, hash.as_deref(), certificate.as_deref(), now_micros())
                .map_err(|e| match e {
                    StorageError::Conflict(m) => anyhow::anyhow!(m),
                    e => e.into(),
                })?;
            println!("added operator {name}");
            Ok(())
        }
        OperatorCommand::List => {
            let list = storage.read_blocking(storage::operators::list)?;
            println!("{:<24}  {:<8}  {:<27}  certificate", "name", "password", "created");
            for o in list {
                println!(
                    "{:<24}  {:<8}  {:<27}  {}",
                    o.name,
                    if o.has_password { "yes" } else { "no" },
                    format_taxii(o.created_at),
                    o.certificate.unwrap_or_default()
                );
            }
            Ok(())
        }
        OperatorCommand::Remove { name } => {
            operator::remove_operator(storage, operator, name).map_err(not_found("operator"))?;
            println!("removed operator {name} (its console sessions ended)");
            Ok(())
        }
    }
}

fn credential(storage: &Storage, operator: &Operator, cmd: &CredentialCommand) -> anyhow::Result<()> {
    match cmd {
        CredentialCommand::Add { partner, password_stdin, api_key, label, expires } => {
            let expires_at = expires.as_deref().map(parse_time).transpose()?;
            let now = now_micros();
            if *password_stdin {
                if std::io::stdin().is_terminal() {
                    eprintln!("password for {partner}: ");
                }
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
                let password = line.trim_end_matches(['\n', '\r']);
                if password.len() < 8 {
                    bail!("the password must be at least 8 characters long");
                }
                if password.starts_with("cnc_") {
                    bail!("passwords must not start with cnc_ (reserved for API keys)");
                }
                let hash = hash_password(password).map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
                let new = credentials::NewCredential {
                    partner,
                    kind: "password",
                    lookup: None,
                    secret_hash: &hash,
                    label: label.as_deref(),
                    now,
                    expires_at,
                };
                let id = operator::add_credential(storage, operator, &new).map_err(not_found("partner"))?;
                eprintln!("added password credential {id} for {partner}");
            } else if *api_key {
                let (key, lookup, digest) = new_api_key();
                let new = credentials::NewCredential {
                    partner,
                    kind: "api_key",
                    lookup: Some(&lookup),
                    secret_hash: &digest,
                    label: label.as_deref(),
                    now,
                    expires_at,
                };
                let id = operator::add_credential(storage, operator, &new).map_err(not_found("partner"))?;
                eprintln!("added API key credential {id} for {partner}; the key is shown only now:");
                println!("{key}");
            }
            Ok(())
        }
        CredentialCommand::List { partner } => {
            let list = storage.read_blocking(|c| credentials::list(c, partner)).map_err(not_found("partner"))?;
            let now = now_micros();
            println!("{:<36}  {:<11}  {:<8}  {:<27}  label", "id", "kind", "state", "expires");
            for c in list {
                let state = if c.revoked_at.is_some() {
                    "revoked"
                } else if c.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<36}  {:<11}  {:<8}  {:<27}  {}",
                    c.id,
                    c.kind,
                    state,
                    c.expires_at.map(format_taxii).unwrap_or_else(|| "never".into()),
                    c.label.unwrap_or_default()
                );
            }
            // Certificate identities come from the policy (`certificates`, `certificate_subjects`,
            // `certificate_sans`); they are valid while the certificate is (checked at handshake).
            let certs = storage
                .read_blocking(|c| storage::access::partner_certificates(c, partner))
                .map_err(not_found("partner"))?;
            for (kind, pattern) in certs {
                println!(
                    "{:<36}  {:<11}  {:<8}  {:<27}  from the policy ({kind})",
                    pattern, "certificate", "active", "certificate's own"
                );
            }
            Ok(())
        }
        CredentialCommand::Revoke { id } => {
            operator::revoke_credential(storage, operator, id, now_micros()).map_err(not_found("active credential"))?;
            println!("revoked {id}");
            Ok(())
        }
        CredentialCommand::Expire { id, at } => {
            let at = match at {
                Some(t) => parse_time(t)?,
                None => now_micros(),
            };
            operator::expire_credential(storage, operator, id, at).map_err(not_found("credential"))?;
            println!("credential {id} expires at {}", format_taxii(at));
            Ok(())
        }
    }
}

/// Reads a STIX file and returns its objects as raw JSON texts: a bundle or envelope
/// (`{"objects": [...]}`, top-level member names unique), a JSON list of objects, or one object.
fn read_objects(text: &str) -> anyhow::Result<Vec<&serde_json::value::RawValue>> {
    use serde_json::value::RawValue;
    if text.trim_start().starts_with('[') {
        return Ok(serde_json::from_str::<Vec<&RawValue>>(text)?);
    }
    match crate::model::ijson::read_container(text) {
        Ok(Some(objects)) => Ok(objects),
        // An object without an `objects` list is one STIX object.
        Ok(None) | Err(crate::model::ijson::ContainerError::NotAnEnvelope(_)) => {
            Ok(vec![serde_json::from_str::<&RawValue>(text)?])
        }
        Err(e) => Err(e.into()),
    }
}

fn validate(files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let validator = crate::stix::Validator::new().map_err(|e| anyhow::anyhow!("loading the STIX schemas: {e}"))?;
    let (mut total, mut invalid, mut unreadable) = (0usize, 0usize, 0usize);
    let mut records = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                unreadable += 1;
                continue;
            }
        };
        let objects = match read_objects(&text) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{}: cannot be read as STIX: {e}", file.display());
                unreadable += 1;
                continue;
            }
        };
        for (index, raw) in objects.iter().enumerate() {
            total += 1;
            let (id, problems) = match validator.check_object(None, raw.get(), index) {
                Ok((head, _)) => (Some(head.id), Vec::new()),
                Err(r) => (Some(r.id).filter(|id| !id.starts_with("objects[")), r.problems),
            };
            if !problems.is_empty() {
                invalid += 1;
            }
            if json {
                records.push(serde_json::json!({
                    "file": file.display().to_string(),
                    "index": index,
                    "id": id,
                    "valid": problems.is_empty(),
                    "problems": problems,
                }));
            } else if !problems.is_empty() {
                println!("{} objects[{index}] {}:", file.display(), id.as_deref().unwrap_or("(no id)"));
                for p in &problems {
                    println!("  - {p}");
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        println!("{total} object(s) checked, {invalid} invalid, {unreadable} unreadable file(s)");
    }
    if invalid > 0 || unreadable > 0 {
        bail!("{invalid} invalid object(s), {unreadable} unreadable file(s)");
    }
    Ok(())
}

/// What `concordia import` loads, where, and as whom.
struct Import<'a> {
    collection: &'a str,
    partner: &'a str,
    operator_override: bool,
    batch: usize,
}

fn run_import(
    config: &Config,
    storage: Storage,
    operator: &Operator,
    import: &Import<'_>,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    let texts: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).map(|t| (f.clone(), t)).with_context(|| format!("reading {}", f.display())))
        .collect::<anyhow::Result<_>>()?;
    let mut all = Vec::new();
    for (file, text) in &texts {
        let objects = read_objects(text).with_context(|| format!("{} cannot be read as STIX", file.display()))?;
        all.extend(objects.into_iter().map(|o| (file, o)));
    }
    let service = Service::offline(storage.clone(), config.audit)
        .map_err(|e| anyhow::anyhow!("loading the STIX schemas: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(service.refresh(true))?;
    let partner_id =
        storage.read_blocking(|c| storage::access::partner_id(c, import.partner)).map_err(not_found("partner"))?;
    let partner = Principal::Partner { id: partner_id, name: import.partner.to_owned() };
    let title = service
        .view()
        .collection(import.collection)
        .map(|c| c.title.clone())
        .with_context(|| format!("collection {} not found", import.collection))?;
    let bar = indicatif::ProgressBar::new(all.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} objects ({per_sec}, eta {eta}) {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut stored, mut duplicates, mut failed) = (0usize, 0usize, 0u64);
    for chunk in all.chunks(import.batch) {
        let objects: Vec<String> = chunk.iter().map(|(_, raw)| raw.get().to_owned()).collect();
        let status = rt
            .block_on(service.import(operator, &partner, import.operator_override, import.collection, objects))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for f in &status.failures {
            let file = chunk.first().map(|(f, _)| f.display().to_string()).unwrap_or_default();
            bar.suspend(|| eprintln!("{file}: {} {}: {}", f.id, f.version, f.message.as_deref().unwrap_or_default()));
        }
        let present = status.successes.iter().filter(|s| s.message.is_some()).count();
        duplicates += present;
        stored += status.successes.len() - present;
        failed += status.failure_count;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!(
        "imported into '{title}': {stored} stored, {duplicates} already present, {failed} refused (of {})",
        all.len()
    );
    if failed > 0 {
        bail!("{failed} object(s) were refused; see the messages above");
    }
    Ok(())
}
