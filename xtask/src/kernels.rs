//! `cargo xtask test --kernels`: the kernel test set inside Debian's own
//! kernels (5.10, 6.1, 6.12), each booted in QEMU with an initramfs made here.
//! Facts this relies on (virtualisation here, package names, initramfs
//! pitfalls): ../shared/docs/kernels.md.
//!
//! Steps per kernel: fetch `linux-image-*-cloud-amd64-unsigned` with
//! `apt-get download` through an apt configuration private to xtask (cached
//! under target/kernels), unpack with `dpkg-deb -x`, build an initramfs
//! (busybox-static, iproute2, kmod, the module tree, static test binaries),
//! boot it, and read the result from the second serial port.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{tools, workspace};

/// The kernels every run covers: Debian 11, 12 and 13.
pub const MATRIX: [&str; 3] = ["5.10", "6.1", "6.12"];

/// Test binaries (tests/tests/<name>.rs) that make up the kernel test set.
pub const TEST_SET: [&str; 3] = ["seed", "kernels", "causes"];

/// Debian suites that carry the matrix's kernels (the archive this machine already uses).
const SUITES: [(&str, &str); 5] = [
    ("debian", "bullseye"),
    ("debian-security", "bullseye-security"),
    ("debian", "bookworm"),
    ("debian-security", "bookworm-security"),
    ("debian", "trixie"),
];

/// Under TCG a kernel boots in ~4 s; the test set takes minutes. A hang is a failure.
const BOOT_LIMIT: Duration = Duration::from_mins(15);
/// How long a KVM probe boot may take before KVM counts as not working.
const KVM_PROBE_LIMIT: Duration = Duration::from_secs(20);

fn kernels_dir() -> PathBuf {
    workspace().join("target").join("kernels")
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{what}: cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// `apt-get`/`apt-cache` with lists, cache and sources private to xtask.
fn apt(tool: &str) -> Command {
    let dir = kernels_dir().join("apt");
    let mut c = Command::new(tool);
    for (k, v) in [
        ("Dir::Etc::sourcelist", dir.join("sources.list")),
        ("Dir::Etc::sourceparts", PathBuf::from("-")),
        ("Dir::State::Lists", dir.join("lists")),
        ("Dir::Cache", dir.join("cache")),
        ("Dir::Etc::preferencesparts", dir.join("preferences.d")),
        // Files land in a root-owned folder: no privilege drop to _apt.
        ("APT::Sandbox::User", PathBuf::from("root")),
    ] {
        c.arg("-o").arg(format!("{k}={}", v.display()));
    }
    c.arg("-q");
    c
}

/// The Debian mirror this machine's apt already uses (deb822 or one-line sources).
fn mirror() -> String {
    let texts = ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("\n");
    texts
        .split_whitespace()
        .find(|w| w.starts_with("http") && w.ends_with("/debian"))
        .map_or_else(|| "http://deb.debian.org/debian".into(), str::to_string)
}

fn ensure_apt_lists() -> Result<()> {
    let dir = kernels_dir().join("apt");
    for d in ["lists/partial", "cache/archives/partial", "preferences.d"] {
        fs::create_dir_all(dir.join(d))?;
    }
    let base = mirror();
    let security = base.replace("/debian", "/debian-security");
    let mut sources = String::new();
    for (archive, suite) in SUITES {
        let url = if archive == "debian" { &base } else { &security };
        writeln!(sources, "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {url} {suite} main")?;
    }
    let list = dir.join("sources.list");
    let fresh = fs::read_to_string(&list).is_ok_and(|s| s == sources)
        && fs::read_dir(dir.join("lists")).is_ok_and(|d| d.count() > 2);
    if !fresh {
        fs::write(&list, sources)?;
        eprintln!("xtask: reading Debian's package lists for {} (private to xtask)", list.display());
        run(apt("apt-get").arg("update"), "apt-get update (kernel packages)")?;
    }
    Ok(())
}

/// Numeric parts of a kernel package version (`6.12.117+deb13` -> 6, 12, 117, 13), for sorting.
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok()).collect()
}

