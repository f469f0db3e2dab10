//! `cargo xtask build|run|test|...`: the command line, dispatched to one
//! module a task. Privileges live here (run.rs), not in global cargo configuration.

mod bench;
mod deb;
mod image;
mod install;
mod kernels;
mod rootfs;
mod run;
mod test;
mod toolchain;
mod tools;
mod workspace;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::workspace::{build, workspace};

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
    /// Build, run the daemon and show `rstwatch top` in the foreground (a plain live summary when
    /// stdout is not a terminal); ARGS go to `rstwatch run`. Quitting the view stops the daemon.
    Run {
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build a release and install the binary, systemd unit, example config and completions.
    Install {
        /// Where the binary goes (PREFIX/bin/rstwatch).
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
        /// Install below this directory instead of / (for packaging).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Build the Debian package target/debian/rstwatch_VERSION_amd64.deb (cargo-deb) and check it with lintian.
    Deb,
    /// Build the container image the DaemonSet runs (rstwatch:VERSION, FROM scratch with the
    /// release rstwatch and the glibc files it links) with buildah, and write it as an OCI archive
    /// under target/image.
    Image,
    /// Benchmarks side by side (XDP cost, reset storm vs bpftrace and tcpdump, per-program
    /// cost, traffic through a watched interface, userspace, memory).
    Bench {
        /// Only the per-program cost table (one storm with empty programs, one with rstwatch;
        /// about a minute): for iterating on the kernel side.
        #[arg(long)]
        programs_only: bool,
        /// Only the traffic through a watched interface (iperf3 and ab with nothing attached,
        /// rstwatch, rstwatch --wire-in xdp and tcpdump; about three minutes).
        #[arg(long, conflicts_with = "programs_only")]
        traffic_only: bool,
        /// Where the nanoseconds go: the per-program table once per kernel-program build that
        /// leaves one step out (announce, take, counts, ports, peers, samples, endpoints; see
        /// rst-ebpf/src/steps.rs), beside the full build, in one run (about ten minutes).
        #[arg(long, conflicts_with_all = ["programs_only", "traffic_only"])]
        steps: bool,
    },
    /// Every test: unit tests, then the root integration tests (real programs, real sockets, own namespaces).
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
        /// Then run the kernel test set inside Debian's 5.10, 6.1 and 6.12 kernels under QEMU
        /// (downloaded once into target/kernels) and print one table row per kernel.
        #[arg(long)]
        kernels: bool,
        /// Only the kernel test set, only in this kernel series (5.10, 6.1 or 6.12; repeatable).
        #[arg(long, value_name = "SERIES", value_parser = clap::builder::PossibleValuesParser::new(kernels::MATRIX))]
        kernel: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Build { release } => build(release).map(|bin| {
            eprintln!("xtask: built {}", bin.display());
            ExitCode::SUCCESS
        }),
        Task::Run { release, args } => run::run(release, &args),
        Task::Install { prefix, root } => build(true).and_then(|bin| {
            for f in install::install(&bin, &workspace(), &root, &prefix)? {
                eprintln!("xtask: installed {}", f.display());
            }
            eprintln!("xtask: now `systemctl daemon-reload && systemctl enable --now rstwatch`");
            Ok(ExitCode::SUCCESS)
        }),
        Task::Deb => build(true).and_then(|bin| deb::build(&bin)).map(|deb| {
            eprintln!("xtask: built {}", deb.display());
            ExitCode::SUCCESS
        }),
        Task::Image => image::build().map(|archive| {
            eprintln!("xtask: built {} (also {})", image::TAG, archive.display());
            ExitCode::SUCCESS
        }),
        Task::Bench { programs_only, traffic_only, steps } => {
            let only = if programs_only { Some("--programs-only") } else { traffic_only.then_some("--traffic-only") };
            if steps { bench::steps() } else { bench::run(only) }.map(|()| ExitCode::SUCCESS)
        }
        Task::Test { filter, kernels, kernel } => {
            test::test(filter.as_deref(), kernels, &kernel).map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("xtask: error: {e:#}");
        ExitCode::FAILURE
    })
}
