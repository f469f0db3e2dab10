//! `cargo xtask test`: unit tests and clippy, the root integration tests, the
//! late ones (soak, .deb, image) beside the kernel matrix, and its table.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Result, bail};

use crate::{
    deb, image, kernels, toolchain, tools,
    workspace::{build, cargo, is_root, workspace},
};

pub fn test(filter: Option<&str>, with_kernels: bool, only: &[String]) -> Result<()> {
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
