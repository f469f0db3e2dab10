//! RAII network namespaces and a veth pair between two of them.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip(8)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let name = format!("rstw-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    #[must_use]
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// The namespace's inode (what rstwatch reports as `netns`).
    #[must_use]
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(self.path()).expect("namespace file").ino()
    }

    /// Runs a command inside the namespace (nsenter keeps /sys, unlike `ip netns exec`).
    #[expect(clippy::must_use_candidate, reason = "also run for its effect")]
    pub fn exec(&self, cmd: &[&str]) -> String {
        let out =
            Command::new("nsenter").arg(format!("--net={}", self.path())).args(cmd).output().expect("running nsenter");
        assert!(out.status.success(), "{}: {}", cmd.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (ifindex, MAC address) of a device in this namespace.
    #[must_use]
    pub fn link_info(&self, dev: &str) -> (i32, [u8; 6]) {
        let out = self.exec(&["ip", "-o", "link", "show", dev]);
        let index = out.split(':').next().and_then(|s| s.trim().parse().ok()).expect("ifindex");
        let mac = out.split("link/ether ").nth(1).and_then(|s| s.split_whitespace().next()).expect("mac");
        let mut m = [0u8; 6];
        for (b, h) in m.iter_mut().zip(mac.split(':')) {
            *b = u8::from_str_radix(h, 16).expect("hex");
        }
        (index, m)
    }

    /// Runs `f` on a thread that has entered the namespace. Sockets it creates
    /// belong to the namespace and may be used from any thread afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in(&self.path(), f)
    }
}

/// [`Netns::run`] by namespace path.
pub fn run_in<T: Send>(path: &str, f: impl FnOnce() -> T + Send) -> T {
    {
        let file = File::open(path).expect("opening the namespace");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Two hosts: `a` (10.77.0.1, fd77::1) and `b` (10.77.0.2, fd77::2) joined by
/// veth `va` <-> `vb`. Addresses exist only inside these namespaces.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
}

pub const A4: &str = "10.77.0.1";
pub const B4: &str = "10.77.0.2";
pub const A6: &str = "fd77::1";
pub const B6: &str = "fd77::2";
pub const VA: &str = "va";
pub const VB: &str = "vb";

impl Pair {
    #[must_use]
    pub fn new() -> Self {
        let pair = Self { a: Netns::new("a"), b: Netns::new("b") };
        pair.link();
        pair
    }

    /// (Re)creates the veth pair with its addresses.
    pub fn link(&self) {
        ip(&["link", "add", VA, "netns", &self.a.name, "type", "veth", "peer", "name", VB, "netns", &self.b.name]);
        for (ns, dev, v4, v6) in [(&self.a, VA, A4, A6), (&self.b, VB, B4, B6)] {
            ns.exec(&["ip", "addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.exec(&["ip", "-6", "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            ns.exec(&["ip", "link", "set", dev, "up"]);
        }
    }

    /// Programs attached to `vb` on tc egress through TCX (`tc filter show`
    /// does not list TCX links, so ask the kernel directly).
    #[must_use]
    pub fn tcx_egress_on_vb(&self) -> usize {
        self.b.run(|| {
            aya::programs::SchedClassifier::query_tcx(VB, aya::programs::TcAttachType::Egress)
                .map_or(0, |(_, p)| p.len())
        })
    }

    /// Whether an XDP program is attached to `vb`.
    #[must_use]
    pub fn xdp_on_vb(&self) -> bool {
        self.b.exec(&["ip", "-d", "link", "show", VB]).contains("xdp")
    }

    /// Everything attached to `vb`: XDP, and tc ingress and egress programs
    /// (TCX links and clsact filters together).
    #[must_use]
    pub fn hooks_on_vb(&self) -> Hooks {
        let tc = |at: aya::programs::TcAttachType, dir: &str| {
            let tcx = self.b.run(|| aya::programs::SchedClassifier::query_tcx(VB, at).map_or(0, |(_, p)| p.len()));
            let legacy = self.b.exec(&["tc", "filter", "show", "dev", VB, dir]);
            // tc(8) prints a filter's header line, then one line per handle: count the latter.
            tcx + legacy.lines().filter(|l| l.contains(" bpf ") && l.contains(" handle ")).count()
        };
        Hooks {
            xdp: self.xdp_on_vb(),
            ingress: tc(aya::programs::TcAttachType::Ingress, "ingress"),
            egress: tc(aya::programs::TcAttachType::Egress, "egress"),
        }
    }
}

/// What is attached to an interface (see [`Pair::hooks_on_vb`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hooks {
    pub xdp: bool,
    /// tc ingress programs (TCX links and clsact filters).
    pub ingress: usize,
    pub egress: usize,
}

impl Hooks {
    /// rstwatch's default: tc ingress and egress, no XDP.
    pub const TC: Self = Self { xdp: false, ingress: 1, egress: 1 };
    /// `--wire-in xdp`: native XDP and tc egress.
    pub const XDP: Self = Self { xdp: true, ingress: 0, egress: 1 };
    pub const NONE: Self = Self { xdp: false, ingress: 0, egress: 0 };
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}
