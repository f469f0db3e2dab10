//! Filesystem trees made of this Debian host's own files: a dynamically
//! linked binary and the libraries `ldd` names, at the same paths (the kernel
//! matrix's initramfs, the container image).

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result};

/// Copies `from` to `to` below `root`, with its libraries.
pub fn copy_with_libs(root: &Path, from: &Path, to: &str) -> Result<()> {
    let dest = root.join(to.trim_start_matches('/'));
    fs::create_dir_all(dest.parent().expect("absolute path"))?;
    fs::copy(from, &dest).with_context(|| format!("copying {}", from.display()))?;
    let ldd = Command::new("ldd").arg(from).output()?;
    for lib in String::from_utf8_lossy(&ldd.stdout).split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(lib.trim_start_matches('/'));
        if !dest.exists() {
            fs::create_dir_all(dest.parent().expect("absolute path"))?;
            fs::copy(lib, &dest).with_context(|| format!("copying {lib}"))?;
        }
    }
    Ok(())
}
