//! Debian's own kernel packages, through an apt configuration private to
//! xtask (its sources list, lists and cache under target/kernels/apt), newest
//! version first, unpacked once with `dpkg-deb -x`.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{kernels_dir, run};

/// Debian suites that carry the matrix's kernels (the archive this machine already uses).
const SUITES: [(&str, &str); 5] = [
    ("debian", "bullseye"),
    ("debian-security", "bullseye-security"),
    ("debian", "bookworm"),
    ("debian-security", "bookworm-security"),
    ("debian", "trixie"),
];

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
}
