//! `c24-console`: the command line. Everything else is in the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use c24_api::client::Client;
use c24_console::app::{App, AppOptions};
use c24_console::config::ConfigFile;
use c24_console::keymap::Keymap;
use c24_console::run::{self, LoopOptions, Target};
use c24_console::snapshot::SnapshotView;
use c24_console::store::Store;
use c24_console::theme::{Theme, ThemeName, no_color_from_env};
use clap::Parser;

/// The c24 admin console.
#[derive(Debug, Parser)]
#[command(name = "c24-console", version, about)]
struct Cli {
    /// The chat core, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "C24_ENDPOINT")]
    endpoint: Option<String>,
    /// A staff bearer token.
    #[arg(long, env = "C24_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A named context from the config file (switch in the app with `:ctx`).
    #[arg(long)]
    context: Option<String>,
    /// The config file (default `$XDG_CONFIG_HOME/c24/console.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start an embedded demo core with seeded tenants and live traffic.
    #[arg(long)]
    demo: bool,
    /// How often to poll what the event stream does not push.
    #[arg(long, value_parser = c24_api::units::parse_duration)]
    refresh: Option<Duration>,
    /// At most this many frames a second.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=120))]
    fps: u32,
    /// dark, light or mono (NO_COLOR also selects mono).
    #[arg(long)]
    theme: Option<String>,
    /// Mask tenant names and identifiers (demos, screenshots).
    #[arg(long)]
    redact: bool,
    /// Enable actions: suspend, resume, terminate, purge.
    #[arg(long)]
    write: bool,
    /// Render one frame of a view as text and exit: overview, tenants,
    /// tenant:NAME, throughput, retention, subprocessors, audit, compliance, help.
    #[arg(long, value_name = "VIEW")]
    snapshot: Option<String>,
    /// Width of a snapshot.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u16).range(80..=1000))]
    width: u16,
    /// Height of a snapshot (default 40; the tenants view grows to fit).
    #[arg(long, value_parser = clap::value_parser!(u16).range(24..=10000))]
    height: Option<u16>,
    /// Write logs to this file (never to the terminal).
    #[arg(long, env = "C24_CONSOLE_LOG")]
    log_file: Option<PathBuf>,
}

fn init_logs(path: &Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(p) = path {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("opening the log file {}", p.display()))?;
        tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .init();
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("c24-console: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("c24-console: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    init_logs(&cli.log_file)?;
    if cli.snapshot.is_none()
        && !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal())
    {
        bail!(
            "stdout is not a terminal. The console needs one; for a one-shot text render use \
             --snapshot VIEW (e.g. `c24-console --snapshot overview`)."
        );
    }
    let config_path = cli.config.clone().or_else(ConfigFile::default_path);
    let config = match &config_path {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    let keymap = Keymap::with_overrides(&config.keys)?;
    let theme_name = match cli.theme.as_deref().or(config.theme.as_deref()) {
        Some(t) => ThemeName::parse(t).map_err(anyhow::Error::msg)?,
        None => ThemeName::Dark,
    };
    let theme = Theme::for_env(theme_name, no_color_from_env());
    let refresh = match (cli.refresh, config.refresh.as_deref()) {
        (Some(r), _) => r,
        (None, Some(r)) => {
            c24_api::units::parse_duration(r).map_err(|e| anyhow::anyhow!("config refresh: {e}"))?
        }
        (None, None) => Duration::from_secs(1),
    };
    if refresh < Duration::from_millis(100) {
        bail!("--refresh must be at least 100ms");
    }
    let snapshot_view = cli
        .snapshot
        .as_deref()
        .map(SnapshotView::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;

    let mut demo = None;
    let target = if cli.demo {
        let d = c24_console::demo::Demo::start(snapshot_view.is_none())
            .await
            .context("starting the demo")?;
        let client = Client::new(d.url(), d.admin_token())?;
        let t = Target {
            client,
            endpoint: d.url().to_string(),
            context: Some("demo".into()),
        };
        demo = Some(d);
        t
    } else if let Some(endpoint) = &cli.endpoint {
        let token = cli
            .token
            .clone()
            .context("--endpoint needs --token (or C24_TOKEN)")?;
        Target {
            client: Client::new(endpoint, &token)?,
            endpoint: endpoint.clone(),
            context: None,
        }
    } else if let Some(name) = cli.context.clone().or(config.default_context.clone()) {
        run::context_target(&config, &name).map_err(anyhow::Error::msg)?
    } else {
        bail!(
            "no core to talk to: give --endpoint URL --token TOKEN (or C24_ENDPOINT, C24_TOKEN), \
             --context NAME from {}, or --demo",
            config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the config file".into())
        );
    };

    let opts = AppOptions {
        write: cli.write,
        endpoint: target.endpoint.clone(),
        context: target.context.clone(),
        contexts: config.context_names(),
        demo_totp_secret: demo
            .as_ref()
            .map(|_| c24_console::demo::DEMO_TOTP_SECRET.to_string()),
    };
    let app = App::new(Store::new(refresh, cli.redact), theme, keymap, opts);
    let result = match snapshot_view {
        Some(view) => run::snapshot(
            app,
            target,
            view,
            refresh,
            cli.width,
            cli.height,
            Duration::from_secs(15),
        )
        .await
        .map(|text| print!("{text}")),
        None => {
            run::interactive(
                app,
                target,
                LoopOptions {
                    refresh,
                    fps: cli.fps,
                    redact: cli.redact,
                },
                config,
            )
            .await
        }
    };
    if let Some(d) = demo {
        d.shutdown().await;
    }
    Ok(result?)
}