/// Package names of `series` (strictly: `6.1.` is not `6.12.`), newest first.
#[must_use]
pub fn candidates(series: &str, names: &str) -> Vec<String> {
    let mut found: Vec<(Vec<u64>, String)> = names
        .lines()
        .filter_map(|n| {
            let v = n.trim().strip_prefix("linux-image-")?.strip_suffix("-cloud-amd64-unsigned")?;
            // 6.1.0-0.deb11.N are backports built for Debian 11: prefer Debian 12's own 6.1.0-N.
            (v.strip_prefix(series)?.starts_with('.') && !v.contains("-0.deb")).then(|| (version_key(v), n.to_string()))
        })
        .collect();
    found.sort();
    found.dedup();
    found.into_iter().rev().map(|(_, n)| n).collect()
}

/// An unpacked kernel: its image, release name and module tree.
#[derive(Clone)]
pub struct Kernel {
    pub series: String,
    pub release: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

fn unpacked(dir: &Path) -> Option<Kernel> {
    let boot = dir.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))?;
    let release = vmlinuz.file_name()?.to_string_lossy().strip_prefix("vmlinuz-")?.to_string();
    // 6.12 ships its modules under usr/lib/modules.
    let modules = ["lib/modules", "usr/lib/modules"].iter().map(|m| dir.join(m).join(&release)).find(|p| p.is_dir())?;
    let series = dir.file_name()?.to_string_lossy().into_owned();
    Some(Kernel { series, release, vmlinuz, modules })
}

/// The kernel of `series`, downloaded and unpacked once (cached in target/kernels).
pub fn fetch(series: &str) -> Result<Kernel> {
    let dir = kernels_dir().join(series);
    if let Some(k) = unpacked(&dir) {
        return Ok(k);
    }
    ensure_apt_lists()?;
    let names = apt("apt-cache").args(["pkgnames", "linux-image-"]).output().context("apt-cache pkgnames")?;
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    let debs = kernels_dir().join("debs");
    fs::create_dir_all(&debs)?;
    let list = candidates(series, &names);
    if list.is_empty() {
        bail!(
            "no linux-image-{series}.*-cloud-amd64-unsigned package in Debian's lists; check network access to Debian's archive"
        );
    }
    let mut errors = Vec::new();
    // The newest listed version is not always served: fall back to the next.
    for name in list.iter().take(6) {
        eprintln!("xtask: downloading {name}");
        match run(apt("apt-get").arg("download").arg(name).current_dir(&debs), &format!("apt-get download {name}")) {
            Ok(()) => {
                let deb = fs::read_dir(&debs)?
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}_"))))
                    .with_context(|| format!("apt-get download {name} left no .deb in {}", debs.display()))?;
                let tmp = kernels_dir().join(format!("{series}.tmp"));
                let _ = fs::remove_dir_all(&tmp);
                run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp), "dpkg-deb -x")?;
                let _ = fs::remove_dir_all(&dir);
                fs::rename(&tmp, &dir)?;
                let _ = fs::remove_file(&deb);
                return unpacked(&dir).with_context(|| format!("{name} has no vmlinuz or module tree"));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    bail!("no {series} kernel could be downloaded: {}", errors.join("; "))
}

/// Tools the matrix needs on the host, installed from Debian's packages when missing.
pub fn ensure_tools() -> Result<()> {
    tools::ensure_packages(&[
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
        ("depmod", "kmod"),
        ("dpkg-deb", "dpkg"),
        ("strip", "binutils"),
    ])
}

