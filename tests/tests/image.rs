//! The container image (issue 16), run as the DaemonSet runs it: privileged,
//! host network and PID namespace, bpffs, tracefs and the host's cgroup2
//! tree mounted in; a reset made on loopback is read back from its /snapshot.
//!
//! Ignored in a plain `cargo test`: it needs the image, which `cargo xtask
//! test` builds (`cargo xtask image`) and names in RSTWATCH_IMAGE.

use std::{net::SocketAddr, process::Command, time::Duration};

use rst_tests::{namespaces::cgroup, rig::daemon::Pins, rig::snapshot::Snapshot, wait};

const LISTEN: &str = "127.0.0.1:9479";
const CLOSED: u16 = 7399;

fn podman(args: &[&str]) -> (bool, String) {
    // vfs: the storage `cargo xtask image` built into. runc: crun refuses hybrid cgroup hosts like this one.
    let out = Command::new("podman")
        .args(["--storage-driver", "vfs", "--runtime", "runc"])
        .args(args)
        .output()
        .expect("podman (Debian's package; `cargo xtask test` installs it)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// This process's (soft, hard) limit of `resource`, capped: podman's defaults raise them, which
/// a sandbox without CAP_SYS_RESOURCE refuses.
fn limit(resource: libc::__rlimit_resource_t, cap: u64) -> String {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(resource, &raw mut l) }, 0);
    format!("{}:{}", l.rlim_cur.min(cap), l.rlim_max.min(cap))
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "5", &self.0]);
    }
}

#[test]
#[ignore = "needs the image: run by `cargo xtask test`, which builds it"]
fn image_runs_as_the_daemonset_and_counts_a_reset() {
    let image =
        std::env::var("RSTWATCH_IMAGE").expect("RSTWATCH_IMAGE: the image to test (`cargo xtask image` builds it)");
    let pins = Pins::new();
    let name = format!("rstwatch-test-{}", std::process::id());
    let cgroups = format!("{}:/host/sys/fs/cgroup:ro", cgroup::mount().display());
    let pin_dir = pins.0.display().to_string();
    let (nofile, nproc) = (limit(libc::RLIMIT_NOFILE, 1 << 20), limit(libc::RLIMIT_NPROC, 1 << 14));
    let (ok, out) = podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--privileged",
        "--network",
        "host",
        "--pid",
        "host",
        "--ulimit",
        &format!("nofile={nofile}"),
        "--ulimit",
        &format!("nproc={nproc}"),
        "--volume",
        "/sys/fs/bpf:/sys/fs/bpf",
        "--volume",
        "/sys/kernel/tracing:/sys/kernel/tracing",
        "--volume",
        &cgroups,
        &image,
        "run",
        "--listen",
        LISTEN,
        "--pin-dir",
        &pin_dir,
        "--cgroup-root",
        "/host/sys/fs/cgroup",
        "--poll-ms",
        "100",
    ]);
    assert!(ok, "podman run: {out}");
    let container = Container(name);
    let get = |path: &str| ureq::get(&format!("http://{LISTEN}{path}")).call().ok()?.body_mut().read_to_string().ok();
    wait::until("the container's daemon to serve", Duration::from_secs(30), Duration::from_millis(200), || {
        get("/snapshot").map(drop).ok_or_else(|| podman(&["logs", &container.0]).1)
    });
    // Host network: a SYN to a closed port on this namespace's loopback is refused by its stack.
    let to: SocketAddr = format!("127.0.0.1:{CLOSED}").parse().unwrap();
    let err = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect_err("the port is closed");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let s = wait::until(
        "the reset in the container's /snapshot",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let s = Snapshot::parse(&get("/snapshot").ok_or("no answer")?);
            // Both ends: the RST is sent, then received a softirq later, and one poll may fall between the two.
            let both = s.port("sent", "closed_port", CLOSED) >= 1 && s.port("received", "refused", CLOSED) >= 1;
            if both { Ok(s) } else { Err(s.json.to_string()) }
        },
    );
    assert!(s.port("received", "refused", CLOSED) >= 1, "{}", s.json);
    let (status, body) = ureq::get(&format!("http://{LISTEN}/healthz"))
        .call()
        .map(|mut r| (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()))
        .expect("healthz");
    assert_eq!(status, 200, "{body}");
}
