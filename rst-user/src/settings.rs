//! What the daemon runs with: command-line flags over the config file over
//! defaults. Pure, so reloads can say exactly what changed.

use std::{net::SocketAddr, path::PathBuf};

use rst_common::maps;

use crate::{
    cli::{
        DEFAULT_FOLD_SECONDS, DEFAULT_LISTEN, DEFAULT_PIN_DIR, DEFAULT_POLL_MS, DEFAULT_SAMPLE_RATE,
        DEFAULT_SUMMARY_SECONDS, DEFAULT_TOP, RunArgs,
    },
    config::Loaded,
    error::Error,
    kernel::loader::WireIn,
    pipeline::alerts::Thresholds,
};

#[derive(Clone, Debug, PartialEq)]
#[expect(clippy::struct_excessive_bools, reason = "independent settings, each a switch of its own")]
pub struct Settings {
    /// Interfaces actually watched (empty when wire views are off).
    pub ifaces: Vec<String>,
    /// The hook that makes `wire_in` (`--wire-in`, config `wire_in`).
    pub wire_in: WireIn,
    pub listen: SocketAddr,
    pub sample_rate: u32,
    pub ring_bytes: u32,
    pub port_keys: u32,
    pub peer_keys: u32,
    pub owner_keys: u32,
    /// The cgroup2 mount that names owners; None: found in mountinfo.
    pub cgroup_root: Option<PathBuf>,
    pub top: usize,
    pub poll_ms: u64,
    /// None: counters are not pinned (they start at zero every start).
    pub pin_dir: Option<PathBuf>,
    pub summary_seconds: u64,
    pub alerts: Thresholds,
    /// Export `rstwatch_owner_resets_total{owner}` in /metrics.
    pub owner_metrics: bool,
    /// `--netns`: the one network namespace (inode) the stack views count.
    pub netns: Option<u32>,
    /// Seconds between folds of the keyed maps into the daemon; 0: never.
    pub fold_seconds: u64,
    /// Judge who sent received RSTs (needs a watched interface; contract §2a).
    pub origin: bool,
    /// TLS and basic auth for the endpoint (`output::web_config`); re-read on SIGHUP.
    pub web_config: Option<std::path::PathBuf>,
    /// Command line only (no config key), fixed for the run:
    /// the kernel BTF to read (`--btf`), counting from zero (`--fresh`),
    /// the plain live summary (`--live`), and packet captures (`--pcap`).
    pub btf: PathBuf,
    pub fresh: bool,
    pub live: bool,
    pub pcap: Option<Pcap>,
}

/// `--pcap DIR`: sampled resets' packets, `per_file` each in at most `files` rotated files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcap {
    pub dir: PathBuf,
    pub per_file: u64,
    pub files: u64,
}

/// A flag wins over a (line-tracked) config value, which wins over the default.
fn flag_file_default<T: Copy>(flag: Option<T>, file: Option<&toml::Spanned<T>>, default: T) -> T {
    flag.or(file.map(|s| *s.get_ref())).unwrap_or(default)
}

