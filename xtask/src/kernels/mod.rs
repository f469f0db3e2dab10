//! `cargo xtask test --kernels`: the kernel test set inside Debian's own
//! kernels (5.10, 6.1, 6.12), each booted in QEMU with an initramfs made here.
//! Facts this relies on (virtualisation here, package names, initramfs
//! pitfalls): ../shared/docs/kernels.md.
//!
//! Steps per kernel: `fetch` (Debian's package, cached under target/kernels),
//! `initramfs` (busybox-static, iproute2, kmod, the module tree, static test
//! binaries), `qemu` (boot, read the result from the second serial port);
//! here: the outcome and the table.

mod fetch;
mod initramfs;
mod qemu;

use std::{
    fmt::Write as _,
    fs,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

pub use fetch::{Kernel, fetch};
pub use initramfs::build_guest_binaries;
pub use qemu::{Accel, choose_accel};

use crate::{tools, workspace};

/// The kernels every run covers: Debian 11, 12 and 13.
pub const MATRIX: [&str; 3] = ["5.10", "6.1", "6.12"];

/// Test binaries (tests/tests/<name>.rs) that make up the kernel test set.
pub const TEST_SET: [&str; 7] = ["seed", "kernels", "causes", "namespaces", "wire", "origins", "hooks"];

/// Under TCG a kernel boots in ~4 s; the test set takes minutes. A hang is a failure.
const BOOT_LIMIT: Duration = Duration::from_mins(15);

fn kernels_dir() -> PathBuf {
    workspace().join("target").join("kernels")
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{what}: cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Tools the matrix needs on the host, installed from Debian's packages when missing.
pub fn ensure_tools() -> Result<()> {
    tools::ensure_packages(&[
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
        ("depmod", "kmod"),
        ("dpkg-deb", "dpkg"),
        ("strip", "binutils"),
    ])
}

/// One kernel's outcome: its table row (from the kernel test set) and whether it passed.
pub struct Outcome {
    pub release: String,
    pub passed: bool,
    pub row: Option<String>,
    pub seconds: u64,
}

/// Boots `kernel` with the test set and reads its verdict.
pub fn run_kernel(kernel: &Kernel, accel: Accel, bins: &[(String, PathBuf)], filter: Option<&str>) -> Result<Outcome> {
    let started = Instant::now();
    let initrd = initramfs::initramfs(kernel, bins, filter)?;
    eprintln!("xtask: booting {} ({accel:?})", kernel.release);
    let (said, console) = match qemu::boot(accel, kernel, &initrd, BOOT_LIMIT) {
        Ok(r) => r,
        Err(e) => {
            let log =
                fs::read_to_string(kernels_dir().join(format!("{}.console.log", kernel.series))).unwrap_or_default();
            eprintln!("{}", tail(&log, 60));
            return Err(e);
        }
    };
    let passed = said.lines().any(|l| l.trim() == "RC=0");
    if !passed {
        eprintln!("--- console of {} ---\n{}", kernel.release, tail(&console, 400));
    }
    // The HEAD and ROW lines the kernel test set wrote (see tests/tests/kernels.rs), and the ORIGIN cell (origins.rs).
    let row = said
        .lines()
        .filter(|l| l.starts_with("HEAD ") || l.starts_with("ROW ") || l.starts_with("ORIGIN "))
        .collect::<Vec<_>>()
        .join("\n");
    let row = (!row.is_empty()).then_some(row);
    Ok(Outcome { release: kernel.release.clone(), passed, row, seconds: started.elapsed().as_secs() })
}

/// This machine's kernel release.
#[must_use]
pub fn host_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "host".into(), |s| format!("{} (host)", s.trim()))
}

/// A Markdown table: one row per kernel from the `HEAD`/`ROW` lines each run
/// wrote, and a last column from the `ORIGIN` line the routed-path test wrote
/// (tests/tests/origins.rs), when a run has one.
#[must_use]
pub fn table(runs: &[(String, String)]) -> String {
    let head = runs.iter().find_map(|(_, said)| said.lines().find_map(|l| l.strip_prefix("HEAD "))).unwrap_or("| |");
    let origin = |said: &str| said.lines().find_map(|l| l.strip_prefix("ORIGIN ")).map(str::to_string);
    let with_origin = runs.iter().any(|(_, said)| origin(said).is_some());
    let head = if with_origin { format!("{head} {ORIGIN_COLUMN} |") } else { head.to_string() };
    let cols = head.matches('|').count().saturating_sub(1);
    let mut t = format!("| kernel {head}\n|---{}\n", "|---".repeat(cols) + "|");
    for (release, said) in runs {
        let row = said.lines().find_map(|l| l.strip_prefix("ROW ")).unwrap_or("| (no result) |");
        let cell = if with_origin {
            format!(" {} |", origin(said).unwrap_or_else(|| "(no result)".into()))
        } else {
            String::new()
        };
        let _ = writeln!(t, "| {release} {row}{cell}");
    }
    t
}

/// The column `origin` (contract §2a) adds to the kernel table.
const ORIGIN_COLUMN: &str = "origin (routed path: client, middlebox, server)";

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_one_row_per_kernel_under_the_test_sets_header() {
        let runs = [
            ("5.10.0-43-cloud-amd64".to_string(), "HEAD | sent | wire |\nROW | 6/6 | yes |\nRC=0".to_string()),
            ("6.1.0-57-cloud-amd64".to_string(), "RC=1".to_string()),
        ];
        assert_eq!(
            table(&runs),
            "| kernel | sent | wire |\n|---|---|---|\n| 5.10.0-43-cloud-amd64 | 6/6 | yes |\n| 6.1.0-57-cloud-amd64 | (no result) |\n"
        );
    }

    #[test]
    fn the_routed_path_test_adds_its_column() {
        let runs = [
            ("6.12".to_string(), "HEAD | sent |\nROW | 6/6 |\nORIGIN 7 of 7\nRC=0".to_string()),
            ("6.1".to_string(), "HEAD | sent |\nROW | 6/6 |\nRC=1".to_string()),
        ];
        let t = table(&runs);
        assert!(t.starts_with(&format!("| kernel | sent | {ORIGIN_COLUMN} |\n|---|---|---|\n")), "{t}");
        assert!(t.contains("| 6.12 | 6/6 | 7 of 7 |\n| 6.1 | 6/6 | (no result) |\n"), "{t}");
    }
}
