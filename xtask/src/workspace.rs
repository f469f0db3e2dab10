//! The workspace: its root, cargo in it, the daemon's build, whether we are root.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::toolchain;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

pub fn cargo(args: &[&str]) -> Result<()> {
    let status = Command::new("cargo").args(args).current_dir(workspace()).status().context("starting cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed", args.join(" "));
    }
    Ok(())
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

pub fn build(release: bool) -> Result<PathBuf> {
    let target = workspace().join("target");
    toolchain::ensure(&target)?;
    let mut args = vec!["build", "--package", "rst-user"];
    if release {
        args.push("--release");
    }
    cargo(&args)?;
    Ok(target.join(if release { "release" } else { "debug" }).join("rstwatch"))
}
