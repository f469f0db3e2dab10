//! The kernel side of a run: probe the kernel, load and attach the programs,
//! open the counters and rings. What a kernel lacks disables only its own
//! hook, with one coverage line.

use std::time::Duration;

use aya::Ebpf;

use crate::{
    error::Error,
    kernel::{
        self, loader, pins,
        source::{Ring, Source},
        wire::Wire,
    },
    pipeline::aggregate::KernelCounts,
    settings::Settings,
};

/// The loaded programs and what the daemon reads from them.
pub(super) struct KernelSide {
    pub probe: kernel::Probe,
    pub ebpf: Ebpf,
    pub wire: Wire,
    pub source: Source,
    pub captures: Ring,
    /// The fold timer, when folding is on and exact here.
    pub fold: Option<tokio::time::Interval>,
}

impl KernelSide {
    /// Probes, loads and attaches; also returns the counters as they were
    /// before any program ran (pinned ones of an earlier run).
    pub(super) fn open(settings: &Settings) -> Result<(Self, KernelCounts), Error> {
        let mut probe = kernel::probe(&settings.btf)?;
        set_namespaces(settings, &mut probe)?;
        set_origin(settings, &mut probe);
        let (mut ebpf, wire, source, before) = start_programs(settings, &mut probe)?;
        let fold = folding(settings, &mut probe);
        let captures = Ring::open(&mut ebpf, rst_common::maps::CAPTURES)?;
        start_capture(settings, &mut ebpf)?;
        Ok((Self { probe, ebpf, wire, source, captures, fold }, before))
    }

    /// Re-attaches to interfaces that came back, notes the ones that went.
    pub(super) fn check_interfaces(&mut self) {
        self.wire.check(&mut self.ebpf);
        self.source.set_loaded(&self.ebpf);
    }

    /// Detaches everything: the counters' reader first, then the programs.
    pub(super) fn close(self) {
        let Self { source, ebpf, wire, .. } = self;
        drop(source);
        drop(ebpf);
        tracing::info!("detached all programs; exiting");
        drop(wire);
    }
}

/// The programs' namespaces: their own (only its replies are announced to
/// tc egress, which watches its interfaces) and, with `--netns`, the one
/// whose stack views they count.
fn set_namespaces(settings: &Settings, probe: &mut kernel::Probe) -> Result<(), Error> {
    let c = &mut probe.config;
    let readable = ![c.sk_net, c.skb_dev, c.dev_net, c.net_inum].contains(&rst_common::config::ABSENT);
    if readable {
        c.own_netns = kernel::netns::own().unwrap_or(0);
    }
    let Some(inode) = settings.netns else { return Ok(()) };
    if !readable {
        return Err(Error::NoNetnsFilter);
    }
    c.netns_filter = inode;
    if !kernel::netns::in_use(inode) {
        tracing::warn!(netns = inode, "no process and no /run/netns entry is in this network namespace now");
    }
    tracing::info!(netns = inode, "--netns: sent and received count this network namespace only");
    Ok(())
}

/// Whether received RSTs are judged (contract §2a): the evidence is taken on
/// watched interfaces, so with none (or `--no-origin`) one line says every
/// origin is unknown.
fn set_origin(settings: &Settings, probe: &mut kernel::Probe) {
    let why = if !settings.origin {
        Some("off (--no-origin)")
    } else if settings.ifaces.is_empty() {
        Some("no interface watched at start (add --iface IF)")
    } else {
        None
    };
    probe.config.origin = u32::from(why.is_none());
    probe.coverage.features.insert("origin".into(), why.is_none());
    if let Some(why) = why {
        let line = format!("origin: every received reset's origin is unknown: {why}");
        tracing::warn!("{line}");
        probe.coverage.degraded.push(line);
    }
}

fn load(s: &Settings, probe: &kernel::Probe) -> Result<Ebpf, Error> {
    let fresh = s.fresh;
    let sizes = loader::Sizes {
        ring_bytes: s.ring_bytes,
        site_buckets: probe.sites.as_ref().map_or(1, |b| u32::try_from(b.len()).unwrap_or(u32::MAX)),
        port_keys: s.port_keys,
        peer_keys: s.peer_keys,
        owner_keys: s.owner_keys,
    };
    let pins = match &s.pin_dir {
        None => Vec::new(),
        Some(dir) => {
            pins::prepare(dir)?;
            let scope = pins::Scope { own: kernel::netns::own().unwrap_or(0), counted: s.netns };
            pins::claim(dir, scope, fresh)?;
            if fresh {
                pins::remove(dir)?;
                tracing::info!(dir = %dir.display(), "--fresh: counting from zero");
            } else if let Some(why) = pins::mismatch(dir, &sizes) {
                tracing::warn!(dir = %dir.display(), "pinned counters do not fit this run ({why}): counting from zero");
                pins::remove(dir)?;
            } else if pins::exist(dir) {
                tracing::info!(dir = %dir.display(), "continuing the pinned counters of an earlier run");
            }
            pins::paths(dir)
        }
    };
    loader::load(&probe.config, &sizes, &pins)
}

