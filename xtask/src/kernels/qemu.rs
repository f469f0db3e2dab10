//! Booting a kernel with its initramfs in QEMU: KVM where it really boots a
//! guest, else software emulation; bounded in time.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Kernel, initramfs, kernels_dir};

/// How long a KVM probe boot may take before KVM counts as not working.
const KVM_PROBE_LIMIT: Duration = Duration::from_secs(20);

/// How to run guests: KVM where it really boots one, else software emulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

fn qemu(accel: Accel, vmlinuz: &Path, initrd: &Path, console: &Path, result: &Path) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => c.args(["-accel", "tcg", "-cpu", "max"]),
    };
    c.args(["-smp", "2", "-m", "1536M", "-nodefaults", "-no-reboot", "-display", "none", "-serial"])
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", result.display()))
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Boots and waits at most `limit`; returns (what ttyS1 said, the console) or why it failed.
pub(super) fn boot(accel: Accel, kernel: &Kernel, initrd: &Path, limit: Duration) -> Result<(String, String)> {
    let dir = kernels_dir();
    let console = dir.join(format!("{}.console.log", kernel.series));
    let result = dir.join(format!("{}.result", kernel.series));
    let _ = fs::remove_file(&result);
    let mut child = qemu(accel, &kernel.vmlinuz, initrd, &console, &result).spawn().context("starting qemu")?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = fs::read_to_string(&console).unwrap_or_default();
    let said = fs::read_to_string(&result).unwrap_or_default();
    match status {
        None => bail!("{} ({accel:?}) did not finish within {limit:?}", kernel.release),
        Some(s) if !s.success() => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("qemu ({accel:?}) exited with {s}: {}", err.trim())
        }
        Some(_) => Ok((said, log)),
    }
}

/// KVM only where it really boots a guest (here /dev/kvm hangs stock kernels
/// and `-cpu host` aborts): a probe boot with an init that only reports back.
pub fn choose_accel(kernel: &Kernel) -> Accel {
    if !Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    let probe = || -> Result<bool> {
        let image = initramfs::kvm_probe()?;
        let probe_kernel = Kernel { series: "kvm-probe".into(), ..kernel.clone() };
        Ok(boot(Accel::Kvm, &probe_kernel, &image, KVM_PROBE_LIMIT).is_ok_and(|(said, _)| said.contains("RC=0")))
    };
    if probe().unwrap_or(false) {
        Accel::Kvm
    } else {
        eprintln!("xtask: KVM does not boot a guest here; using software emulation (TCG)");
        Accel::Tcg
    }
}
