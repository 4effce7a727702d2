//! `c24-loadgen` command line: flags, exit codes, printing. The work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use c24_loadgen::Exit;
use c24_loadgen::command::{self, Failure, RunRequest};
use c24_loadgen::live::LiveMode;
use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  passed: every threshold held
  1  a threshold failed (or the run was aborted by abort_on_fail)
  2  the scenario or the command line is wrong
  3  the target could not be reached or provisioned";

const CAPACITY_EXIT_CODES: &str = "\
Exit codes:
  0  a rate held the SLOs (the capacity is reported)
  1  the SLOs broke at every rate tried
  2  the scenario or the command line is wrong
  3  the target could not be reached or provisioned";

#[derive(Parser)]
#[command(
    name = "c24-loadgen",
    version,
    about = "Scripted multi-channel load against a c24 chat core: honest latency, CI gates.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (without --target: against an embedded chat core in a temp dir).
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The scenario file, e.g. scenarios/smoke.toml.
        scenario: PathBuf,
        /// A running chat core, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// Admin token of --target, for provisioning and its server-side figures.
        #[arg(
            long,
            value_name = "T",
            env = "C24_ADMIN_TOKEN",
            hide_env_values = true
        )]
        admin_token: Option<String>,
        /// Worker threads, each its own event loop [default: the number of cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Write the JSON report (schema: loadgen/REPORT.md).
        #[arg(long, value_name = "FILE")]
        report_json: Option<PathBuf>,
        /// Write a JUnit XML file, one test case per threshold.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write an HdrHistogram interval log (V2 deflate), tagged CHANNEL.METRIC.
        #[arg(long, value_name = "FILE")]
        hdr_log: Option<PathBuf>,
        /// Progress display: auto (panel on a terminal, else a line every 5 s), lines, panel, quiet.
        #[arg(long, value_name = "MODE", default_value = "auto")]
        live: String,
        /// Play only shard INDEX of COUNT (e.g. 0/4), for one load split over
        /// several machines; every shard runs the same file with the same
        /// --threads, then `merge` judges the whole.
        #[arg(long, value_name = "INDEX/COUNT", default_value = "0/1")]
        shard: c24_loadgen::run::Shard,
        #[command(flatten)]
        tls: TlsArgs,
        /// Start the embedded core with TLS (https/wss, a self-signed
        /// development certificate this run trusts).
        #[arg(long, conflicts_with = "target")]
        embedded_tls: bool,
        #[command(flatten)]
        pages: PageArgs,
        /// Serve the run's figures so far as OpenMetrics at http://ADDR/metrics
        /// (port 0 picks one; the address is printed on stderr).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// What a variant costs: the scenario against A and B in alternating
    /// windows (ABAB…), B/A of p50/p99/p99.9/throughput with 95% bootstrap
    /// intervals; without --a/--b two embedded cores (see --variant).
    #[command(after_help = EXIT_CODES)]
    Compare {
        /// The scenario file; `overhead.KEY` thresholds judge the B/A ratios.
        scenario: PathBuf,
        /// Baseline target, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL", requires = "b")]
        a: Option<String>,
        /// Variant target, e.g. https://127.0.0.1:8443.
        #[arg(long, value_name = "URL", requires = "a")]
        b: Option<String>,
        /// Admin token of --a [default: C24_ADMIN_TOKEN].
        #[arg(
            long,
            value_name = "T",
            env = "C24_ADMIN_TOKEN",
            hide_env_values = true
        )]
        admin_token_a: Option<String>,
        /// Admin token of --b [default: the one of --a].
        #[arg(long, value_name = "T")]
        admin_token_b: Option<String>,
        /// Embedded variants: at-rest (A --no-at-rest-encryption, B encrypted)
        /// or tls (A plain, B https/wss).
        #[arg(
            long,
            value_name = "V",
            default_value = "at-rest",
            conflicts_with = "a"
        )]
        variant: c24_loadgen::compare::Variant,
        /// A/B window pairs.
        #[arg(long, value_name = "N", default_value_t = 10)]
        pairs: usize,
        /// Traffic per window (the scenario's first WINDOW of arrivals).
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = c24_api::units::parse_duration)]
        window: std::time::Duration,
        /// Worker threads [default: the number of cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Seed of the bootstrap [default: the scenario's seed].
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Write the JSON report (schema: loadgen/REPORT.md).
        #[arg(long, value_name = "FILE")]
        report_json: Option<PathBuf>,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        pages: PageArgs,
    },
    /// The highest arrival rate that holds the SLOs: raise the rate step by
    /// step, then bisect; reports the latency-versus-rate curve.
    #[command(after_help = CAPACITY_EXIT_CODES)]
    Capacity {
        /// The scenario file (an open model; its stages are replaced by each probe's rate).
        scenario: PathBuf,
        /// A running chat core [default: an embedded one].
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        #[arg(
            long,
            value_name = "T",
            env = "C24_ADMIN_TOKEN",
            hide_env_values = true
        )]
        admin_token: Option<String>,
        /// An SLO in threshold syntax, e.g. "webchat.ack.p99 < 50ms"; may be repeated.
        #[arg(long = "slo", value_name = "KEY OP BOUND", required = true)]
        slos: Vec<String>,
        /// A channel mix to search, e.g. webchat=0.6,whatsapp=0.4; may be
        /// repeated [default: the scenario's own].
        #[arg(long = "mix", value_name = "CHANNEL=SHARE,...")]
        mixes: Vec<String>,
        /// First rate tried, conversations per second.
        #[arg(long, value_name = "R", default_value_t = 10.0)]
        start_rate: f64,
        /// Each raising step multiplies the rate by this.
        #[arg(long, value_name = "F", default_value_t = 2.0)]
        factor: f64,
        /// Never try above this rate.
        #[arg(long, value_name = "R", default_value_t = 100_000.0)]
        max_rate: f64,
        /// Bisection probes once a rate broke.
        #[arg(long, value_name = "N", default_value_t = 5)]
        bisections: u32,
        /// Stop bisecting when (broke − held) / held is below this.
        #[arg(long, value_name = "SHARE", default_value_t = 0.05)]
        resolution: f64,
        /// Traffic per probe.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = c24_api::units::parse_duration)]
        step_duration: std::time::Duration,
        /// Worker threads [default: the number of cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Write the JSON report (schema: loadgen/REPORT.md).
        #[arg(long, value_name = "FILE")]
        report_json: Option<PathBuf>,
        #[command(flatten)]
        tls: TlsArgs,
        /// Start the embedded core with TLS.
        #[arg(long, conflicts_with = "target")]
        embedded_tls: bool,
        #[command(flatten)]
        pages: PageArgs,
    },
    /// Merge the --report-json files of several shards and judge the scenario's thresholds on the whole.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// The scenario file the shards ran (its thresholds are evaluated).
        #[arg(long, value_name = "FILE")]
        scenario: PathBuf,
        /// The shards' JSON reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Write the merged JSON report.
        #[arg(long, value_name = "FILE")]
        report_json: Option<PathBuf>,
        /// Write a JUnit XML file of the merged verdict.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        #[command(flatten)]
        pages: PageArgs,
    },
    /// Replay a recorded traffic trace (GET /admin/v1/traffic/trace, JSONL) with its timing and shape.
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The trace: one TraceRecord JSON object per line.
        trace: PathBuf,
        /// Playback speed: 2.0 plays the trace in half its recorded time.
        #[arg(long, value_name = "X", default_value_t = 1.0)]
        speed: f64,
        /// TRACE_TENANT=TARGET_TENANT[,...], or a file of such lines or a JSON object;
        /// unmapped trace tenants get a tenant provisioned each.
        #[arg(long, value_name = "FILE-OR-PAIRS")]
        tenants_map: Option<String>,
        /// The mapped target tenants' credentials: a JSON array of POST /admin/v1/tenants answers.
        #[arg(long, value_name = "FILE")]
        credentials: Option<PathBuf>,
        /// A running chat core (without it: an embedded one in a temp dir).
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// Admin token of --target (for provisioning tenants).
        #[arg(
            long,
            value_name = "T",
            env = "C24_ADMIN_TOKEN",
            hide_env_values = true
        )]
        admin_token: Option<String>,
        /// Worker threads [default: the number of cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// A threshold KEY=CHECK, as in a scenario's [thresholds] (repeatable), e.g. "webchat.ack.p99=< 50ms".
        #[arg(long = "threshold", value_name = "KEY=CHECK")]
        thresholds: Vec<String>,
        /// Longest wait for one answer.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = c24_api::units::parse_duration)]
        timeout: std::time::Duration,
        /// How long conversations may run past the trace's end.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = c24_api::units::parse_duration)]
        grace: std::time::Duration,
        /// Write the JSON report (schema: loadgen/REPORT.md).
        #[arg(long, value_name = "FILE")]
        report_json: Option<PathBuf>,
        /// Write a JUnit XML file, one test case per threshold.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Check a scenario file without running it; errors name file, line and key.
    #[command(after_help = EXIT_CODES)]
    Validate { file: PathBuf },
    /// A trivial HTTP/1.1 target: 200 to any request, bodies drained.
    Sink {
        /// Address to listen on, e.g. 127.0.0.1:9000 (port 0 picks one and prints it).
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Stop answering for this many milliseconds ...
        #[arg(long, value_name = "MS", requires = "stall_every")]
        stall_ms: Option<u64>,
        /// ... every DURATION (e.g. 2s).
        #[arg(long, value_name = "DURATION", requires = "stall_ms", value_parser = c24_api::units::parse_duration)]
        stall_every: Option<std::time::Duration>,
        /// Worker threads [default: the number of cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Plain HTTP/1.1 POSTs over keep-alive connections, full speed or at --rate.
    #[command(after_help = EXIT_CODES)]
    Bench {
        /// e.g. http://127.0.0.1:9000/
        url: String,
        /// Connections.
        #[arg(short = 'c', long, value_name = "CONNECTIONS", default_value_t = 50)]
        connections: usize,
        /// How long, e.g. 10s.
        #[arg(short = 'd', long, value_name = "DURATION", default_value = "10s", value_parser = c24_api::units::parse_duration)]
        duration: std::time::Duration,
        /// Requests per second in total, each due at start + n/rate (default: as fast as possible).
        #[arg(long, value_name = "R")]
        rate: Option<f64>,
        /// Request body size in bytes.
        #[arg(long, value_name = "N", default_value_t = 1024)]
        body_bytes: usize,
        /// Threads, each its own event loop (like wrk -t).
        #[arg(short = 't', long, value_name = "N", default_value_t = 1)]
        threads: usize,
        /// Longest wait for one answer, e.g. 5s.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = c24_api::units::parse_duration)]
        timeout: std::time::Duration,
        /// Write the JSON report here.
        #[arg(long, value_name = "FILE")]
        report_json: Option<PathBuf>,
    },
}

