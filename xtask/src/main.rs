//! `cargo xtask build|run|test`: toolchain bootstrap, builds, the privileged
//! runner. Privileges live here, not in global cargo configuration.

mod bench;
mod deb;
mod image;
mod install;
mod kernels;
mod rootfs;
mod toolchain;
mod tools;

use std::{
    io::IsTerminal as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
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
    /// Benchmarks side by side (XDP cost, reset storm vs bpftrace and tcpdump, userspace, memory).
    Bench {
        /// Only the per-program cost table (one storm with empty programs, one with rstwatch;
        /// about a minute): for iterating on the kernel side.
        #[arg(long)]
        programs_only: bool,
        /// Where the nanoseconds go: the per-program table once per kernel-program build that
        /// leaves one step out (announce, take, counts, ports, peers, samples, endpoints; see
        /// rst-ebpf/src/steps.rs), beside the full build, in one run (about ten minutes).
        #[arg(long, conflicts_with = "programs_only")]
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

fn code(status: std::process::ExitStatus) -> ExitCode {
    ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
}

/// The daemon's listen address among `args`, else its default.
fn listen_addr(args: &[String]) -> String {
    args.iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--listen=").map(str::to_string)))
        .unwrap_or_else(|| "127.0.0.1:9477".into())
}

fn run(release: bool, args: &[String]) -> Result<ExitCode> {
    let bin = build(release)?;
    if !std::io::stdout().is_terminal() {
        let status = privileged(&bin).arg("run").arg("--live").args(args).status().context("starting rstwatch")?;
        return Ok(code(status));
    }
    let log_path = workspace().join("target").join("rstwatch-run.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut daemon = privileged(&bin)
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting rstwatch")?;
    let addr = listen_addr(args);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = daemon.try_wait()? {
            eprint!("{}", std::fs::read_to_string(&log_path).unwrap_or_default());
            return Ok(code(status));
        }
        let up = Command::new(&bin)
            .args(["snapshot", "--json", "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if up.success() {
            break;
        }
        if Instant::now() > deadline {
            let _ = daemon.kill();
            bail!("the daemon did not answer on {addr} within 30 s; its log: {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let top = Command::new(&bin).args(["top", "--listen", &addr]).status().context("starting rstwatch top")?;
    // SIGTERM: the daemon detaches everything and exits 0.
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let status = daemon.wait()?;
    eprintln!("xtask: daemon stopped ({status}); its log: {}", log_path.display());
    Ok(if top.success() { code(status) } else { code(top) })
}

fn test(filter: Option<&str>, with_kernels: bool, only: &[String]) -> Result<()> {
    let series: Vec<String> = if !only.is_empty() {
        only.to_vec()
    } else if with_kernels {
        kernels::MATRIX.iter().map(ToString::to_string).collect()
    } else {
        Vec::new()
    };
    // Debian's kernels download, and KVM is probed (20 s when it hangs), while everything else
    // builds and runs.
    let fetching = if series.is_empty() {
        None
    } else {
        kernels::ensure_tools()?;
        let s = series.clone();
        Some(std::thread::spawn(move || {
            let fetched = s.iter().map(|s| kernels::fetch(s)).collect::<Result<Vec<_>>>()?;
            let accel = kernels::choose_accel(&fetched[0]);
            Ok((fetched, accel))
        }))
    };
    let bin = build(false)?;
    let mut rows = Vec::new();
    let late = if only.is_empty() {
        unit_tests(filter)?;
        let late = root_tests(&bin, filter)?;
        rows.extend(std::fs::read_to_string(host_row()).ok().map(|r| (kernels::host_release(), r)));
        Some(late)
    } else {
        None
    };
    // The release daemon (the .deb's, built in the background by now: this waits for it) for
    // the soak and the guests: a debug one spends seconds parsing BTF under emulation at each of
    // its many starts there, and the soak's polls cost it several times the CPU.
    let release = if fetching.is_some() || late.as_ref().is_some_and(|l| l.soak) { build(true)? } else { bin.clone() };
    let Some(fetching) = fetching else {
        return late.map_or(Ok(()), |l| l.run(&release));
    };
    // Before the late tests: a running `cargo test` holds the build directory.
    let guest = kernels::build_guest_binaries(&release);
    // The late tests (the soak, the .deb and the image) mostly wait: they run beside the VMs,
    // which want the machine's cores (the verifier, under emulation).
    let late = late.map(|l| {
        let release = release.clone();
        std::thread::spawn(move || l.run(&release))
    });
    let matrix =
        guest.and_then(|g| fetching.join().expect("fetch thread").and_then(|(k, accel)| matrix(&k, accel, &g, filter)));
    let host = late.map_or(Ok(()), |l| l.join().expect("late tests thread"));
    host?;
    let outcomes = matrix?;
    let failed: Vec<String> = outcomes.iter().filter(|o| !o.passed).map(|o| o.release.clone()).collect();
    rows.extend(outcomes.into_iter().map(|o| (o.release, o.row.unwrap_or_default())));
    let table = kernels::table(&rows);
    println!("{table}");
    let _ = std::fs::write(workspace().join("target").join("kernels").join("table.md"), &table);
    if !failed.is_empty() {
        bail!("the kernel test set failed on {}", failed.join(", "));
    }
    Ok(())
}

/// Where the host's integration run writes its kernel table row.
fn host_row() -> PathBuf {
    workspace().join("target").join("kernels").join("host.row")
}

fn unit_tests(filter: Option<&str>) -> Result<()> {
    tools::ensure()?;
    // rst-ebpf builds only for the BPF target; rst-tests need root and run in `root_tests`.
    let mut unit = vec!["test", "-p", "rst-common", "-p", "rst-user", "-p", "xtask", "--"];
    unit.extend(filter);
    cargo(&unit)?;
    // The lints as configured (workspace [lints]: pedantic), warnings as errors; rst-ebpf with its own toolchain.
    let crates = ["-p", "rst-common", "-p", "rst-user", "-p", "xtask", "-p", "rst-tests"];
    cargo(&[&["clippy"][..], &crates, &["--all-targets", "--", "-D", "warnings"]].concat())?;
    toolchain::clippy_ebpf(&workspace())?;
    if !is_root() {
        bail!(
            "the integration tests create network namespaces and load eBPF programs: run `sudo -E cargo xtask test` (unit tests passed)"
        );
    }
    Ok(())
}

/// `cargo test -p rst-tests` with `bin` as the daemon (`RSTWATCH_BIN`), `extra` after `--`.
fn cargo_test(bin: &Path, tests: &[&str], extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Result<bool> {
    let mut args = vec!["test", "--package", "rst-tests"];
    for t in tests {
        args.extend(["--test", t]);
    }
    args.extend(["--", "--test-threads=1"]);
    args.extend(extra);
    let status = Command::new("cargo")
        .args(&args)
        .env("RSTWATCH_BIN", bin)
        .env("RSTWATCH_MATRIX_ROW", host_row())
        .envs(env.iter().copied())
        .current_dir(workspace())
        .status()?;
    Ok(status.success())
}

/// The root tests; what the late tests need is decided here.
fn root_tests(bin: &Path, filter: Option<&str>) -> Result<Late> {
    let _ = std::fs::create_dir_all(host_row().parent().expect("folder"));
    let _ = std::fs::remove_file(host_row());
    let wanted = |t: &str| filter.is_none_or(|f| t.contains(f));
    let passed = cargo_test(bin, &[], &filter.into_iter().collect::<Vec<_>>(), &[])?;
    if !passed {
        bail!("integration tests failed");
    }
    Ok(Late { soak: wanted(SOAK_TEST), packaging: PACKAGE_TESTS.iter().any(|t| wanted(t)) })
}

/// The `#[ignore]`d root tests, run after the others: the soak (minutes of mostly waiting for
/// folds), and the .deb and image tests once their background build is done.
/// The .deb and the image (a release build, cargo-deb, lintian, buildah) are built after
/// the storms, not beside them: during storms this machine's 6.18 kernel sometimes
/// skipped the `tcp:tcp_send_reset` probe (the program's own run count short of
/// OutRsts, no recursion miss; README, "Never lose a count"), which the storm tests'
/// exactness checks catch; a build beside them was one load it was seen under.
struct Late {
    soak: bool,
    packaging: bool,
}

impl Late {
    fn run(self, bin: &Path) -> Result<()> {
        let mut failed = Vec::new();
        if self.soak && !cargo_test(bin, &["soak"], &["--ignored", SOAK_TEST], &[])? {
            failed.push("the soak");
        }
        if self.packaging {
            match deb::spawn_build().and_then(deb::finish) {
                Ok(deb) => {
                    let env = [("RSTWATCH_DEB", deb.as_os_str()), ("RSTWATCH_IMAGE", image::TAG.as_ref())];
                    if !cargo_test(bin, &["packages", "image"], &["--ignored"], &env)? {
                        failed.push("the package and image tests");
                    }
                }
                Err(e) => {
                    eprintln!("xtask: {e:#}");
                    failed.push("the .deb and image build");
                }
            }
        }
        if !failed.is_empty() {
            bail!("failed: {}", failed.join(", "));
        }
        Ok(())
    }
}

/// The root tests of what `cargo xtask deb` and `cargo xtask image` build (tests/tests/{packages,image}.rs).
const PACKAGE_TESTS: [&str; 2] =
    ["deb_installs_documents_itself_and_purges_clean", "image_runs_as_the_daemonset_and_counts_a_reset"];
/// tests/tests/soak.rs: minutes of mostly waiting for folds.
const SOAK_TEST: &str = "budgets_fold_with_nothing_lost_and_memory_flat";

/// The kernel test set in each of `series`, one VM after the other (2 cores: one guest at a time).
fn matrix(
    fetched: &[kernels::Kernel],
    accel: kernels::Accel,
    bins: &[(String, PathBuf)],
    filter: Option<&str>,
) -> Result<Vec<kernels::Outcome>> {
    let mut outcomes = Vec::new();
    for k in fetched {
        let o = kernels::run_kernel(k, accel, bins, filter)?;
        eprintln!("xtask: {} {} in {} s", o.release, if o.passed { "passed" } else { "FAILED" }, o.seconds);
        outcomes.push(o);
    }
    Ok(outcomes)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Build { release } => build(release).map(|bin| {
            eprintln!("xtask: built {}", bin.display());
            ExitCode::SUCCESS
        }),
        Task::Run { release, args } => run(release, &args),
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
        Task::Bench { programs_only, steps } => {
            if steps { bench::steps() } else { bench::run(programs_only) }.map(|()| ExitCode::SUCCESS)
        }
        Task::Test { filter, kernels, kernel } => test(filter.as_deref(), kernels, &kernel).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("xtask: error: {e:#}");
        ExitCode::FAILURE
    })
}
