//! The `labgate` binary: parse the command line, load the config, run.

use std::process::ExitCode;

use labgate::cli::{describe, notes, Cli, Command, MigrateFrom};
use labgate::config::Config;

/// mimalloc: measurably faster than the system allocator for many small, short-lived
/// allocations across threads (see bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for configuration errors (usage).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let (cli, config_on_command_line) = Cli::parse_noting_config();
    match cli.command {
        None | Some(Command::Run) => match load(&cli) {
            Ok(config) => run(config),
            Err(code) => code,
        },
        Some(Command::Dev) => dev(&cli),
        Some(Command::Healthcheck { ready, insecure }) => healthcheck(&cli, ready, insecure),
        Some(Command::Check { online, json }) => match load(&cli) {
            Ok(config) => {
                let redirect = labgate::app::redirect_uri(&config);
                if !json {
                    print!("{}", describe(&config));
                    println!("\nRedirect URI (paste into the GitLab application): {redirect}");
                    for n in notes(&config) {
                        println!("note: {n}");
                    }
                }
                if !online {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"config": "ok", "redirect_uri": redirect})
                        );
                    } else {
                        println!("\nconfiguration OK (run with --online to ask GitLab too)");
                    }
                    return ExitCode::SUCCESS;
                }
                let checks = match runtime_value(async { labgate::check::run(&config).await }) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("labgate: cannot start the runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let failed = checks.iter().any(labgate::check::Check::failed);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"ok": !failed, "redirect_uri": redirect, "checks": checks})
                    );
                } else {
                    println!("\nOnline checks against {}:", config.gitlab.url);
                    print!("{}", labgate::check::render(&checks));
                    println!(
                        "\n{}",
                        if failed {
                            "problems found"
                        } else {
                            "all checks passed"
                        }
                    );
                }
                if failed {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(code) => code,
        },
        Some(Command::RedirectUri) => match load(&cli) {
            Ok(config) => {
                println!("{}", labgate::app::redirect_uri(&config));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Some(Command::Keygen) => {
            println!("# session.cookie_secret (32 random bytes, base64)");
            println!("{}", labgate::generate_cookie_secret());
            println!();
            println!("# identity signing key (ES256, PKCS#8 PEM): save as a file and list it in identity.signing_key_files");
            print!("{}", labgate::identity::generate_es256_pem());
            ExitCode::SUCCESS
        }
        Some(Command::Migrate {
            from: MigrateFrom::Oauth2Proxy { ref args },
        }) => {
            let config = cli.config.as_deref().filter(|_| config_on_command_line);
            labgate::migrate::command(config, args.as_deref(), notes)
        }
    }
}

#[cfg(feature = "dev")]
fn dev(cli: &Cli) -> ExitCode {
    labgate::telemetry::init(
        labgate::config::LogFormat::Text,
        cli.log_level.as_deref().unwrap_or("info"),
    );
    let config = cli.config.clone();
    runtime_with(None, async move {
        labgate::dev::run_demo(config.as_deref()).await
    })
}

/// The production build (`--no-default-features`, the container image) leaves the demo
/// and its GitLab stand-in out.
#[cfg(not(feature = "dev"))]
fn dev(_cli: &Cli) -> ExitCode {
    eprintln!(
        "labgate: this build has no dev mode: it was built without the \"dev\" cargo feature \
         (as the container image is). Run the demo from a default build: cargo run --release -- dev"
    );
    ExitCode::from(EXIT_CONFIG)
}