/// Turns captures on in the kernel when there is a sink.
fn start_capture(settings: &Settings, ebpf: &mut Ebpf) -> Result<(), Error> {
    let Some(pcap) = &settings.pcap else { return Ok(()) };
    loader::set_capture(ebpf, true)?;
    tracing::info!(
        dir = %pcap.dir.display(),
        per_file = pcap.per_file,
        files = pcap.files,
        "writing pcap files of sampled resets (rotated)"
    );
    Ok(())
}

/// Loads, attaches the tracepoints and the watched interfaces, and opens the maps.
/// A program that does not load or attach on this kernel (say, a verifier
/// rejection) disables only its own hook, with one line in the coverage;
/// either way `feature` is recorded.
fn optional(probe: &mut kernel::Probe, feature: &str, without: &str, result: Result<(), Error>) -> bool {
    let (present, detail) = match result {
        Ok(()) => (true, String::new()),
        Err(e) => (false, format!("{without} ({e})")),
    };
    kernel::note(&mut probe.coverage, feature, present, &detail);
    present
}

/// The programs `start_programs` attaches on this kernel (what it falls back to, only on failure,
/// loads later): (program, its function or tracepoint; None for XDP and tc).
fn load_plan<'a>(probe: &kernel::Probe, mode: &loader::WireMode, wire: bool) -> Vec<(&'a str, Option<&'a str>)> {
    let mut plan = Vec::new();
    if probe.has_send_reset {
        if probe.sites.is_some() {
            plan.push((loader::SENT_CALL_SITE.0, Some(loader::SENT_CALL_SITE.1)));
        }
        plan.push(("tcp_send_reset", Some("tcp_send_reset")));
        if !probe.send_reset_has_socketless {
            plan.extend(loader::SENT_NO_FULL_SOCKET.map(|(p, f)| (p, Some(f))));
        }
    }
    if probe.tcp_reset_has_skb {
        plan.push((loader::RECEIVED_RST.0, Some(loader::RECEIVED_RST.1)));
    } else if probe.has_receive_reset {
        plan.push(("tcp_receive_reset", Some("tcp_receive_reset")));
    }
    plan.push((loader::RECEIVED_IN_HANDSHAKE.0, Some(loader::RECEIVED_IN_HANDSHAKE.1)));
    if probe.has_rejected {
        plan.push(("kfree_skb", Some("kfree_skb")));
    }
    if wire {
        plan.extend([(mode.xdp_program, None), (loader::TC_PROGRAM, None)]);
    }
    plan
}

