//! `c24-core`: the chat core's command line. Everything else is in the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use c24_chatcore::backup;
use c24_chatcore::clock::{OffsetClock, SystemClock};
use c24_chatcore::crypto::Kek;
use c24_chatcore::{Config, Database, KekSource, TlsConfig};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The c24 reference chat core: web chat, WhatsApp and email ingress with
/// durable, encrypted storage. Without a subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "c24-core", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write an encrypted snapshot of the database (the server may be
    /// running); backups older than 7 days in the folder are deleted.
    Backup {
        #[arg(long, default_value = "./c24-data")]
        data_dir: PathBuf,
        /// Folder the backup is written to.
        #[arg(long)]
        out: PathBuf,
        /// KEK file (else env C24_KEK, else the data dir's kek.b64).
        #[arg(long)]
        kek_file: Option<PathBuf>,
    },
    /// Restore a backup into the data dir (stop the server first). The
    /// keyring stays as it is: tenants whose key was destroyed since stay unreadable.
    Restore {
        #[arg(long, default_value = "./c24-data")]
        data_dir: PathBuf,
        /// The backup file (`.c24bak`).
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        kek_file: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the database (and, if generated, the KEK) lives.
    #[arg(long, default_value = "./c24-data")]
    data_dir: PathBuf,
    /// PostgreSQL instead of SQLite in the data dir: `postgres://user:pass@host:port/db`
    /// (several nodes may share one). Migrates the schema at start; refuses a newer one.
    #[arg(long, env = "C24_DATABASE_URL", hide_env_values = true, value_parser = Database::parse)]
    database: Option<Database>,
    /// A PEM file of CA certificates to trust for PostgreSQL's TLS
    /// certificate besides the system's (with `sslmode=require` in
    /// `--database`); may be repeated. A plain connection is refused for any
    /// host but this machine's.
    #[arg(
        long = "database-ca-file",
        value_name = "PEM",
        env = "C24_DATABASE_CA_FILE"
    )]
    database_ca_files: Vec<PathBuf>,
    /// Bootstrap admin bearer token. Without one, a token is generated and printed.
    #[arg(long, env = "C24_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Key-encryption key file (base64 of 32 bytes). Else env C24_KEK, else one
    /// generated into the data dir.
    #[arg(long)]
    kek_file: Option<PathBuf>,
    /// For measuring encryption overhead only: store bodies and contact fields
    /// unencrypted. The database remembers and refuses to reopen the other way.
    #[arg(long)]
    no_at_rest_encryption: bool,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve TLS with a generated development certificate (written to dev-cert.pem in the data dir).
    #[arg(long)]
    tls_self_signed: bool,
    /// Staff tokens: a TOML file of `[[token]]` entries with name, role
    /// (viewer|operator|admin), sha256 (hex SHA-256 of the token) and optional totp_secret (base32).
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Base32 TOTP secret of the bootstrap admin token (needed for privileged writes).
    #[arg(long, env = "C24_ADMIN_TOTP_SECRET", hide_env_values = true)]
    admin_totp_secret: Option<String>,
    /// Demo and test builds: enable POST /admin/v1/clock/advance to move time forward.
    #[arg(long)]
    dev_clock: bool,
    /// Least notice, in days, before a sub-processor change takes effect.
    #[arg(long, default_value_t = 30)]
    notice_days: u32,
    /// How often the purge worker runs (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_parser = c24_api::units::parse_duration)]
    purge_interval: std::time::Duration,
    /// Folder of `c24-core backup`'s output: counted in the retention report,
    /// and backups older than 7 days there are deleted by the purge worker.
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Do not record the traffic trace (time, tenant, channel, pseudonymous
    /// conversation, direction and size per message) used by `c24-loadgen replay`.
    #[arg(long)]
    no_traffic_trace: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn kek_source(file: &Option<PathBuf>) -> KekSource {
    match (file, std::env::var("C24_KEK")) {
        (Some(p), _) => KekSource::File(p.clone()),
        (None, Ok(v)) if !v.is_empty() => KekSource::Base64(v),
        _ => KekSource::DataDir,
    }
}

fn load_kek(file: &Option<PathBuf>, data_dir: &std::path::Path) -> anyhow::Result<Kek> {
    Ok(match kek_source(file) {
        KekSource::File(p) => Kek::from_file(&p)?,
        KekSource::Base64(v) => Kek::from_base64(&v)?,
        KekSource::DataDir => Kek::from_file(&data_dir.join(c24_chatcore::KEK_FILE))
            .context("no --kek-file or C24_KEK, and none in the data dir")?,
    })
}

fn run_command(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Backup {
            data_dir,
            out,
            kek_file,
        } => {
            let kek = load_kek(&kek_file, &data_dir)?;
            let now = chrono::Utc::now().timestamp_millis();
            let r = backup::create(&data_dir, &out, &kek, now).context("backup failed")?;
            println!("backup written: {} ({} bytes)", r.file.display(), r.bytes);
            for p in r.pruned {
                println!("deleted (older than 7 days): {}", p.display());
            }
        }
        Command::Restore {
            data_dir,
            from,
            kek_file,
        } => {
            let kek = load_kek(&kek_file, &data_dir)?;
            let h = backup::restore(&from, &data_dir, &kek).context("restore failed")?;
            println!(
                "restored backup {} of {} into {}",
                h.id,
                h.created_at,
                data_dir.display()
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        command,
        serve: cli,
    } = Cli::parse();
    init_logs(cli.log_format);
    if let Some(cmd) = command {
        return run_command(cmd);
    }
    let kek = kek_source(&cli.kek_file);
    let tls = match (&cli.tls_cert, &cli.tls_key, cli.tls_self_signed) {
        (Some(cert), Some(key), _) => TlsConfig::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, true) => TlsConfig::SelfSigned,
        _ => TlsConfig::Off,
    };
    let running = c24_chatcore::start(Config {
        listen: cli.listen,
        data_dir: cli.data_dir.clone(),
        database: cli.database.clone().unwrap_or_default(),
        database_ca_files: cli.database_ca_files.clone(),
        admin_token: cli.admin_token.clone(),
        kek,
        at_rest_encryption: !cli.no_at_rest_encryption,
        tls,
        clock: if cli.dev_clock {
            Arc::new(OffsetClock::default())
        } else {
            Arc::new(SystemClock)
        },
        tokens_file: cli.tokens_file.clone(),
        admin_totp_secret: cli.admin_totp_secret.clone(),
        dev_clock: cli.dev_clock,
        notice_days: cli.notice_days,
        purge_interval: cli.purge_interval,
        backup_dir: cli.backup_dir.clone(),
        traffic_trace: !cli.no_traffic_trace,
    })
    .await
    .context("starting c24-core")?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "c24-core listening on {}", running.url())?;
    if running.admin_token_generated() {
        writeln!(out, "admin token (generated): {}", running.admin_token())?;
    }
    out.flush()?;
    drop(out);

    stop_signal().await;
    tracing::info!("stop signal received; flushing");
    running.shutdown().await;
    Ok(())
}
