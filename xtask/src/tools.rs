//! System tools the integration tests drive (iproute2, util-linux, tmux, systemd-analyze, nftables, hping3, tcpdump,
//! nginx, promtool, prometheus): checked, and installed from Debian's packages when missing — without starting any service they ship.

use std::process::Command;

use anyhow::{Result, bail};

/// (command, Debian package)
const TOOLS: [(&str, &str); 12] = [
    ("tcpdump", "tcpdump"),
    ("hping3", "hping3"),
    ("nft", "nftables"),
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("tmux", "tmux"),
    ("systemd-analyze", "systemd"),
    ("nginx", "nginx"),
    ("promtool", "prometheus"),
    // the real server tests/tests/fleet.rs starts (never Debian's service)
    ("prometheus", "prometheus"),
];

/// What `cargo xtask deb` (beyond cargo-deb) and `cargo xtask image` need, and their tests: also
/// installed with the test tools, so the background packaging build never runs apt beside them.
/// runc: podman's default crun refuses hosts with hybrid cgroups (v1 controllers beside cgroup2).
pub const PACKAGING: [(&str, &str); 6] = [
    ("lintian", "lintian"),
    ("gzip", "gzip"),
    ("man", "man-db"),
    ("buildah", "buildah"),
    ("podman", "podman"),
    ("runc", "runc"),
];

/// Debian's hook that tells maintainer scripts not to start services.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

fn present(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {cmd}")).output().is_ok_and(|o| o.status.success())
}

/// (command, PyPI package): the Kubernetes manifests are checked against the
/// Kubernetes schemas it bundles (no cluster runs here).
const PYPI: [(&str, &str); 1] = [("kubernetes-validate", "kubernetes-validate")];

/// The integration tests' tools.
pub fn ensure() -> Result<()> {
    ensure_packages(&[&TOOLS[..], &PACKAGING[..]].concat())?;
    ensure_pypi(&PYPI)
}

/// Installs the PyPI package of each missing (command, package) with the machine's python3.
fn ensure_pypi(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = tools.iter().filter(|(c, _)| !present(c)).map(|(_, p)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {} from PyPI", missing.join(" "));
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--root-user-action=ignore"])
        .args(&missing)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "could not install {} from PyPI: `python3 -m pip install {}` and retry",
            missing.join(" "),
            missing.join(" ")
        );
    }
    Ok(())
}

/// Installs the Debian package of each missing (command, package).
pub fn ensure_packages(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools.iter().filter(|(c, _)| !present(c)).map(|(_, p)| *p).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    install(&missing)
}

/// Installs Debian `packages` (service starts denied).
pub fn install(missing: &[&str]) -> Result<()> {
    eprintln!("xtask: installing {} from Debian's packages", missing.join(" "));
    // A test machine must not start nginx on port 80 as a side effect: deny
    // service starts while installing (unless the machine already has a policy).
    let own_policy = !std::path::Path::new(POLICY_RC_D).exists()
        && std::fs::write(POLICY_RC_D, "#!/bin/sh\nexit 101\n").is_ok()
        && Command::new("chmod").args(["+x", POLICY_RC_D]).status().is_ok_and(|s| s.success());
    let ok = Command::new("apt-get").arg("update").status().is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(missing)
            .status()
            .is_ok_and(|s| s.success());
    if own_policy {
        let _ = std::fs::remove_file(POLICY_RC_D);
    }
    if !ok {
        bail!("could not install {}: install them with your package manager and retry", missing.join(" "));
    }
    Ok(())
}
