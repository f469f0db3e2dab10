//! The real `rstwatch run`, started inside a test namespace, stopped on drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{
    namespaces::netns::{Netns, run_in},
    rig::snapshot::Snapshot,
    wait,
};

pub const LISTEN: &str = "127.0.0.1:9477";

/// Path of the binary under test (`cargo xtask test` sets RSTWATCH_BIN).
#[must_use]
pub fn bin() -> String {
    std::env::var("RSTWATCH_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/rstwatch").into())
}

pub struct Daemon {
    ns: String,
    /// Where it serves (`--listen`).
    listen: String,
    child: Option<Child>,
    /// Its own pin directory, when it made one.
    own_pins: Option<Pins>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A pin directory of the test's own under /sys/fs/bpf, removed (with what
/// is pinned in it) on drop.
pub struct Pins(pub PathBuf);

impl Pins {
    #[must_use]
    pub fn new() -> Self {
        Self(PathBuf::from(format!(
            "/sys/fs/bpf/rstw-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )))
    }
}

impl Default for Pins {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Daemon {
    /// Starts `rstwatch run` in `ns` with `args` (and counters pinned in a
    /// directory of its own) and waits until it serves.
    #[must_use]
    pub fn start(ns: &Netns, args: &[&str]) -> Self {
        Self::start_env(ns, args, &[])
    }

    /// Like [`Daemon::start`], with `env` set for the daemon.
    #[must_use]
    pub fn start_env(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Self {
        let pins = Pins::new();
        let mut d = Self::start_with(ns, &pins.0, args, env);
        d.own_pins = Some(pins);
        d
    }

    /// Like [`Daemon::start`] with a given pin directory (kept on drop) and environment.
    #[must_use]
    pub fn start_with(ns: &Netns, pins: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(ns, pins, args, env, Stdio::inherit())
    }

    /// Like [`Daemon::start_with`], its log (stderr) written to `log`.
    #[must_use]
    pub fn start_logged(ns: &Netns, pins: &Path, args: &[&str], log: &Path) -> Self {
        Self::start_logged_env(ns, pins, args, &[], log)
    }

    /// Like [`Daemon::start_logged`], with `env` set for the daemon.
    #[must_use]
    pub fn start_logged_env(ns: &Netns, pins: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("creating the daemon's log");
        Self::spawn(ns, pins, args, env, Stdio::from(file))
    }

    /// Like [`Daemon::start`], serving on `listen` (an address of its namespace) instead of loopback.
    #[must_use]
    pub fn start_listening(ns: &Netns, listen: &str, args: &[&str]) -> Self {
        let pins = Pins::new();
        let mut d = Self::spawn_on(ns, listen, &pins.0, args, &[], Stdio::inherit());
        d.own_pins = Some(pins);
        d
    }

    fn spawn(ns: &Netns, pins: &Path, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Self {
        Self::spawn_on(ns, LISTEN, pins, args, env, stderr)
    }

    fn spawn_on(ns: &Netns, listen: &str, pins: &Path, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Self {
        // Like systemd, name the daemon's own pid in WATCHDOG_PID (sh execs nsenter, which execs rstwatch).
        let child = Command::new("sh")
            .args(["-c", "WATCHDOG_PID=$$ exec \"$@\"", "sh", "nsenter"])
            .arg(format!("--net={}", ns.path()))
            .arg(bin())
            .args(["run", "--listen", listen, "--poll-ms", "100", "--top", "1000", "--pin-dir"])
            .arg(pins)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting rstwatch");
        let mut d = Self { ns: ns.path(), listen: listen.to_string(), child: Some(child), own_pins: None };
        // With a web configuration (TLS, auth) plain HTTP gets no snapshot: the port accepting is the sign.
        let secured = args.contains(&"--web-config");
        wait::until("rstwatch to serve", Duration::from_secs(20), Duration::from_millis(100), || {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("rstwatch exited early: {status}");
            }
            if secured {
                let addr: std::net::SocketAddr = d.listen.parse().expect("an IP:PORT");
                return run_in(&d.ns, || std::net::TcpStream::connect(addr)).map(drop).map_err(|e| e.to_string());
            }
            d.try_get("/snapshot").map(drop).ok_or_else(|| "no answer".to_string())
        });
        d
    }

    fn try_get(&self, path: &str) -> Option<String> {
        let url = format!("http://{}{path}", self.listen);
        run_in(&self.ns, || ureq::get(&url).call().ok()?.body_mut().read_to_string().ok())
    }

    /// GET `path` with an `Accept` header, whatever the status: (status, content type, body).
    #[must_use]
    pub fn request(&self, path: &str, accept: &str) -> (u16, String, String) {
        let url = format!("http://{}{path}", self.listen);
        run_in(&self.ns, || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut r = agent.get(&url).header("Accept", accept).call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let kind = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            (r.status().as_u16(), kind, r.body_mut().read_to_string().expect("a text body"))
        })
    }

    /// GET `path` from the daemon (from inside its namespace).
    #[must_use]
    pub fn get(&self, path: &str) -> String {
        self.try_get(path).unwrap_or_else(|| panic!("GET {path} failed"))
    }

    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::parse(&self.get("/snapshot"))
    }

    /// A snapshot whose counts the daemon read after this call began: the
    /// one published two polls after the current one (the next poll may have
    /// read its counts already; the one after it cannot have).
    #[must_use]
    pub fn fresh_snapshot(&self) -> Snapshot {
        let mut seen = self.snapshot();
        for poll in ["the daemon's next poll", "the poll after it"] {
            let was = seen.json["time"].clone();
            seen = self.wait_for(poll, |s| s.json["time"] != was);
        }
        seen
    }

    /// Polls until `done(snapshot)` holds (at most 10 s), then returns that snapshot.
    pub fn wait_for(&self, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        wait::until(what, Duration::from_secs(10), Duration::from_millis(100), || {
            let s = self.snapshot();
            if done(&s) { Ok(s) } else { Err(s.json.to_string()) }
        })
    }

    /// The daemon's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then the exit status.
    #[must_use = "check the exit status"]
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(libc::pid_t::try_from(child.id()).expect("pid fits"), libc::SIGTERM) };
        child.wait().expect("waiting for rstwatch")
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("daemon already stopped");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}