/// `labgate healthcheck`: exit 0 healthy, 1 unhealthy (Docker reserves 2), one line
/// either way. The config is read as `run` reads it (file, environment, flags); the
/// published-secret refusal is `run`'s to report, not the probe's.
fn healthcheck(cli: &Cli, ready: bool, insecure: bool) -> ExitCode {
    let config =
        match labgate::config::load(cli.config.as_deref(), std::env::vars(), &cli.overrides()) {
            Ok(c) => c,
            Err(e) => {
                let first = e
                    .problems
                    .first()
                    .map_or_else(String::new, |p| format!(": {}: {}", p.key, p.message));
                let more = match e.problems.len() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more: labgate check lists them)", n - 1),
                };
                eprintln!("unhealthy: configuration error{first}{more}");
                return ExitCode::FAILURE;
            }
        };
    let probe = if ready {
        labgate::healthcheck::Probe::Ready
    } else {
        labgate::healthcheck::Probe::Live
    };
    let result = runtime_value(labgate::healthcheck::check(&config.server, probe, insecure));
    match result {
        // What the listener answered is shown escaped: a stranger on the port must not
        // repaint the line (`\r`, ANSI) into "healthy".
        Ok(Ok(report)) => {
            println!(
                "healthy: {}",
                labgate::telemetry::printable(&report.to_string())
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!(
                "unhealthy: {}",
                labgate::telemetry::printable(&e.to_string())
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    cli.load().map_err(|e| {
        eprintln!(
            "labgate: configuration error{}:",
            if e.problems.len() > 1 { "s" } else { "" }
        );
        for p in &e.problems {
            eprintln!("  {}: {}", p.key, p.message);
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// A work-stealing runtime with `threads` workers (default: one per CPU).
fn runtime_with(
    threads: Option<usize>,
    fut: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("labgate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime_value<T>(fut: impl std::future::Future<Output = T>) -> std::io::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(fut))
}

/// `server.runtime = "work-stealing"`: one runtime whose `server.workers` threads take
/// work from each other.
fn run_work_stealing(config: Config) -> ExitCode {
    runtime_with(Some(config.server.workers), async move {
        let listen = config.server.listen;
        let app = match labgate::app::App::new(config).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("labgate: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("labgate: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%listen, public_url = %app.config.server.public_url, "labgate listening");
        if let Err(code) = start_side_tasks(&app).await {
            return code;
        }
        labgate::server::serve(listener, app, labgate::server::shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Discovery warm-up, the metrics listener and the HTTP redirect listener.
async fn start_side_tasks(app: &std::sync::Arc<labgate::app::App>) -> Result<(), ExitCode> {
    let warm = app.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.gitlab.provider().await {
            tracing::warn!(error = %e, "GitLab discovery failed at start; will retry on first use");
        }
    });
    if let Some(addr) = app.config.server.metrics_listen {
        let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            eprintln!("labgate: cannot listen on server.metrics_listen {addr}: {e}");
            ExitCode::FAILURE
        })?;
        tracing::info!(%addr, "metrics listening");
        tokio::spawn(labgate::admin::serve_metrics(l, app.clone()));
    }
    if let Some(addr) = app.config.server.http_redirect_listen {
        let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            eprintln!("labgate: cannot listen on server.http_redirect_listen {addr}: {e}");
            ExitCode::FAILURE
        })?;
        tokio::spawn(labgate::admin::serve_http_redirect(l, app.clone()));
    }
    Ok(())
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The default layout (`server.runtime = "per-core"`): `server.workers` single-threaded
/// runtimes, each accepting on the one listening socket (no cross-thread hand-offs on the
/// request path; see bench/README.md). Worker 0 runs on this thread, builds the shared
/// state and owns the background tasks.
fn run(config: Config) -> ExitCode {
    labgate::telemetry::init(config.log.format, &config.log.level);
    let listen = config.server.listen;
    if config.server.runtime == labgate::config::RuntimeLayout::WorkStealing {
        return run_work_stealing(config);
    }
    let workers = config.server.workers;
    let rt0 = match current_thread() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("labgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = rt0.block_on(async move {
        let app = labgate::app::App::new(config).await.map_err(|e| {
            eprintln!("labgate: {e}");
            ExitCode::from(EXIT_CONFIG)
        })?;
        let listener = labgate::server::shared_listener(listen).map_err(|e| {
            eprintln!("labgate: cannot listen on {listen}: {e}");
            ExitCode::FAILURE
        })?;
        tracing::info!(%listen, workers, public_url = %app.config.server.public_url, "labgate listening");
        start_side_tasks(&app).await?;
        Ok::<_, ExitCode>((app, listener))
    });
    let (app, listener) = match started {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut threads = Vec::new();
    for worker in 1..workers {
        let app = app.clone();
        let socket = match listener.try_clone() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, worker, "cannot share the listening socket");
                break;
            }
        };
        let spawned = std::thread::Builder::new()
            .name(format!("labgate-{worker}"))
            .spawn(move || {
                let rt = match current_thread() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, worker, "cannot start a worker runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(l) => {
                            labgate::server::serve_worker(
                                l,
                                app,
                                worker,
                                labgate::server::shutdown_signal(),
                            )
                            .await;
                        }
                        Err(e) => tracing::error!(error = %e, worker, "worker cannot listen"),
                    }
                });
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "cannot start a worker thread"),
        }
    }
    rt0.block_on(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => {
                labgate::server::serve_worker(l, app, 0, labgate::server::shutdown_signal()).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot listen"),
        }
    });
    for t in threads {
        let _ = t.join();
    }
    ExitCode::SUCCESS
}
