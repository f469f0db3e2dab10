//! `cargo xtask install`: the binary, the systemd unit, a commented example
//! config (kept when one exists) and bash completions.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

/// Installs below `root` (usually `/`) with binaries under `prefix`; returns what was written.
pub fn install(bin: &Path, workspace: &Path, root: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    let under = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let mut written = Vec::new();
    let mut put = |dest: PathBuf, bytes: &[u8], mode: u32| -> Result<()> {
        std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
        std::fs::write(&dest, bytes).with_context(|| format!("writing {}", dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        written.push(dest);
        Ok(())
    };
    let installed_bin = prefix.join("bin").join("rstwatch");
    put(under(&installed_bin), &std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?, 0o755)?;
    let unit = std::fs::read_to_string(workspace.join("packaging/rstwatch.service"))?
        .replace("/usr/local/bin/rstwatch", &installed_bin.to_string_lossy());
    put(under(Path::new("/etc/systemd/system/rstwatch.service")), unit.as_bytes(), 0o644)?;
    let config = under(Path::new("/etc/rstwatch/rstwatch.toml"));
    if config.exists() {
        eprintln!("xtask: keeping the existing {}", config.display());
    } else {
        put(config, &std::fs::read(workspace.join("packaging/rstwatch.toml"))?, 0o644)?;
    }
    let completions = Command::new(bin).args(["completions", "bash"]).output().context("generating completions")?;
    put(under(&prefix.join("share/bash-completion/completions/rstwatch")), &completions.stdout, 0o644)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_binary_unit_config_and_completions_under_root() {
        let root = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        // /bin/echo stands in for the binary: it "prints completions".
        let files = install(Path::new("/bin/echo"), workspace, &root, Path::new("/opt/rst")).unwrap();
        assert_eq!(files.len(), 4);
        let unit = std::fs::read_to_string(root.join("etc/systemd/system/rstwatch.service")).unwrap();
        assert!(unit.contains("ExecStart=/opt/rst/bin/rstwatch run"));
        assert!(root.join("opt/rst/bin/rstwatch").metadata().unwrap().permissions().mode() & 0o111 != 0);
        assert!(std::fs::read_to_string(root.join("etc/rstwatch/rstwatch.toml")).unwrap().contains("sample_rate"));
        // a second install keeps the edited config
        std::fs::write(root.join("etc/rstwatch/rstwatch.toml"), "sample_rate = 1\n").unwrap();
        assert_eq!(install(Path::new("/bin/echo"), workspace, &root, Path::new("/opt/rst")).unwrap().len(), 3);
        assert_eq!(std::fs::read_to_string(root.join("etc/rstwatch/rstwatch.toml")).unwrap(), "sample_rate = 1\n");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
