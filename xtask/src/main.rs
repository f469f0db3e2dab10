//! `cargo xtask build|run|test`: toolchain bootstrap, builds, the privileged
//! runner. Privileges live here, not in global cargo configuration.

mod toolchain;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "rstwatch developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install missing toolchain pieces, then build rstwatch (kernel object embedded).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build, then run the daemon in the foreground with a live summary; ARGS go to `rstwatch run`.
    Run {
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Every test: unit tests, then the root integration tests (real programs, real sockets, own namespaces).
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo(args: &[&str]) -> Result<()> {
    let status = Command::new("cargo").args(args).current_dir(workspace()).status().context("starting cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed", args.join(" "));
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn build(release: bool) -> Result<PathBuf> {
    let target = workspace().join("target");
    toolchain::ensure(&target)?;
    let mut args = vec!["build", "--package", "rst-user"];
    if release {
        args.push("--release");
    }
    cargo(&args)?;
    Ok(target.join(if release { "release" } else { "debug" }).join("rstwatch"))
}

/// Runs `cmd`, through sudo when not root (loading eBPF needs privileges).
fn privileged(bin: &Path) -> Command {
    if is_root() {
        Command::new(bin)
    } else {
        eprintln!("xtask: not root, running through sudo");
        let mut c = Command::new("sudo");
        c.arg(bin);
        c
    }
}

fn run(release: bool, args: &[String]) -> Result<ExitCode> {
    let bin = build(release)?;
    let status = privileged(&bin).arg("run").arg("--live").args(args).status().context("starting rstwatch")?;
    Ok(ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)))
}

fn test(filter: Option<&str>) -> Result<()> {
    let bin = build(false)?;
    let f: Vec<&str> = filter.into_iter().collect();
    // rst-ebpf builds only for the BPF target; rst-tests need root and run below.
    let mut unit = vec!["test", "-p", "rst-common", "-p", "rst-user", "-p", "xtask", "--"];
    unit.extend(&f);
    cargo(&unit)?;
    if !is_root() {
        bail!("the integration tests create network namespaces and load eBPF programs: run `sudo -E cargo xtask test` (unit tests passed)");
    }
    let mut integ = vec!["test", "--package", "rst-tests", "--", "--test-threads=1"];
    integ.extend(&f);
    let status = Command::new("cargo").args(&integ).env("RSTWATCH_BIN", &bin).current_dir(workspace()).status()?;
    if !status.success() {
        bail!("integration tests failed");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Build { release } => build(release).map(|bin| {
            eprintln!("xtask: built {}", bin.display());
            ExitCode::SUCCESS
        }),
        Task::Run { release, args } => run(release, &args),
        Task::Test { filter } => test(filter.as_deref()).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("xtask: error: {e:#}");
        ExitCode::FAILURE
    })
}
