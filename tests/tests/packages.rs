//! The Debian package (issue 16), installed the way an operator would on
//! this machine: `dpkg -i`, then the binary, man pages and unit as Debian
//! sees them, then `dpkg --purge` leaves no file of ours behind.
//!
//! Ignored in a plain `cargo test`: it needs the .deb, which `cargo xtask
//! test` builds (`cargo xtask deb`) and names in RSTWATCH_DEB before running
//! it with `--ignored`.

use std::{path::Path, process::Command};

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let (ok, out) = run(cmd, args);
    assert!(ok, "`{cmd} {}` failed:\n{out}", args.join(" "));
    out
}

#[test]
#[ignore = "needs the .deb: run by `cargo xtask test`, which builds it"]
fn deb_installs_documents_itself_and_purges_clean() {
    let deb = std::env::var("RSTWATCH_DEB").expect("RSTWATCH_DEB: the .deb to test (`cargo xtask deb` builds it)");
    let version = env!("CARGO_PKG_VERSION");
    assert!(deb.ends_with(&format!("rstwatch_{version}_amd64.deb")), "{deb}");
    assert!(
        !run("dpkg", &["-s", "rstwatch"]).0,
        "rstwatch is already installed here as a package; this test installs and purges it: remove it first"
    );
    ok("dpkg", &["-i", &deb]);
    let files = ok("dpkg", &["-L", "rstwatch"]);
    let purge = scopeguard(|| {
        let _ = run("dpkg", &["--purge", "rstwatch"]);
    });

    assert_eq!(ok("/usr/bin/rstwatch", &["--version"]).trim(), format!("rstwatch {version}"));
    for page in ["rstwatch", "rstwatch-run", "rstwatch-snapshot", "rstwatch-top"] {
        let path = ok("man", &["-w", page]);
        assert!(path.trim().ends_with(&format!("man8/{page}.8.gz")), "{page}: {path}");
    }
    let unit = files.lines().find(|f| f.ends_with("/systemd/system/rstwatch.service")).expect("the unit is packaged");
    assert!(std::fs::read_to_string(unit).unwrap().contains("ExecStart=/usr/bin/rstwatch run"));
    ok("systemd-analyze", &["verify", unit]);
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/rstwatch.service").exists(),
        "installing must not enable the service: the operator chooses interfaces first"
    );
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", "rstwatch"]);
    assert!(conffiles.contains("/etc/rstwatch/rstwatch.toml"), "{conffiles}");
    for f in [
        "/usr/share/bash-completion/completions/rstwatch",
        "/usr/share/zsh/vendor-completions/_rstwatch",
        "/usr/share/fish/vendor_completions.d/rstwatch.fish",
        "/usr/share/doc/rstwatch/copyright",
        "/usr/share/doc/rstwatch/README.md",
    ] {
        assert!(files.lines().any(|l| l == f), "{f} packaged:\n{files}");
    }

    drop(purge);
    assert!(!run("dpkg", &["-s", "rstwatch"]).0, "purged");
    let left: Vec<&str> = files
        .lines()
        .filter(|f| {
            let p = Path::new(f);
            p.exists() && !p.is_dir()
        })
        .collect();
    assert!(left.is_empty(), "files of ours left after purge: {left:?}");
    for d in ["/etc/rstwatch", "/usr/share/doc/rstwatch"] {
        assert!(!Path::new(d).exists(), "{d} left after purge");
    }
}

/// Runs `f` on drop (a failed assertion still purges the package).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
