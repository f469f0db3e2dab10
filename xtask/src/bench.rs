//! `cargo xtask bench`: release build, bpftrace and tcpdump installed when
//! missing, then the side-by-side benchmark (tests/src/bin/bench.rs).

use std::process::Command;

use anyhow::{Result, bail};

use crate::{build, tools, workspace};

pub fn run() -> Result<()> {
    let bin = build(true)?;
    tools::ensure_packages(&[("bpftrace", "bpftrace"), ("tcpdump", "tcpdump")])?;
    let status = Command::new("cargo")
        .args(["run", "--release", "--package", "rst-tests", "--bin", "bench", "--"])
        .arg(workspace().join("target").join("bench"))
        .env("RSTWATCH_BIN", &bin)
        .current_dir(workspace())
        .status()?;
    if !status.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}
