//! The `labgate` binary: parse the command line, load the config, hand it to the library,
//! turn the outcome into an exit code.

// The request future is nested deeper than the compiler's default query depth (see lib.rs).
#![recursion_limit = "256"]

use std::process::ExitCode;

use labgate::check::notes;
use labgate::cli::{Cli, Command, MigrateFrom, SessionsAction};
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
            Ok(config) => run(config, cli),
            Err(code) => code,
        },
        Some(Command::Dev { port_base }) => dev(&cli, port_base),
        Some(Command::Healthcheck { ready, insecure }) => {
            labgate::healthcheck::command(cli.config.as_deref(), &cli.overrides(), ready, insecure)
        }
        Some(Command::Check { online, json }) => {
            load(&cli).map_or_else(|code| code, |c| labgate::check::report(&c, online, json))
        }
        Some(Command::RedirectUri) => load(&cli).map_or_else(
            |code| code,
            |c| {
                println!("{}", labgate::app::redirect_uri(&c));
                ExitCode::SUCCESS
            },
        ),
        Some(Command::Keygen) => {
            println!("# session.cookie_secret (32 random bytes, base64)");
            println!("{}", labgate::generate_cookie_secret());
            println!();
            println!("# identity signing key (ES256, PKCS#8 PEM): save as a file and list it in identity.signing_key_files");
            print!("{}", labgate::identity::generate_es256_pem());
            ExitCode::SUCCESS
        }
        Some(Command::Sessions {
            action: SessionsAction::Revoke { ref user },
        }) => load(&cli).map_or_else(
            |code| code,
            |c| {
                labgate::telemetry::init(c.log.format, &c.log.level);
                labgate::revoke::command(&c, user)
            },
        ),
        Some(Command::Migrate {
            from: MigrateFrom::Oauth2Proxy { ref args },
        }) => {
            let config = cli.config.as_deref().filter(|_| config_on_command_line);
            labgate::migrate::command(config, args.as_deref(), notes)
        }
    }
}

/// `labgate run`: serve until SIGTERM / SIGINT, then drain; reload on SIGHUP and when the
/// configuration file changes.
fn run(config: Config, cli: Cli) -> ExitCode {
    labgate::telemetry::init(config.log.format, &config.log.level);
    // Reloaded as at start: the same file, environment and flags.
    let file = cli.config.clone();
    let load = move || {
        cli.load().map_err(|e| {
            e.problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect()
        })
    };
    let listeners =
        labgate::Listeners::from_config(&config).reloading(labgate::server::reload::Reload {
            file,
            load: Box::new(load),
        });
    match labgate::run(config, listeners, labgate::server::shutdown_signal()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ labgate::RunError::Setup(_)) => {
            eprintln!("labgate: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("labgate: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "dev")]
fn dev(cli: &Cli, port_base: u16) -> ExitCode {
    if cli.listen.is_some() {
        eprintln!("labgate dev: --listen is not used by the demo; choose its ports with --port-base (0: free ports)");
        return ExitCode::from(EXIT_CONFIG);
    }
    labgate::telemetry::init(
        labgate::config::LogFormat::Text,
        cli.log_level.as_deref().unwrap_or("info"),
    );
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(labgate::dev::run_demo(cli.config.as_deref(), port_base)),
        Err(e) => {
            eprintln!("labgate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The production build (`--no-default-features`, the container image) leaves the demo
/// and its GitLab stand-in out.
#[cfg(not(feature = "dev"))]
fn dev(_cli: &Cli, _port_base: u16) -> ExitCode {
    eprintln!(
        "labgate: this build has no dev mode: it was built without the \"dev\" cargo feature \
         (as the container image is). Run the demo from a default build: cargo run --release -- dev"
    );
    ExitCode::from(EXIT_CONFIG)
}

/// The configuration, or every problem in it reported and the usage exit code.
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
