//! Makes sure the pieces that build the eBPF object are present, installing
//! what is missing, idempotently: the pinned nightly with `rust-src`, and a
//! `bpf-linker` linked against that nightly's own libLLVM (no system LLVM).
//! Recipe: ../shared/docs/toolchain.md.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The nightly that builds rst-ebpf (also read by rst-user/build.rs).
pub const NIGHTLY: &str = include_str!("../../rst-ebpf/TOOLCHAIN");
const BPF_LINKER_VERSION: &str = "0.13.0";

fn nightly() -> &'static str {
    NIGHTLY.trim()
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(cmd: &mut Command, what: &str, hint: &str) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd.status().with_context(|| format!("{what}: cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status}). {hint}");
    }
    Ok(())
}

fn ensure_nightly() -> Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", nightly()]))
        .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src")));
    if installed {
        return Ok(());
    }
    let args =
        ["toolchain", "install", nightly(), "--profile", "minimal", "--component", "rust-src", "--no-self-update"];
    run(
        Command::new("rustup").args(args),
        &format!("installing Rust {} with rust-src (builds the eBPF object)", nightly()),
        &format!("rustup must be able to download; retry with `rustup {}`", args.join(" ")),
    )
}

fn sysroot() -> Result<PathBuf> {
    let s = output(Command::new("rustc").arg(format!("+{}", nightly())).args(["--print", "sysroot"]))
        .with_context(|| format!("`rustc +{} --print sysroot` failed", nightly()))?;
    Ok(PathBuf::from(s.trim()))
}

/// The nightly's own libLLVM (`libLLVM.so.<major>.<minor>-rust-<version>`) and its major version.
fn nightly_llvm(sysroot: &Path) -> Result<(PathBuf, String)> {
    let lib = sysroot.join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("libLLVM.so.")
            && name.contains("-rust-")
        {
            let major = rest.split('.').next().unwrap_or_default().to_string();
            return Ok((lib.join(&name), major));
        }
    }
    bail!(
        "no libLLVM.so.*-rust-* in {}: the nightly toolchain looks incomplete; reinstall it with `rustup toolchain install {} --force`",
        lib.display(),
        nightly()
    )
}

fn cargo_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"), PathBuf::from);
    home.join("bin")
}

/// True when `bpf-linker` runs by itself and loads the nightly's libLLVM.
fn bpf_linker_ok(sysroot: &Path) -> bool {
    let bin = cargo_bin().join("bpf-linker");
    let runs = output(Command::new(&bin).arg("--version").env_remove("LD_LIBRARY_PATH"))
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION));
    let linked = output(Command::new("ldd").arg(&bin).env_remove("LD_LIBRARY_PATH")).is_some_and(|l| {
        l.lines().any(|l| l.contains("libLLVM") && l.contains(&*sysroot.join("lib").to_string_lossy()))
    });
    runs && linked
}

fn ensure_bpf_linker(target_dir: &Path) -> Result<()> {
    let sysroot = sysroot()?;
    if bpf_linker_ok(&sysroot) {
        return Ok(());
    }
    let (llvm, major) = nightly_llvm(&sysroot)?;
    // bpf-linker's build looks for $LLVM_PREFIX/lib/libLLVM.so: point it at the nightly's copy.
    let prefix = target_dir.join("llvm-prefix");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib)?;
    for name in ["libLLVM.so".into(), llvm.file_name().unwrap_or_default().to_string_lossy().into_owned()] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm, &link)?;
    }
    run(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--force",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{major}"))
            .env("LLVM_PREFIX", &prefix)
            // rpath: the linker finds the nightly's libLLVM without LD_LIBRARY_PATH.
            .env("RUSTFLAGS", format!("-C link-arg=-Wl,-rpath,{}", sysroot.join("lib").display())),
        &format!("building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute, once)", llvm.display()),
        "cargo must reach crates.io; retry `cargo xtask build`",
    )?;
    if !bpf_linker_ok(&sysroot) {
        bail!(
            "bpf-linker was installed in {} but does not run with the nightly's libLLVM; check that {} is on PATH",
            cargo_bin().display(),
            cargo_bin().display()
        );
    }
    Ok(())
}

/// Everything the eBPF build needs; fast (two version checks) when present.
pub fn ensure(target_dir: &Path) -> Result<()> {
    if output(Command::new("rustup").arg("--version")).is_none() {
        bail!("rustup is not installed: rstwatch's eBPF object needs a nightly Rust toolchain managed by rustup");
    }
    ensure_nightly()?;
    ensure_bpf_linker(target_dir)
}

/// Clippy on the kernel programs, as configured (the workspace's pedantic
/// lints, warnings as errors): with the nightly that builds them (clippy
/// added to it once), for the BPF target.
pub fn clippy_ebpf(workspace: &Path) -> Result<()> {
    ensure_nightly()?;
    let has_clippy =
        output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", nightly()]))
            .is_some_and(|s| s.lines().any(|l| l.starts_with("clippy")));
    if !has_clippy {
        let args = ["component", "add", "clippy", "--toolchain", nightly()];
        run(
            Command::new("rustup").args(args),
            &format!("adding clippy to Rust {} (lints the eBPF programs)", nightly()),
            &format!("rustup must be able to download; retry with `rustup {}`", args.join(" ")),
        )?;
    }
    let manifest = workspace.join("rst-ebpf/Cargo.toml");
    run(
        Command::new("cargo")
            .current_dir(workspace)
            .arg(format!("+{}", nightly()))
            .args(["clippy", "--release", "--target", "bpfel-unknown-none", "-Z", "build-std=core", "--manifest-path"])
            .arg(manifest)
            .args(["--target-dir", "target/clippy-ebpf", "--", "-D", "warnings"])
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("RUSTC_WRAPPER"),
        "clippy on the eBPF programs",
        "fix the lints it names",
    )
}
