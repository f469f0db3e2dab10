//! Builds the kernel object (rst-ebpf) with the pinned nightly and embeds it.
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let toolchain = include_str!("../rst-ebpf/TOOLCHAIN").trim();
    println!("cargo:rerun-if-changed=../rst-ebpf/TOOLCHAIN");
    println!("cargo:rerun-if-changed=../rst-common/src");
    // Steps left out of the kernel programs, for `cargo xtask bench --steps` only.
    println!("cargo:rerun-if-env-changed=RSTWATCH_SKIP_STEPS");
    aya_build::build_ebpf(
        [Package { name: "rst-ebpf", root_dir: "../rst-ebpf", ..Package::default() }],
        Toolchain::Custom(toolchain),
    )
}