/// The human-facing reports.
#[derive(clap::Args, Debug, Clone, Default)]
struct PageArgs {
    /// Write one self-contained HTML page with charts (no network needed to view it).
    #[arg(long, value_name = "FILE")]
    report_html: Option<PathBuf>,
    /// Write a Markdown summary for a CI job summary (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    summary_md: Option<PathBuf>,
}

/// Trust for `https://`/`wss://` targets.
#[derive(clap::Args, Debug, Clone, Default)]
struct TlsArgs {
    /// Trust the CA certificate(s) in this PEM file as well as the system's
    /// roots (e.g. a core's dev-cert.pem); may be repeated.
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,
    /// Accept any server certificate. Only for a throwaway test target.
    #[arg(long)]
    insecure: bool,
}

impl TlsArgs {
    fn options(&self) -> c24_loadgen::tls::TlsOptions {
        c24_loadgen::tls::TlsOptions {
            ca_files: self.ca_files.clone(),
            insecure: self.insecure,
        }
    }
}

/// `--threads`, or one per core.
fn default_threads(threads: Option<usize>) -> usize {
    threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, 256)
}

fn exit(e: Exit) -> ExitCode {
    ExitCode::from(e.code() as u8)
}

/// A runtime, or the exit for having none.
fn started(
    rt: std::io::Result<tokio::runtime::Runtime>,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    rt.map_err(|e| {
        eprintln!("cannot start the runtime: {e}");
        exit(Exit::Unreachable)
    })
}

