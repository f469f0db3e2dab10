//! `cargo xtask image`: the container image the DaemonSet runs, `rstwatch:VERSION`
//! (`localhost/rstwatch:VERSION` to podman): `FROM scratch` plus the release
//! rstwatch — the .deb's binary — with the Debian glibc files it links, copied
//! from this host (packaging/Containerfile), built by buildah from Debian's
//! packages; no registry is reachable here and none is needed. Also written
//! as an OCI archive, for nodes that import images (`ctr images import`).

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{build as build_rstwatch, rootfs, tools, workspace};

pub const TAG: &str = concat!("rstwatch:", env!("CARGO_PKG_VERSION"));

/// vfs works wherever the build runs (overlay needs a filesystem that allows it); the image is one file.
pub const STORAGE: [&str; 2] = ["--storage-driver", "vfs"];

/// Builds the image; returns the OCI archive's path.
pub fn build() -> Result<PathBuf> {
    tools::ensure_packages(&tools::PACKAGING)?;
    let bin = build_rstwatch(true)?;
    let context = workspace().join("target/image");
    let _ = std::fs::remove_dir_all(&context);
    rootfs::copy_with_libs(&context.join("root"), &bin, "/usr/bin/rstwatch").context("the image's files")?;
    let containerfile = workspace().join("packaging/Containerfile");
    let status = Command::new("buildah")
        .args(STORAGE)
        .args(["build", "--file"])
        .arg(&containerfile)
        .args(["--tag", TAG])
        .arg(&context)
        .status()
        .context("starting buildah")?;
    if !status.success() {
        bail!("buildah build failed");
    }
    let archive = context.join(format!("rstwatch_{}.oci.tar", env!("CARGO_PKG_VERSION")));
    let status = Command::new("buildah")
        .args(STORAGE)
        .args(["push", TAG])
        .arg(format!("oci-archive:{}:{TAG}", archive.display()))
        .status()?;
    if !status.success() {
        bail!("writing the OCI archive failed");
    }
    Ok(archive)
}