/// Static test binaries for the guest: (name in the guest, path on the host).
pub fn build_guest_binaries() -> Result<Vec<(String, PathBuf)>> {
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    // No musl target can be installed here: a static glibc build. Target-scoped
    // flags keep build scripts and proc macros dynamic.
    let flags = ("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS", "-C target-feature=+crt-static");
    eprintln!("xtask: building static binaries for the kernel matrix");
    let status = Command::new("cargo")
        .args(["build", "--package", "rst-user", "--bin", "rstwatch", "--target", TARGET])
        .env(flags.0, flags.1)
        .current_dir(workspace())
        .status()?;
    if !status.success() {
        bail!("building the static rstwatch failed");
    }
    let mut bins =
        vec![("rstwatch".to_string(), workspace().join("target").join(TARGET).join("debug").join("rstwatch"))];
    let mut args = vec!["test", "--no-run", "--package", "rst-tests", "--target", TARGET, "--message-format=json"];
    for t in TEST_SET {
        args.extend(["--test", t]);
    }
    let out = Command::new("cargo")
        .args(&args)
        .env(flags.0, flags.1)
        .current_dir(workspace())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("building the static test binaries failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        for t in TEST_SET {
            if line.contains(&format!("\"name\":\"{t}\"")) && line.contains("\"kind\":[\"test\"]") {
                let exe = line.split("\"executable\":\"").nth(1).and_then(|s| s.split('"').next());
                if let Some(exe) = exe {
                    bins.push((format!("tests/{t}"), PathBuf::from(exe)));
                }
            }
        }
    }
    if bins.len() != 1 + TEST_SET.len() {
        bail!("cargo did not name every test binary of {TEST_SET:?}");
    }
    Ok(bins)
}

/// Copies a dynamically linked host binary and the libraries `ldd` names, at the same paths.
fn copy_with_libs(root: &Path, from: &str, to: &str) -> Result<()> {
    let dest = root.join(to.trim_start_matches('/'));
    fs::create_dir_all(dest.parent().expect("absolute path"))?;
    fs::copy(from, &dest).with_context(|| format!("copying {from}"))?;
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
pub fn initramfs(kernel: &Kernel, bins: &[(String, PathBuf)], filter: Option<&str>) -> Result<PathBuf> {
    let root = kernels_dir().join(format!("{}.root", kernel.series));
    let _ = fs::remove_dir_all(&root);
    for d in ["bin", "sbin", "proc", "sys", "dev", "tmp", "run", "tests", "lib/modules"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(which("busybox")?, root.join("bin/busybox"))?;
    // Only the applets /init and the tests call; iproute2 and nsenter are the real ones.
    for a in ["sh", "mount", "cat", "echo", "uname", "poweroff", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a))?;
    }
    copy_with_libs(&root, &which("ip")?, "/sbin/ip")?;
    copy_with_libs(&root, &which("tc")?, "/sbin/tc")?;
    copy_with_libs(&root, &which("ss")?, "/bin/ss")?;
    copy_with_libs(&root, &which("nsenter")?, "/bin/nsenter")?;
    copy_with_libs(&root, &which("kmod")?, "/sbin/modprobe")?;
    run(Command::new("cp").arg("-a").arg(&kernel.modules).arg(root.join("lib/modules")), "copying the module tree")?;
    run(Command::new("depmod").arg("-b").arg(&root).arg(&kernel.release), "depmod")?;
    for (name, path) in bins {
        run(
            Command::new("strip").arg("--strip-debug").arg("-o").arg(root.join(name.as_str())).arg(path),
            &format!("strip {}", path.display()),
        )?;
    }
    // rstwatch goes to /bin.
    fs::rename(root.join("rstwatch"), root.join("bin/rstwatch"))?;
    let init = root.join("init");
    fs::write(&init, init_script(filter))?;
    run(Command::new("chmod").arg("+x").arg(&init), "chmod /init")?;
    let image = kernels_dir().join(format!("{}.initrd", kernel.series));
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | cpio -o -H newc --quiet > \"$1\"")
        .arg("sh")
        .arg(&image)
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("cpio failed");
    }
    let _ = fs::remove_dir_all(&root);
    Ok(image)
}

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
fn boot(accel: Accel, kernel: &Kernel, initrd: &Path, limit: Duration) -> Result<(String, String)> {
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
        let image = kernels_dir().join("kvm-probe.initrd");
        run(
            Command::new("sh")
                .arg("-c")
                .arg("find . | cpio -o -H newc --quiet > \"$1\"")
                .arg("sh")
                .arg(&image)
                .current_dir(&root),
            "cpio",
        )?;
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

/// One kernel's outcome: its table row (from the kernel test set) and whether it passed.
pub struct Outcome {
    pub release: String,
    pub passed: bool,
    pub row: Option<String>,
    pub seconds: u64,
}

/// Boots `kernel` with the test set and reads its verdict.
pub fn run_kernel(kernel: &Kernel, accel: Accel, bins: &[(String, PathBuf)], filter: Option<&str>) -> Result<Outcome> {
    let started = Instant::now();
    let initrd = initramfs(kernel, bins, filter)?;
    eprintln!("xtask: booting {} ({accel:?})", kernel.release);
    let (said, console) = match boot(accel, kernel, &initrd, BOOT_LIMIT) {
        Ok(r) => r,
        Err(e) => {
            let log =
                fs::read_to_string(kernels_dir().join(format!("{}.console.log", kernel.series))).unwrap_or_default();
            eprintln!("{}", tail(&log, 60));
            return Err(e);
        }
    };
    let passed = said.lines().any(|l| l.trim() == "RC=0");
    if !passed {
        eprintln!("--- console of {} ---\n{}", kernel.release, tail(&console, 400));
    }
    // The HEAD and ROW lines the kernel test set wrote (see tests/tests/kernels.rs).
    let row = said.lines().filter(|l| l.starts_with("HEAD ") || l.starts_with("ROW ")).collect::<Vec<_>>().join("\n");
    let row = (!row.is_empty()).then_some(row);
    Ok(Outcome { release: kernel.release.clone(), passed, row, seconds: started.elapsed().as_secs() })
}

/// This machine's kernel release.
#[must_use]
pub fn host_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "host".into(), |s| format!("{} (host)", s.trim()))
}

