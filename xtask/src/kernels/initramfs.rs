//! The guest: the host-built test binaries with their libraries, and an initramfs with busybox-static,
//! iproute2, nsenter, kmod, the kernel's module tree and an `/init` that runs
//! the test set and reports on the second serial port.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Result, bail};

use super::{Kernel, TEST_SET, kernels_dir, run};
use crate::{rootfs::copy_with_libs, workspace};

/// The guest's binaries, (path in the guest, path on the host): `rstwatch` as given and the
/// kernel test set's test binaries as built for the host tests (dynamically linked: the
/// initramfs carries their libraries).
pub fn build_guest_binaries(rstwatch: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut bins = vec![("/bin/rstwatch".to_string(), rstwatch.to_path_buf())];
    // Every test binary (the host's root tests run the rest): one build for both.
    let args = ["test", "--no-run", "--package", "rst-tests", "--message-format=json"];
    let out = Command::new("cargo").args(args).current_dir(workspace()).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("building the test binaries failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        for t in TEST_SET {
            if line.contains(&format!("\"name\":\"{t}\"")) && line.contains("\"kind\":[\"test\"]") {
                let exe = line.split("\"executable\":\"").nth(1).and_then(|s| s.split('"').next());
                if let Some(exe) = exe {
                    bins.push((format!("/tests/{t}"), PathBuf::from(exe)));
                }
            }
        }
    }
    if bins.len() != 1 + TEST_SET.len() {
        bail!("cargo did not name every test binary of {TEST_SET:?}");
    }
    Ok(bins)
}

fn which(cmd: &str) -> Result<String> {
    let out = Command::new("sh").arg("-c").arg(format!("command -v {cmd}")).output()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if path.is_empty() {
        bail!("{cmd} not found");
    }
    Ok(path)
}

/// The guest's /init: mounts, modprobe, the test set, `RC=<n>` on ttyS1, power off.
fn init_script(filter: Option<&str>) -> String {
    let filter = filter.map(|f| format!(" '{}'", f.replace('\'', ""))).unwrap_or_default();
    let mut tests = String::new();
    for t in TEST_SET {
        writeln!(tests, "/tests/{t} --test-threads=1{filter} || rc=1").expect("string");
    }
    format!(
        r#"#!/bin/sh
# rstwatch kernel matrix guest init (written by cargo xtask).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin RSTWATCH_BIN=/bin/rstwatch RSTWATCH_MATRIX_ROW=/dev/ttyS1 HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
echo /sbin/modprobe > /proc/sys/kernel/modprobe
/sbin/ip link set lo up
echo "rstwatch-matrix: $(uname -r) booted"
cd /tmp
rc=0
{tests}echo "RC=$rc" > /dev/ttyS1
poweroff -f
"#
    )
}

/// Writes the initramfs for `kernel` (uncompressed newc cpio: fastest to unpack under emulation).
pub(super) fn initramfs(kernel: &Kernel, bins: &[(String, PathBuf)], filter: Option<&str>) -> Result<PathBuf> {
    let root = kernels_dir().join(format!("{}.root", kernel.series));
    let _ = fs::remove_dir_all(&root);
    for d in ["bin", "sbin", "proc", "sys", "dev", "tmp", "run", "tests", "lib/modules"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(which("busybox")?, root.join("bin/busybox"))?;
    // Only the applets /init and the tests call; iproute2 and nsenter are the real ones.
    for a in ["sh", "mount", "cat", "echo", "uname", "poweroff", "sleep", "sysctl"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a))?;
    }
    for (cmd, to) in [
        ("ip", "/sbin/ip"),
        ("tc", "/sbin/tc"),
        ("ss", "/bin/ss"),
        ("nsenter", "/bin/nsenter"),
        ("kmod", "/sbin/modprobe"),
        ("nft", "/sbin/nft"),
    ] {
        copy_with_libs(&root, Path::new(&which(cmd)?), to)?;
    }
    run(Command::new("cp").arg("-a").arg(&kernel.modules).arg(root.join("lib/modules")), "copying the module tree")?;
    run(Command::new("depmod").arg("-b").arg(&root).arg(&kernel.release), "depmod")?;
    for (to, path) in bins {
        copy_with_libs(&root, path, to)?;
        let dest = root.join(to.trim_start_matches('/'));
        run(Command::new("strip").arg("--strip-debug").arg(&dest), &format!("strip {}", dest.display()))?;
    }
    let init = root.join("init");
    fs::write(&init, init_script(filter))?;
    run(Command::new("chmod").arg("+x").arg(&init), "chmod /init")?;
    cpio(&root, &format!("{}.initrd", kernel.series))
}

/// Packs `root` as an uncompressed newc cpio (fastest to unpack under
/// emulation) named `name` in target/kernels, then removes `root`.
fn cpio(root: &Path, name: &str) -> Result<PathBuf> {
    let image = kernels_dir().join(name);
    run(
        Command::new("sh")
            .arg("-c")
            .arg("find . | cpio -o -H newc --quiet > \"$1\"")
            .arg("sh")
            .arg(&image)
            .current_dir(root),
        "cpio",
    )?;
    let _ = fs::remove_dir_all(root);
    Ok(image)
}

/// An initramfs whose `/init` only reports back: tells whether KVM really boots a guest.
pub(super) fn kvm_probe() -> Result<PathBuf> {
    let root = kernels_dir().join("kvm-probe.root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("bin"))?;
    fs::create_dir_all(root.join("dev"))?;
    fs::copy(which("busybox")?, root.join("bin/busybox"))?;
    for a in ["sh", "mount", "echo", "poweroff"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a))?;
    }
    fs::write(
        root.join("init"),
        "#!/bin/sh\nexport PATH=/bin\nmount -t devtmpfs dev /dev\necho RC=0 > /dev/ttyS1\npoweroff -f\n",
    )?;
    run(Command::new("chmod").arg("+x").arg(root.join("init")), "chmod")?;
    cpio(&root, "kvm-probe.initrd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_runs_every_test_binary_and_reports_on_the_second_serial_port() {
        let init = init_script(Some("seed_1"));
        for t in TEST_SET {
            assert!(init.contains(&format!("/tests/{t} --test-threads=1 'seed_1' || rc=1")), "{init}");
        }
        assert!(init.contains("echo \"RC=$rc\" > /dev/ttyS1"));
        assert!(init.contains("poweroff -f"));
    }
}