/// Loads and attaches; also returns the counters as they were before any
/// program ran (pinned ones of an earlier run: see `Aggregator::carry_over`).
fn start_programs(settings: &Settings, probe: &mut kernel::Probe) -> Result<(Ebpf, Wire, Source, KernelCounts), Error> {
    let mut ebpf = load(settings, probe)?;
    let mut source = Source::new(&mut ebpf)?;
    let before = source.counts();
    loader::set_sample_rate(&mut ebpf, settings.sample_rate)?;
    let btf = loader::kernel_btf(&settings.btf)?;
    let mode = loader::WireMode {
        xdp_program: if probe.has_xdp_load_bytes { loader::XDP_PROGRAM } else { loader::XDP_PROGRAM_NO_PAYLOAD },
        tcx: probe.has_tcx,
    };
    loader::preload(&mut ebpf, &btf, &load_plan(probe, &mode, !settings.ifaces.is_empty()));
    // A missing tracepoint was reported once by the probe; its view stays at zero.
    if probe.has_send_reset {
        // The call-site program runs first on the tracepoint: the counting one takes its cause.
        let (program, tracepoint) = loader::SENT_CALL_SITE;
        if let Some(sites) = &probe.sites {
            let attached = loader::set_sites(&mut ebpf, sites)
                .and_then(|()| loader::attach_tracepoint(&mut ebpf, &btf, program, tracepoint));
            let without = "socket resets count as unspecified unless SO_LINGER {1,0}";
            optional(probe, &format!("program:{program}"), without, attached);
        }
        loader::attach_tracepoint(&mut ebpf, &btf, "tcp_send_reset", "tcp_send_reset")?;
    }
    // tcp_reset(sk, skb): unlike the tracepoint in it, fentry sees whether a RST arrived.
    let (program, function) = loader::RECEIVED_RST;
    let received_program = if probe.tcp_reset_has_skb
        && optional(
            probe,
            &format!("fentry:{function}"),
            "received also counts the resets the kernel raises on its own socket with no RST arriving",
            loader::attach_fentry(&mut ebpf, &btf, program, function),
        ) {
        program
    } else {
        if probe.has_receive_reset {
            loader::attach_tracepoint(&mut ebpf, &btf, "tcp_receive_reset", "tcp_receive_reset")?;
        }
        "tcp_receive_reset"
    };
    let mut sent_programs = vec!["tcp_send_reset"];
    // The families whose every reply to a segment a stack hook announces:
    // tc egress pairs those replies with their announcements (`unannounced`).
    let mut paired = if probe.has_send_reset && probe.send_reset_has_socketless {
        rst_common::maps::ANNOUNCE_PAIR_V4 | rst_common::maps::ANNOUNCE_PAIR_V6
    } else {
        0
    };
    if probe.has_send_reset && !probe.send_reset_has_socketless {
        let families = [rst_common::maps::ANNOUNCE_PAIR_V4, rst_common::maps::ANNOUNCE_PAIR_V6];
        for ((program, function), family) in loader::SENT_NO_FULL_SOCKET.into_iter().zip(families) {
            let attached = loader::attach_fentry(&mut ebpf, &btf, program, function);
            let without = "sent resets without a full socket (closed port, TIME_WAIT) are not counted";
            if optional(probe, &format!("fentry:{function}"), without, attached) {
                sent_programs.push(program);
                paired |= family;
            }
        }
        tracing::info!("kernel < 6.10: resets without a full socket are counted at tcp_v4/v6_send_reset (fentry)");
    }
    let (program, function) = loader::RECEIVED_IN_HANDSHAKE;
    let mut received_programs = vec![received_program];
    if optional(
        probe,
        &format!("fexit:{function}"),
        "a RST that ends a handshake (request socket, EmbryonicRsts) is not counted as received",
        loader::attach_fexit(&mut ebpf, &btf, program, function),
    ) {
        received_programs.push(program);
    }
    if probe.has_rejected {
        let attached = loader::attach_btf_tracepoint(&mut ebpf, &btf, "kfree_skb", "skb", "kfree_skb");
        probe.has_rejected = optional(probe, "program:kfree_skb", "received/rejected_invalid is not counted", attached);
    }
    let mut wire = Wire::new(mode, paired);
    wire.sync(&mut ebpf, &settings.ifaces, true)?;
    if let Some(detail) = wire.unloadable() {
        // Wire logged its one line already.
        probe.coverage.features.insert("program:wire".into(), false);
        probe
            .coverage
            .degraded
            .push(format!("program:wire is missing on this kernel: wire_in/wire_out stay at zero ({detail})"));
    }
    if settings.ifaces.is_empty() {
        tracing::info!("no interface watched: wire_in/wire_out stay at zero (add --iface IF)");
    }
    let programs = sent_programs
        .into_iter()
        .map(|p| (rst_common::view::SENT, p))
        .chain(received_programs.into_iter().map(|p| (rst_common::view::RECEIVED, p)))
        .filter_map(|(v, name)| loader::program_fd(&ebpf, name).map(|fd| (v, fd)))
        .collect();
    source.set_programs(programs);
    source.set_loaded(&ebpf);
    drop(btf);
    // Parsing kernel BTF (here and in aya) used tens of MiB that are free now:
    // hand them back so the idle daemon stays small.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    Ok((ebpf, wire, source, before))
}

/// The fold timer, when folding is on and exact here; else one coverage line.
fn folding(settings: &Settings, probe: &mut kernel::Probe) -> Option<tokio::time::Interval> {
    if settings.fold_seconds == 0 {
        return None;
    }
    let why = crate::kernel::source::fold_unsupported();
    let detail =
        why.as_deref().map(|w| format!("key budgets are not folded: they fill and the rest counts as other ({w})"));
    kernel::note(&mut probe.coverage, "fold", why.is_none(), detail.as_deref().unwrap_or_default());
    why.is_none().then(|| {
        let every = Duration::from_secs(settings.fold_seconds);
        tokio::time::interval_at(tokio::time::Instant::now() + every, every)
    })
}