impl Settings {
    pub fn resolve(args: &RunArgs, file: Option<&Loaded>) -> Result<Self, Error> {
        let f = file.map(|l| &l.file);
        let wire = !args.no_wire && f.and_then(|f| f.wire).unwrap_or(true);
        let ifaces = if !wire {
            Vec::new()
        } else if args.ifaces.is_empty() {
            f.and_then(|f| f.interfaces.as_ref())
                .map(|v| v.iter().map(|s| s.get_ref().clone()).collect())
                .unwrap_or_default()
        } else {
            args.ifaces.clone()
        };
        let listen = match (args.listen, file.map(Loaded::listen).transpose()?.flatten()) {
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => DEFAULT_LISTEN.parse().expect("valid default"),
        };
        let netns = match args.netns {
            Some(n) => Some(n),
            None => file.map(Loaded::netns).transpose()?.flatten(),
        };
        let pin = !args.no_pin && f.and_then(|f| f.pin).unwrap_or(true);
        // Counters of one namespace are never resumed by a daemon counting another selection.
        let pin_dir = args.pin_dir.clone().or_else(|| f.and_then(|f| f.pin_dir.clone())).unwrap_or_else(|| {
            netns.map_or_else(|| DEFAULT_PIN_DIR.into(), |n| format!("{DEFAULT_PIN_DIR}-netns-{n}").into())
        });
        Ok(Self {
            ifaces,
            wire_in: args.wire_in.or(f.and_then(|f| f.wire_in)).unwrap_or_default(),
            listen,
            sample_rate: args.sample_rate.or(f.and_then(|f| f.sample_rate)).unwrap_or(DEFAULT_SAMPLE_RATE),
            ring_bytes: flag_file_default(
                args.ring_bytes,
                f.and_then(|f| f.ring_bytes.as_ref()),
                maps::DEFAULT_RING_BYTES,
            ),
            port_keys: flag_file_default(args.port_keys, f.and_then(|f| f.port_keys.as_ref()), maps::DEFAULT_PORT_KEYS),
            peer_keys: flag_file_default(args.peer_keys, f.and_then(|f| f.peer_keys.as_ref()), maps::DEFAULT_PEER_KEYS),
            owner_keys: flag_file_default(
                args.owner_keys,
                f.and_then(|f| f.owner_keys.as_ref()),
                maps::DEFAULT_OWNER_KEYS,
            ),
            cgroup_root: args.cgroup_root.clone().or_else(|| f.and_then(|f| f.cgroup_root.clone())),
            top: args.top.or(f.and_then(|f| f.top)).unwrap_or(DEFAULT_TOP),
            poll_ms: flag_file_default(args.poll_ms, f.and_then(|f| f.poll_ms.as_ref()), DEFAULT_POLL_MS),
            pin_dir: pin.then_some(pin_dir),
            summary_seconds: args
                .summary_seconds
                .or(f.and_then(|f| f.summary_seconds))
                .unwrap_or(DEFAULT_SUMMARY_SECONDS),
            owner_metrics: args.owner_metrics || f.and_then(|f| f.owner_metrics).unwrap_or(false),
            netns,
            fold_seconds: args.fold_seconds.or(f.and_then(|f| f.fold_seconds)).unwrap_or(DEFAULT_FOLD_SECONDS),
            origin: !args.no_origin && f.and_then(|f| f.origin).unwrap_or(true),
            web_config: args.web_config.clone().or_else(|| f.and_then(|f| f.web_config.clone())),
            btf: args.btf.clone(),
            fresh: args.fresh,
            live: args.live,
            pcap: args.pcap.clone().map(|dir| Pcap { dir, per_file: args.pcap_count, files: args.pcap_files }),
            alerts: {
                let d = Thresholds::default();
                Thresholds {
                    window_seconds: f.and_then(|f| f.alert_window_seconds).unwrap_or(d.window_seconds),
                    scan_ports: f.and_then(|f| f.scan_ports).unwrap_or(d.scan_ports),
                    listener_down_rate: f.and_then(|f| f.listener_down_rate).unwrap_or(d.listener_down_rate),
                    rst_flood_rate: f.and_then(|f| f.rst_flood_rate).unwrap_or(d.rst_flood_rate),
                }
            },
        })
    }

    /// For a reload: (what is applied now, what needs a restart), one line each.
    #[must_use]
    pub fn changes(&self, new: &Self) -> (Vec<String>, Vec<String>) {
        let mut live = Vec::new();
        let mut restart = Vec::new();
        let mut note = |is_live: bool, name: &str, before: String, after: String| {
            if before != after {
                let target = if is_live { &mut live } else { &mut restart };
                target.push(format!("{name}: {before} -> {after}"));
            }
        };
        note(true, "interfaces", format!("{:?}", self.ifaces), format!("{:?}", new.ifaces));
        note(true, "sample_rate", self.sample_rate.to_string(), new.sample_rate.to_string());
        note(true, "top", self.top.to_string(), new.top.to_string());
        note(true, "summary_seconds", self.summary_seconds.to_string(), new.summary_seconds.to_string());
        note(true, "alert thresholds", format!("{:?}", self.alerts), format!("{:?}", new.alerts));
        note(true, "web_config", format!("{:?}", self.web_config), format!("{:?}", new.web_config));
        note(false, "wire_in", format!("{:?}", self.wire_in), format!("{:?}", new.wire_in));
        note(false, "listen", self.listen.to_string(), new.listen.to_string());
        note(false, "ring_bytes", self.ring_bytes.to_string(), new.ring_bytes.to_string());
        note(false, "port_keys", self.port_keys.to_string(), new.port_keys.to_string());
        note(false, "peer_keys", self.peer_keys.to_string(), new.peer_keys.to_string());
        note(false, "owner_keys", self.owner_keys.to_string(), new.owner_keys.to_string());
        note(false, "cgroup_root", format!("{:?}", self.cgroup_root), format!("{:?}", new.cgroup_root));
        note(false, "poll_ms", self.poll_ms.to_string(), new.poll_ms.to_string());
        note(false, "owner_metrics", self.owner_metrics.to_string(), new.owner_metrics.to_string());
        note(false, "pin_dir", format!("{:?}", self.pin_dir), format!("{:?}", new.pin_dir));
        note(false, "netns", format!("{:?}", self.netns), format!("{:?}", new.netns));
        note(false, "fold_seconds", self.fold_seconds.to_string(), new.fold_seconds.to_string());
        note(false, "origin", self.origin.to_string(), new.origin.to_string());
        (live, restart)
    }

