//! One test's world: namespaces `a` and `b`, veth `va`/`vb`, and the real
//! daemon in `b` watching `vb`. `measure` runs a scenario and checks the
//! daemon's `sent` total against the kernel's own OutRsts.

pub mod daemon;
pub mod prometheus;
pub mod snapshot;
pub mod tmux;

use crate::{
    kernel::counters::{self, Counters},
    namespaces::netns::{Pair, VB},
    rig::daemon::Daemon,
    rig::snapshot::Snapshot,
};

pub struct Rig {
    pub daemon: Daemon,
    pub pair: Pair,
}

/// Before/after a scenario: the daemon's snapshots and each namespace's kernel counters.
pub struct Delta {
    pub before: Snapshot,
    pub after: Snapshot,
    /// Kernel counters (before, after) in `a`, `b` and the test's own (root) namespace.
    pub kernel: [(Counters, Counters); 3],
}

impl Delta {
    #[must_use]
    pub fn port(&self, view: &str, cause: &str, port: u16) -> u64 {
        self.after.port(view, cause, port) - self.before.port(view, cause, port)
    }

    /// Resets of `view` the kernel did not run rstwatch's program for.
    #[must_use]
    pub fn missed(&self, view: &str) -> u64 {
        let m = |s: &Snapshot| s.json["missed"][view].as_u64().unwrap_or(0);
        m(&self.after) - m(&self.before)
    }

    #[must_use]
    pub fn total(&self, view: &str) -> u64 {
        self.after.total(view) - self.before.total(view)
    }

    /// A kernel counter's delta summed over the namespaces.
    #[must_use]
    pub fn kernel(&self, name: &str) -> u64 {
        self.kernel.iter().map(|(b, a)| counters::delta(b, a, name)).sum()
    }

    /// A kernel counter's delta in namespace `b`.
    #[must_use]
    pub fn kernel_b(&self, name: &str) -> u64 {
        counters::delta(&self.kernel[1].0, &self.kernel[1].1, name)
    }
}

impl Rig {
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&["--iface", VB])
    }

    #[must_use]
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_env(args, &[])
    }

    /// Like [`Rig::start_with`], with `env` set for the daemon.
    #[must_use]
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let pair = Pair::new();
        let daemon = Daemon::start_env(&pair.b, args, env);
        Self { daemon, pair }
    }

    fn counters(&self) -> [Counters; 3] {
        [counters::read(&self.pair.a), counters::read(&self.pair.b), counters::read_here()]
    }

    /// Runs `scenario`, waits until `settled` holds on the daemon's snapshot,
    /// and asserts `sent` == Tcp OutRsts summed over the namespaces.
    pub fn measure(&self, scenario: impl FnOnce(&Pair), settled: impl Fn(&Delta) -> bool) -> Delta {
        // Kernel first, then a snapshot of counts read after it: nothing
        // runs in between, so resets made before (a server's readiness
        // probe) sit on both sides of the baseline.
        let k0 = self.counters();
        let before = self.daemon.fresh_snapshot();
        scenario(&self.pair);
        let probe = |after: Snapshot| Delta {
            before: Snapshot { json: before.json.clone() },
            after,
            kernel: Default::default(),
        };
        self.daemon.wait_for("the scenario's resets", |s| settled(&probe(Snapshot { json: s.json.clone() })));
        let k1 = self.counters();
        let after = self.daemon.fresh_snapshot();
        let [a0, b0, r0] = k0;
        let [a1, b1, r1] = k1;
        let d = Delta { before, after, kernel: [(a0, a1), (b0, b1), (r0, r1)] };
        assert_eq!(
            d.total("sent") + d.missed("sent"),
            d.kernel("Tcp:OutRsts"),
            "sent (+ resets the kernel reported as missed) must equal the kernel's Tcp OutRsts summed over the namespaces; after: {}",
            d.after.json
        );
        d
    }
}
