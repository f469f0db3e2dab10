//! `cargo xtask deb`: the Debian package, built by cargo-deb from the release
//! binary and assets made here (systemd unit for /usr/bin, man pages from the
//! clap definitions, shell completions), then checked by lintian.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{tools, workspace};

/// Where the generated assets go (named by `[package.metadata.deb]` in rst-user/Cargo.toml).
fn assets_dir() -> PathBuf {
    workspace().join("target/deb-assets")
}

/// cargo-deb, from crates.io when missing (idempotent).
fn ensure_cargo_deb() -> Result<()> {
    if Command::new("cargo").args(["deb", "--version"]).output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-deb from crates.io");
    // Without its release profile's LTO and single codegen unit: it compiles in a fraction of
    // the time on a fresh machine, and packing one binary does not need the last few percent.
    let ok = Command::new("cargo")
        .args(["install", "--locked", "cargo-deb"])
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("could not install cargo-deb: run `cargo install --locked cargo-deb` and retry");
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The unit, man pages and completions cargo-deb packs beside the binary.
fn make_assets(bin: &Path) -> Result<()> {
    let dir = assets_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let unit = std::fs::read_to_string(workspace().join("packaging/rstwatch.service"))?
        .replace("/usr/local/bin/rstwatch", "/usr/bin/rstwatch")
        .replace("Installed by `cargo xtask install`", "Installed by the rstwatch package");
    write(&dir.join("rstwatch.service"), unit.as_bytes())?;
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let status = Command::new(bin).arg("man").arg(&man).status().context("generating man pages")?;
    if !status.success() {
        bail!("`rstwatch man` failed");
    }
    // Debian ships man pages compressed.
    let status = Command::new("gzip").args(["-9n", "-f"]).args(man_pages(&man)?).status()?;
    if !status.success() {
        bail!("gzip of the man pages failed");
    }
    std::fs::copy(workspace().join("packaging/debian/changelog"), dir.join("changelog"))?;
    if !Command::new("gzip").args(["-9n", "-f"]).arg(dir.join("changelog")).status()?.success() {
        bail!("gzip of the changelog failed");
    }
    for (shell, file) in [("bash", "rstwatch"), ("zsh", "_rstwatch"), ("fish", "rstwatch.fish")] {
        let out = Command::new(bin).args(["completions", shell]).output().context("generating completions")?;
        if !out.status.success() {
            bail!("`rstwatch completions {shell}` failed");
        }
        write(&dir.join("completions").join(file), &out.stdout)?;
    }
    Ok(())
}

fn man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| Some(e.ok()?.path())).collect();
    pages.sort();
    Ok(pages)
}

/// Where `cargo xtask deb` puts the package.
fn deb_path() -> PathBuf {
    workspace().join("target/debian").join(format!("rstwatch_{}_amd64.deb", env!("CARGO_PKG_VERSION")))
}

fn log_path() -> PathBuf {
    workspace().join("target/packaging.log")
}

/// Starts `cargo xtask deb && cargo xtask image` in the background, their output in target/packaging.log.
pub fn spawn_build() -> Result<Child> {
    let log = std::fs::File::create(log_path()).context("creating target/packaging.log")?;
    eprintln!("xtask: building the .deb and the image in the background (log: {})", log_path().display());
    Command::new("sh")
        .args(["-c", "\"$0\" deb && \"$0\" image"])
        .arg(std::env::current_exe()?)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting `cargo xtask deb` and `cargo xtask image`")
}

/// Waits for [`spawn_build`]; the package's path, or the log's tail in the error.
pub fn finish(mut child: Child) -> Result<PathBuf> {
    let status = child.wait()?;
    if !status.success() {
        let log = std::fs::read_to_string(log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("building the .deb or the image failed ({}):\n{}", log_path().display(), tail.join("\n"));
    }
    eprintln!("xtask: built {}", deb_path().display());
    Ok(deb_path())
}

/// Builds `target/debian/rstwatch_<version>_amd64.deb` and runs lintian on it; returns its path.
pub fn build(bin: &Path) -> Result<PathBuf> {
    ensure_cargo_deb()?;
    tools::ensure_packages(&tools::PACKAGING)?;
    make_assets(bin)?;
    let out = Command::new("cargo")
        .args(["deb", "--package", "rst-user", "--no-build"])
        .current_dir(workspace())
        .output()
        .context("starting cargo deb")?;
    if !out.status.success() {
        bail!("cargo deb failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let deb = deb_path();
    if !deb.exists() {
        bail!("cargo deb did not write {}: {}", deb.display(), String::from_utf8_lossy(&out.stdout));
    }
    let lint = Command::new("lintian").args(["--fail-on", "error", "--tag-display-limit", "0"]).arg(&deb).status()?;
    if !lint.success() {
        bail!("lintian reports errors in {}", deb.display());
    }
    Ok(deb)
}
