//! `cargo xtask bench`: release build, bpftrace and tcpdump installed when
//! missing, then the side-by-side benchmark (tests/src/bin/bench.rs): a markdown
//! table on stdout, target/bench/report.json and target/bench/ratios.svg.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{build, tools, workspace};

pub fn run(programs_only: bool) -> Result<()> {
    let bin = build(true)?;
    tools::ensure_packages(&[("bpftrace", "bpftrace"), ("tcpdump", "tcpdump")])?;
    // The chart's font (tests/src/bin/bench.rs reads it).
    if !std::path::Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists() {
        tools::install(&["fonts-dejavu-core"])?;
    }
    let status = Command::new("cargo")
        .args(["run", "--release", "--package", "rst-tests", "--features", "chart", "--bin", "bench", "--"])
        .arg(workspace().join("target").join("bench"))
        .args(programs_only.then_some("--programs-only"))
        .env("RSTWATCH_BIN", &bin)
        .current_dir(workspace())
        .status()?;
    if !status.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}
