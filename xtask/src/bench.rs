//! `cargo xtask bench`: release build, bpftrace, tcpdump, iperf3, ab and nginx
//! installed when missing, then the side-by-side benchmark (tests/src/bin/bench.rs): a markdown
//! table on stdout, target/bench/report.json and target/bench/ratios.svg.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{build, tools, workspace};

/// The peers and the traffic the benchmark drives: (command, Debian package).
const BENCH_TOOLS: [(&str, &str); 5] = [
    ("bpftrace", "bpftrace"),
    ("tcpdump", "tcpdump"),
    ("iperf3", "iperf3"),
    ("ab", "apache2-utils"),
    ("nginx", "nginx"),
];

/// Steps the kernel programs can be built without (rst-ebpf/src/steps.rs).
const STEPS: [&str; 7] = ["announce", "take", "counts", "ports", "peers", "samples", "endpoints"];

pub fn run(only: Option<&str>) -> Result<()> {
    let bin = build(true)?;
    tools::ensure_packages(&BENCH_TOOLS)?;
    // The chart's font (tests/src/bin/bench.rs reads it).
    if !std::path::Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists() {
        tools::install(&["fonts-dejavu-core"])?;
    }
    let status = Command::new("cargo")
        .args(["run", "--release", "--package", "rst-tests", "--features", "chart", "--bin", "bench", "--"])
        .arg(workspace().join("target").join("bench"))
        .args(only)
        .env("RSTWATCH_BIN", &bin)
        .current_dir(workspace())
        .status()?;
    if !status.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}

/// `--steps`: one release build per left-out step (the kernel object is
/// rebuilt with `RSTWATCH_SKIP_STEPS`), each binary kept under
/// target/bench/steps, the default build restored, then the benchmark
/// measures every build's per-program cost in one run (`--steps`).
pub fn steps() -> Result<()> {
    let full = build(true)?;
    let dir = workspace().join("target").join("bench").join("steps");
    std::fs::create_dir_all(&dir)?;
    let mut bins = vec![format!("full={}", full.display())];
    for step in STEPS {
        eprintln!("xtask: building the kernel programs without `{step}`");
        let status = Command::new("cargo")
            .args(["build", "--release", "--package", "rst-user"])
            .env("RSTWATCH_SKIP_STEPS", step)
            .current_dir(workspace())
            .status()?;
        if !status.success() {
            bail!("building without `{step}` failed");
        }
        let to = dir.join(format!("rstwatch-without-{step}"));
        std::fs::copy(&full, &to)?;
        bins.push(format!("{step}={}", to.display()));
    }
    // The default build again, so that target/release/rstwatch leaves nothing out.
    build(true)?;
    let status = Command::new("cargo")
        .args(["run", "--release", "--package", "rst-tests", "--features", "chart", "--bin", "bench", "--"])
        .arg(&dir)
        .arg("--steps")
        .env("RSTWATCH_BIN", &full)
        .env("RSTWATCH_STEP_BINS", bins.join(","))
        .current_dir(workspace())
        .status()?;
    if !status.success() {
        bail!("the step benchmark failed");
    }
    Ok(())
}
