//! rstwatch: parse the command line, run the command, map errors to one line
//! and an exit code (2: usage or environment, 1: runtime).

use rst_user::{cli, cli::client, cli::manpages, daemon, error, kernel::reaper, tui};

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser as _;

fn init_logging() {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RSTWATCH_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journald && std::io::stderr().is_terminal());
    if journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version: clap's own text on stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rstwatch: error: {}", cli::usage_error_line(&e));
            return ExitCode::from(2);
        }
    };
    init_logging();
    let result = match cli.command {
        cli::Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(error::Error::io("starting the runtime"))
            .and_then(|rt| rt.block_on(daemon::run(args))),
        cli::Command::Snapshot(a) => {
            client::Target::new(a.listen, &a.access).and_then(|t| client::snapshot(&t, a.json))
        }
        cli::Command::Top(a) => match &a.prometheus {
            None => client::Target::new(a.listen, &a.access).map(tui::Source::Daemon).and_then(tui::run),
            Some(url) => cli::fleet::Fleet::new(url, &a.hosts, &a.access).map(tui::Source::Fleet).and_then(tui::run),
        },
        cli::Command::TcReaper => {
            reaper::run();
            Ok(())
        }
        cli::Command::Man { dir } => manpages::write(&dir).map(|pages| {
            for p in pages {
                println!("{}", p.display());
            }
        }),
        cli::Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <cli::Cli as clap::CommandFactory>::command(),
                "rstwatch",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rstwatch: error: {}", error::chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
