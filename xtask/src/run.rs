//! `cargo xtask run`: the daemon in the foreground with the live view, through sudo when not root.

use std::{
    io::IsTerminal as _,
    path::Path,
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::workspace::{build, is_root, workspace};

/// Runs `cmd`, through sudo when not root (loading eBPF needs privileges).
fn privileged(bin: &Path) -> Command {
    if is_root() {
        Command::new(bin)
    } else {
        eprintln!("xtask: not root, running through sudo");
        let mut c = Command::new("sudo");
        c.arg(bin);
        c
    }
}

fn code(status: std::process::ExitStatus) -> ExitCode {
    ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
}

/// The daemon's listen address among `args`, else its default.
fn listen_addr(args: &[String]) -> String {
    args.iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--listen=").map(str::to_string)))
        .unwrap_or_else(|| "127.0.0.1:9477".into())
}

pub fn run(release: bool, args: &[String]) -> Result<ExitCode> {
    let bin = build(release)?;
    if !std::io::stdout().is_terminal() {
        let status = privileged(&bin).arg("run").arg("--live").args(args).status().context("starting rstwatch")?;
        return Ok(code(status));
    }
    let log_path = workspace().join("target").join("rstwatch-run.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut daemon = privileged(&bin)
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting rstwatch")?;
    let addr = listen_addr(args);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = daemon.try_wait()? {
            eprint!("{}", std::fs::read_to_string(&log_path).unwrap_or_default());
            return Ok(code(status));
        }
        let up = Command::new(&bin)
            .args(["snapshot", "--json", "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if up.success() {
            break;
        }
        if Instant::now() > deadline {
            let _ = daemon.kill();
            bail!("the daemon did not answer on {addr} within 30 s; its log: {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let top = Command::new(&bin).args(["top", "--listen", &addr]).status().context("starting rstwatch top")?;
    // SIGTERM: the daemon detaches everything and exits 0.
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let status = daemon.wait()?;
    eprintln!("xtask: daemon stopped ({status}); its log: {}", log_path.display());
    Ok(if top.success() { code(status) } else { code(top) })
}
