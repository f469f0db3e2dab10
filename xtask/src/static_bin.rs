//! Static rstwatch binaries: glibc linked in (`+crt-static`; no musl target can
//! be installed here), for the kernel matrix's guests and the container image.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Result, bail};

use crate::workspace;

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Target-scoped flags keep build scripts and proc macros dynamic.
pub const RUSTFLAGS: (&str, &str) =
    ("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS", "-C target-feature=+crt-static");

/// `cargo ARGS --target TARGET` with the static flags.
pub fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new("cargo");
    c.args(args).args(["--target", TARGET]).env(RUSTFLAGS.0, RUSTFLAGS.1).current_dir(workspace());
    c
}

/// Builds the static rstwatch; returns its path.
pub fn rstwatch(release: bool) -> Result<PathBuf> {
    let mut args = vec!["build", "--package", "rst-user", "--bin", "rstwatch"];
    if release {
        args.push("--release");
    }
    if !cargo(&args).stdin(Stdio::null()).status()?.success() {
        bail!("building the static rstwatch failed");
    }
    Ok(workspace().join("target").join(TARGET).join(if release { "release" } else { "debug" }).join("rstwatch"))
}