/// A Markdown table: one row per kernel from the `HEAD`/`ROW` lines each run wrote.
#[must_use]
pub fn table(runs: &[(String, String)]) -> String {
    let head = runs.iter().find_map(|(_, said)| said.lines().find_map(|l| l.strip_prefix("HEAD "))).unwrap_or("| |");
    let cols = head.matches('|').count().saturating_sub(1);
    let mut t = format!("| kernel {head}\n|---{}\n", "|---".repeat(cols) + "|");
    for (release, said) in runs {
        let row = said.lines().find_map(|l| l.strip_prefix("ROW ")).unwrap_or("| (no result) |");
        let _ = writeln!(t, "| {release} {row}");
    }
    t
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_match_the_series_strictly_newest_first() {
        let names = "linux-image-6.1.0-47-cloud-amd64-unsigned\n\
                     linux-image-6.1.0-0.deb11.52-cloud-amd64-unsigned\n\
                     linux-image-6.12.107+deb13-cloud-amd64-unsigned\n\
                     linux-image-6.1.0-57-cloud-amd64-unsigned\n\
                     linux-image-6.12.117+deb12-cloud-amd64-unsigned\n\
                     linux-image-6.12.117+deb13-cloud-amd64-unsigned\n\
                     linux-image-5.10.0-9-cloud-amd64-unsigned\n\
                     linux-image-5.10.0-43-cloud-amd64-unsigned\n";
        assert_eq!(
            candidates("6.1", names),
            ["linux-image-6.1.0-57-cloud-amd64-unsigned", "linux-image-6.1.0-47-cloud-amd64-unsigned"]
        );
        assert_eq!(
            candidates("6.12", names),
            [
                "linux-image-6.12.117+deb13-cloud-amd64-unsigned",
                "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
                "linux-image-6.12.107+deb13-cloud-amd64-unsigned"
            ]
        );
        assert_eq!(
            candidates("5.10", names),
            ["linux-image-5.10.0-43-cloud-amd64-unsigned", "linux-image-5.10.0-9-cloud-amd64-unsigned"]
        );
    }

    #[test]
    fn table_has_one_row_per_kernel_under_the_test_sets_header() {
        let runs = [
            ("5.10.0-43-cloud-amd64".to_string(), "HEAD | sent | wire |\nROW | 6/6 | yes |\nRC=0".to_string()),
            ("6.1.0-57-cloud-amd64".to_string(), "RC=1".to_string()),
        ];
        assert_eq!(
            table(&runs),
            "| kernel | sent | wire |\n|---|---|---|\n| 5.10.0-43-cloud-amd64 | 6/6 | yes |\n| 6.1.0-57-cloud-amd64 | (no result) |\n"
        );
    }

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