/// Runs a command's future on a fresh runtime, then [`finish`]es it.
fn on_runtime(work: impl Future<Output = Result<(String, Exit), Failure>>) -> ExitCode {
    match started(tokio::runtime::Runtime::new()) {
        Ok(rt) => finish(rt.block_on(work)),
        Err(code) => code,
    }
}

/// A command's end: its summary on stdout and its verdict's exit code, or
/// its error on stderr and the exit code for it.
fn finish(result: Result<(String, Exit), Failure>) -> ExitCode {
    match result {
        Ok((summary, verdict)) => {
            print!("{summary}");
            exit(verdict)
        }
        Err(e) => failed(&e),
    }
}

fn failed(e: &Failure) -> ExitCode {
    eprintln!("{e}");
    exit(e.exit())
}

fn sink(
    listen: std::net::SocketAddr,
    stall_ms: Option<u64>,
    stall_every: Option<std::time::Duration>,
    threads: Option<usize>,
) -> ExitCode {
    let stall = match (stall_ms, stall_every) {
        (Some(ms), Some(every)) => Some(c24_loadgen::sink::Stall {
            stall: std::time::Duration::from_millis(ms),
            every,
        }),
        _ => None,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let rt = match started(builder.enable_all().build()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let listener = match c24_loadgen::sink::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("--listen {listen}: {e}");
                return exit(Exit::Invalid);
            }
        };
        match listener.local_addr() {
            Ok(a) => println!("c24-loadgen sink listening on http://{a}"),
            Err(e) => eprintln!("sink: {e}"),
        }
        tokio::select! {
            r = c24_loadgen::sink::serve(listener, stall) => {
                if let Err(e) = r {
                    eprintln!("sink: {e}");
                    return exit(Exit::Unreachable);
                }
                exit(Exit::Passed)
            }
            _ = tokio::signal::ctrl_c() => exit(Exit::Passed),
        }
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap's own code: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("C24_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // Thousands of sockets need as many descriptors; a failure only limits scale.
    if c24_loadgen::limits::raise_open_file_limit().is_none() {
        tracing::debug!("could not read or raise the open-file limit");
    }
    match cli.command {
        Command::Sink {
            listen,
            stall_ms,
            stall_every,
            threads,
        } => sink(listen, stall_ms, stall_every, threads),
        Command::Bench {
            url,
            connections,
            duration,
            rate,
            body_bytes,
            threads,
            timeout,
            report_json,
        } => {
            let cfg = c24_loadgen::bench::BenchConfig {
                url,
                connections,
                duration,
                rate,
                body_bytes,
                threads,
                timeout,
            };
            match c24_loadgen::bench::run(&cfg) {
                Ok(report) => {
                    print!("{}", c24_loadgen::bench::render(&report));
                    if let Some(p) = report_json {
                        let text = match serde_json::to_string_pretty(&report) {
                            Ok(t) => t,
                            Err(e) => {
                                eprintln!("encoding the report: {e}");
                                return exit(Exit::Invalid);
                            }
                        };
                        if let Err(e) = std::fs::write(&p, text + "\n") {
                            eprintln!("--report-json {}: {e}", p.display());
                            return exit(Exit::Invalid);
                        }
                    }
                    exit(Exit::Passed)
                }
                Err(e) => {
                    eprintln!("{e}");
                    exit(match e {
                        c24_loadgen::bench::BenchError::Usage(_) => Exit::Invalid,
                        c24_loadgen::bench::BenchError::Unreachable(_) => Exit::Unreachable,
                    })
                }
            }
        }
        Command::Merge {
            scenario,
            reports,
            report_json,
            junit,
            pages,
        } => finish(
            command::merge_with(
                &scenario,
                &reports,
                report_json.as_deref(),
                junit.as_deref(),
                pages.report_html.as_deref(),
                pages.summary_md.as_deref(),
            )
            .map(|done| (done.summary, done.exit)),
        ),
        Command::Compare {
            scenario,
            a,
            b,
            admin_token_a,
            admin_token_b,
            variant,
            pairs,
            window,
            threads,
            seed,
            report_json,
            tls,
            pages,
        } => {
            let admin_token_b = admin_token_b.or_else(|| admin_token_a.clone());
            let (admin_token_a, admin_token_b) = if a.is_some() {
                (admin_token_a, admin_token_b)
            } else {
                (None, None)
            };
            let req = c24_loadgen::compare::CompareRequest {
                scenario,
                a,
                b,
                admin_token_a,
                admin_token_b,
                tls: tls.options(),
                variant,
                pairs,
                window,
                threads: default_threads(threads),
                seed,
                report_json,
                report_html: pages.report_html,
                summary_md: pages.summary_md,
                progress: true,
            };
            on_runtime(async {
                c24_loadgen::compare::run(&req)
                    .await
                    .map(|done| (done.summary, done.exit))
            })
        }
        Command::Capacity {
            scenario,
            target,
            admin_token,
            slos,
            mixes,
            start_rate,
            factor,
            max_rate,
            bisections,
            resolution,
            step_duration,
            threads,
            report_json,
            tls,
            embedded_tls,
            pages,
        } => {
            let admin_token = if target.is_some() { admin_token } else { None };
            let req = c24_loadgen::capacity::CapacityRequest {
                scenario,
                target,
                admin_token,
                tls: tls.options(),
                embedded: c24_loadgen::provision::EmbeddedOptions {
                    tls: embedded_tls,
                    ..Default::default()
                },
                slos,
                mixes,
                search: c24_loadgen::capacity::search::SearchPlan {
                    start: start_rate,
                    factor,
                    max: max_rate,
                    bisections,
                    resolution,
                },
                step: step_duration,
                threads: default_threads(threads),
                report_json,
                report_html: pages.report_html,
                summary_md: pages.summary_md,
                progress: true,
            };
            on_runtime(async {
                c24_loadgen::capacity::run(&req)
                    .await
                    .map(|done| (done.summary, done.exit))
            })
        }
        Command::Replay {
            trace,
            speed,
            tenants_map,
            credentials,
            target,
            admin_token,
            threads,
            thresholds,
            timeout,
            grace,
            report_json,
            junit,
        } => {
            let threads = default_threads(threads);
            let req = c24_loadgen::replay::ReplayRequest {
                trace,
                speed,
                tenants_map,
                credentials,
                target,
                admin_token,
                threads,
                thresholds,
                timeout,
                grace,
                report_json,
                junit,
            };
            on_runtime(async {
                c24_loadgen::replay::run(&req)
                    .await
                    .map(|done| (done.finished.summary, done.finished.exit))
            })
        }
        Command::Validate { file } => match command::validate(&file) {
            Ok(plan) => {
                println!(
                    "{}: ok ({} scenario(s), {} threshold(s), {:.0}s of traffic)",
                    file.display(),
                    plan.scenarios.len(),
                    plan.thresholds.len(),
                    plan.duration.as_secs_f64()
                );
                exit(Exit::Passed)
            }
            Err(e) => failed(&e),
        },
        Command::Run {
            scenario,
            target,
            admin_token,
            threads,
            report_json,
            junit,
            hdr_log,
            live,
            shard,
            tls,
            embedded_tls,
            pages,
            metrics_listen,
        } => {
            let extras = command::RunExtras {
                tls: tls.options(),
                embedded: c24_loadgen::provision::EmbeddedOptions {
                    tls: embedded_tls,
                    ..Default::default()
                },
                report_html: pages.report_html,
                summary_md: pages.summary_md,
                metrics_listen,
            };
            let live = match live.as_str() {
                "auto" => LiveMode::detect(),
                "lines" => LiveMode::Lines,
                "panel" => LiveMode::Panel,
                "quiet" => LiveMode::Quiet,
                other => {
                    eprintln!("--live {other}: use auto, lines, panel or quiet");
                    return exit(Exit::Invalid);
                }
            };
            let req = RunRequest {
                scenario,
                target,
                admin_token,
                threads: default_threads(threads),
                report_json,
                junit,
                hdr_log,
                live,
                shard,
            };
            on_runtime(async {
                command::run_with(&req, &extras)
                    .await
                    .map(|done| (done.summary, done.exit))
            })
        }
    }
}