    /// `new` with the values that need a restart kept at ours.
    #[must_use]
    pub fn reloadable(&self, new: &Self) -> Self {
        Self {
            ifaces: new.ifaces.clone(),
            sample_rate: new.sample_rate,
            top: new.top,
            summary_seconds: new.summary_seconds,
            alerts: new.alerts,
            web_config: new.web_config.clone(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser as _;

    use super::*;
    use crate::{
        cli::{Cli, Command},
        config,
    };

    fn args(argv: &[&str]) -> RunArgs {
        let mut full = vec!["rstwatch", "run"];
        full.extend(argv);
        match Cli::parse_from(full).command {
            Command::Run(a) => a,
            _ => unreachable!(),
        }
    }

    fn file(text: &str) -> Loaded {
        config::parse(Path::new("t.toml"), text.into()).unwrap()
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(&args(&[]), None).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.sample_rate, DEFAULT_SAMPLE_RATE);
        assert_eq!(s.pin_dir.as_deref(), Some(Path::new(DEFAULT_PIN_DIR)));
        assert!(s.ifaces.is_empty());
        assert_eq!(s.wire_in, WireIn::Tc, "tc ingress unless asked otherwise");
    }

    #[test]
    fn wire_in_from_the_flag_over_the_file_and_only_at_restart() {
        let f = file("wire_in = \"xdp\"\n");
        assert_eq!(Settings::resolve(&args(&[]), Some(&f)).unwrap().wire_in, WireIn::Xdp);
        let s = Settings::resolve(&args(&["--wire-in", "tc"]), Some(&f)).unwrap();
        assert_eq!(s.wire_in, WireIn::Tc);
        let new = Settings::resolve(&args(&["--wire-in", "xdp"]), None).unwrap();
        assert_eq!(s.changes(&new).1, vec!["wire_in: Tc -> Xdp".to_string()]);
        assert_eq!(s.reloadable(&new).wire_in, WireIn::Tc);
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = file("interfaces = [\"eth0\"]\nsample_rate = 7\nlisten = \"127.0.0.1:1\"\ntop = 3\n");
        let s = Settings::resolve(&args(&["--sample-rate", "9", "--iface", "eth1"]), Some(&f)).unwrap();
        assert_eq!((s.sample_rate, s.top, s.ifaces.clone()), (9, 3, vec!["eth1".to_string()]));
        assert_eq!(s.listen.to_string(), "127.0.0.1:1");
        let off = Settings::resolve(&args(&["--no-wire", "--no-pin"]), Some(&f)).unwrap();
        assert!(off.ifaces.is_empty() && off.pin_dir.is_none());
    }

    #[test]
    fn a_selected_namespace_pins_apart() {
        let own = crate::kernel::netns::own().unwrap();
        let s = Settings::resolve(&args(&["--netns", "/proc/self/ns/net"]), None).unwrap();
        assert_eq!(s.netns, Some(own));
        assert_eq!(s.pin_dir, Some(PathBuf::from(format!("{DEFAULT_PIN_DIR}-netns-{own}"))));
        let s = Settings::resolve(&args(&[]), Some(&file(&format!("netns = \"{own}\"\n")))).unwrap();
        assert_eq!(s.netns, Some(own));
        let e = config::parse(Path::new("t.toml"), "top = 3\nnetns = \"nope-ns\"\n".into()).unwrap_err();
        assert!(e.to_string().contains("t.toml line 2: netns: /run/netns/nope-ns"), "{e}");
    }

    #[test]
    fn reload_applies_live_values_and_names_the_rest() {
        let old = Settings::resolve(&args(&[]), None).unwrap();
        let new = Settings::resolve(
            &args(&[]),
            Some(&file("sample_rate = 5\nring_bytes = 8192\ninterfaces = [\"veth1\"]\n")),
        )
        .unwrap();
        let (live, restart) = old.changes(&new);
        assert_eq!(live, vec!["interfaces: [] -> [\"veth1\"]".to_string(), "sample_rate: 200 -> 5".to_string()]);
        assert_eq!(restart, vec![format!("ring_bytes: {} -> 8192", maps::DEFAULT_RING_BYTES)]);
        let applied = old.reloadable(&new);
        assert_eq!((applied.sample_rate, applied.ring_bytes), (5, maps::DEFAULT_RING_BYTES));
    }
}
