//! `rstwatch run`: checks the environment, loads and attaches, then wires
//! source -> decode -> aggregate -> snapshot (watch) -> outputs, and serves
//! systemd (notify, watchdog, reload) until SIGINT/SIGTERM.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aya::Ebpf;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};

use crate::{
    cli::RunArgs,
    config::{self, Loaded},
    error::Error,
    kernel,
    kernel::loader,
    kernel::pins,
    kernel::privileges,
    kernel::source::{Ring, Source},
    kernel::wire::Wire,
    output,
    output::notify,
    output::pcap::PcapSink,
    pipeline::aggregate::{Aggregator, KernelCounts, Limits},
    pipeline::alerts::{Change, Detector},
    pipeline::decode,
    pipeline::model::{Snapshot, Totals},
    pipeline::owners::Resolver,
    settings::Settings,
};

/// Samples handled per wake-up before the counters get their turn.
const DRAIN_BATCH: usize = 4096;
const RECENT: usize = 64;
/// Folded keys the daemon holds per kernel key of budget; past it the coldest are forgotten.
const HELD_PER_BUDGET: usize = 4;

/// Every interface must exist; one named in the config file gets its line.
fn check_interfaces(settings: &Settings, file: Option<&Loaded>) -> Result<(), Error> {
    for name in &settings.ifaces {
        let c = std::ffi::CString::new(name.as_str()).map_err(|_| Error::NoInterface { name: name.clone() })?;
        // SAFETY: valid C string.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } != 0 {
            continue;
        }
        let in_file = file.and_then(|l| {
            l.file.interfaces.as_ref().and_then(|v| v.iter().find(|s| s.get_ref() == name)).map(|s| (l, s))
        });
        return Err(match in_file {
            Some((l, s)) => l.error(s, format!("interface {name:?} does not exist: list interfaces with `ip link`")),
            None => Error::NoInterface { name: name.clone() },
        });
    }
    Ok(())
}

fn settings(args: &RunArgs) -> Result<(Settings, Option<Loaded>), Error> {
    let file = config::load(args.config.as_deref())?;
    let s = Settings::resolve(args, file.as_ref())?;
    if args.no_wire && !args.ifaces.is_empty() {
        tracing::warn!(ignored = ?args.ifaces, "--no-wire: no interface is watched, --iface is ignored");
    }
    check_interfaces(&s, file.as_ref())?;
    if let Some(dir) = s.cgroup_root.as_deref().filter(|d| !crate::pipeline::owners::is_cgroup2(d)) {
        return Err(Error::NoCgroupRoot { dir: dir.to_path_buf() });
    }
    Ok((s, file))
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

fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    let std = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            Error::AddrInUse { addr }
        } else {
            Error::Listen { addr, source }
        }
    })?;
    std.set_nonblocking(true).map_err(|source| Error::Listen { addr, source })?;
    tokio::net::TcpListener::from_std(std).map_err(|source| Error::Listen { addr, source })
}

fn load(s: &Settings, fresh: bool, probe: &kernel::Probe) -> Result<Ebpf, Error> {
    let sizes = loader::Sizes {
        ring_bytes: s.ring_bytes,
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

fn summary(t: &Totals, prev: &Totals, s: &Snapshot) -> String {
    format!(
        "resets sent {} (+{}) received {} (+{}) wire_in {} (+{}) wire_out {} (+{}); samples delivered {} dropped {}",
        t.sent,
        t.sent.saturating_sub(prev.sent),
        t.received,
        t.received.saturating_sub(prev.received),
        t.wire_in,
        t.wire_in.saturating_sub(prev.wire_in),
        t.wire_out,
        t.wire_out.saturating_sub(prev.wire_out),
        s.samples.delivered,
        s.samples.dropped
    )
}

/// `--pcap DIR`: the sink (its directory made and checked before anything is loaded).
fn pcap_sink(args: &RunArgs) -> Result<Option<PcapSink>, Error> {
    let Some(dir) = &args.pcap else { return Ok(None) };
    let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    PcapSink::new(dir, n(args.pcap_count), n(args.pcap_files)).map(Some)
}

/// Turns captures on in the kernel when there is a sink.
fn start_capture(args: &RunArgs, ebpf: &mut Ebpf) -> Result<(), Error> {
    let Some(dir) = &args.pcap else { return Ok(()) };
    loader::set_capture(ebpf, true)?;
    tracing::info!(
        dir = %dir.display(),
        per_file = args.pcap_count,
        files = args.pcap_files,
        "writing pcap files of sampled resets (rotated)"
    );
    Ok(())
}

/// One log line per alert start and end, never one per reset.
fn log_alert(change: &Change) {
    let (what, a) = match change {
        Change::Start(a) => ("alert started", a),
        Change::End(a) => ("alert ended", a),
    };
    tracing::warn!(kind = %a.kind, size = %a.size(), "{what}: {} {}", a.kind, a.subject());
}

/// SIGHUP: re-reads the config and applies what can change without reloading programs.
fn reload(args: &RunArgs, current: &mut Settings, ebpf: &mut Ebpf, wire: &mut Wire, agg: &mut Aggregator) {
    notify::reloading();
    match settings(args) {
        Err(e) => tracing::warn!("reload failed, keeping the running settings: {e}"),
        Ok((new, _)) => {
            let (live, restart) = current.changes(&new);
            if live.is_empty() && restart.is_empty() {
                tracing::info!("reload: nothing changed");
            }
            for c in &live {
                tracing::info!("reload: {c}");
            }
            for c in &restart {
                tracing::warn!("reload: {c} needs a restart; keeping the running value");
            }
            if let Err(e) = loader::set_sample_rate(ebpf, new.sample_rate) {
                tracing::warn!("reload: {e}");
            }
            let _ = wire.sync(ebpf, &new.ifaces, false);
            agg.set_top(new.top);
            *current = current.reloadable(&new);
        }
    }
    notify::ready("reloaded");
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
fn start_programs(
    args: &RunArgs,
    settings: &Settings,
    probe: &mut kernel::Probe,
) -> Result<(Ebpf, Wire, Source, KernelCounts), Error> {
    let mut ebpf = load(settings, args.fresh, probe)?;
    let mut source = Source::new(&mut ebpf)?;
    let before = source.counts();
    loader::set_sample_rate(&mut ebpf, settings.sample_rate)?;
    let btf = loader::kernel_btf(&args.btf)?;
    let mode = loader::WireMode {
        xdp_program: if probe.has_xdp_load_bytes { loader::XDP_PROGRAM } else { loader::XDP_PROGRAM_NO_PAYLOAD },
        tcx: probe.has_tcx,
    };
    loader::preload(&mut ebpf, &btf, &load_plan(probe, &mode, !settings.ifaces.is_empty()));
    // A missing tracepoint was reported once by the probe; its view stays at zero.
    if probe.has_send_reset {
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
    if probe.has_send_reset && !probe.send_reset_has_socketless {
        for (program, function) in loader::SENT_NO_FULL_SOCKET {
            let attached = loader::attach_fentry(&mut ebpf, &btf, program, function);
            let without = "sent resets without a full socket (closed port, TIME_WAIT) are not counted";
            if optional(probe, &format!("fentry:{function}"), without, attached) {
                sent_programs.push(program);
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
    let mut wire = Wire::new(mode);
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

fn aggregator(settings: &Settings, probe: &kernel::Probe) -> Aggregator {
    Aggregator::new(
        Limits {
            top: settings.top,
            recent: RECENT,
            held: [settings.port_keys, settings.peer_keys, settings.owner_keys].map(|n| HELD_PER_BUDGET * n as usize),
        },
        probe.release.clone(),
        probe.reason_names.clone(),
        probe.coverage.clone(),
    )
    .with_ephemeral_ports(kernel::ephemeral_ports())
    .with_own_netns(kernel::netns::own())
    .with_clock_offset(crate::pipeline::clock::boot_offset())
}

/// HTTP (/snapshot, /metrics) and `--live`, fed by the snapshot channel;
/// returns the HTTP server's stop switch and task.
fn start_outputs(
    listener: tokio::net::TcpListener,
    rx: &watch::Receiver<Arc<Snapshot>>,
    settings: &Settings,
    live: bool,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let http_stop = async move {
        let _ = stop_rx.wait_for(|v| *v).await;
    };
    let options = output::metrics::Options { owners: settings.owner_metrics };
    let http = tokio::spawn(output::http::serve(listener, rx.clone(), options, http_stop));
    if live {
        tokio::spawn(output::live::run(rx.clone()));
    }
    (stop_tx, http)
}

pub async fn run(args: RunArgs) -> Result<(), Error> {
    // Everything a user can get wrong is checked before anything is loaded.
    let (mut settings, _) = settings(&args)?;
    // From the start: a SIGTERM while loading (systemd stopping us) ends the
    // run cleanly once it is up, never kills it halfway.
    let io = |what| move |source| Error::Io { what, source };
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("installing SIGINT handler"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("installing SIGTERM handler"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io("installing SIGHUP handler"))?;
    if !privileges::sufficient() {
        return Err(Error::NotPermitted);
    }
    let listener = bind(settings.listen)?;
    let mut pcap = pcap_sink(&args)?;
    let mut probe = kernel::probe(&args.btf)?;
    set_namespaces(&settings, &mut probe)?;
    let (mut ebpf, mut wire, mut source, before) = start_programs(&args, &settings, &mut probe)?;
    let mut fold = folding(&settings, &mut probe);
    let mut agg = aggregator(&settings, &probe);
    agg.carry_over(&before);
    let mut captures = Ring::open(&mut ebpf, rst_common::maps::CAPTURES)?;
    start_capture(&args, &mut ebpf)?;
    let mut detector = Detector::new(settings.alerts);
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let started = Instant::now();
    let mut owners = Resolver::new(settings.cgroup_root.clone());
    let netns = settings.netns;
    let mut publish = |agg: &mut Aggregator, detector: &mut Detector, source: &Source, wire: &Wire| {
        agg.on_counts(source.counts());
        let names = owners.resolve(&agg.owner_ids());
        let mut snap = agg.snapshot(started.elapsed().as_secs_f64(), names);
        snap.time = crate::pipeline::clock::now_rfc3339();
        snap.netns = netns;
        snap.interfaces = wire.status();
        snap.programs = source.costs();
        for change in detector.on_snapshot(&snap) {
            log_alert(&change);
        }
        snap.alerts = detector.active();
        snap.alerts_started = detector.started();
        let snap = Arc::new(snap);
        tx.send_replace(snap.clone());
        snap
    };
    let first = publish(&mut agg, &mut detector, &source, &wire);

    let (stop_tx, http) = start_outputs(listener, &rx, &settings, args.live);
    tracing::info!(listen = %settings.listen, ifaces = ?wire.watched(), sample_rate = settings.sample_rate, kernel = %probe.release, "rstwatch running");
    notify::ready(&summary(&first.totals, &first.totals, &first));

    let mut tick = tokio::time::interval(Duration::from_millis(settings.poll_ms));
    // Keep-alives come from this loop: if it stalls, systemd notices.
    let watchdog_every = notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_hours(1)));
    let mut last_summary = (Instant::now(), first.totals);
    let mut iface_check = tokio::time::interval(Duration::from_secs(1));
    let mut undecodable = 0u64;
    loop {
        tokio::select! {
            r = source.drain(DRAIN_BATCH, |bytes| match decode::decode(bytes) {
                Ok(ev) => {
                    detector.on_event(&ev, started.elapsed().as_secs_f64());
                    agg.on_sample(ev);
                }
                Err(_) => undecodable += 1,
            }) => { r.map_err(io("reading the ring buffer"))?; }
            r = captures.drain(DRAIN_BATCH, |bytes| {
                if let (Some(sink), Some(c)) = (pcap.as_mut(), output::pcap::decode(bytes))
                    && let Err(e) = sink.write(&c)
                {
                    tracing::warn!("pcap: {e}");
                }
            }) => { r.map_err(io("reading the capture ring"))?; }
            _ = tick.tick() => {
                let snap = publish(&mut agg, &mut detector, &source, &wire);
                let due = settings.summary_seconds > 0 && last_summary.0.elapsed() >= Duration::from_secs(settings.summary_seconds);
                if due {
                    let line = summary(&snap.totals, &last_summary.1, &snap);
                    tracing::info!("{line}");
                    notify::status(&line);
                    last_summary = (Instant::now(), snap.totals);
                }
            }
            _ = async { fold.as_mut().expect("guarded").tick().await }, if fold.is_some() => {
                match source.fold(&mut ebpf) {
                    Ok(drained) => agg.on_fold(drained),
                    Err(e) => {
                        tracing::warn!("folding stopped, key budgets fill from now on: {e}");
                        fold = None;
                    }
                }
                // at once: the aggregator holds the old kernel counts too until it reads them again
                publish(&mut agg, &mut detector, &source, &wire);
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => notify::watchdog(),
            _ = iface_check.tick() => {
                wire.check(&mut ebpf);
                source.set_loaded(&ebpf);
            }
            _ = sighup.recv() => {
                reload(&args, &mut settings, &mut ebpf, &mut wire, &mut agg);
                source.set_loaded(&ebpf);
                detector.set_thresholds(settings.alerts);
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    notify::stopping();
    if undecodable > 0 {
        tracing::warn!(undecodable, "ring records of an unexpected size were skipped");
    }
    let _ = stop_tx.send(true);
    let _ = http.await;
    drop(source);
    drop(ebpf);
    tracing::info!("detached all programs; exiting");
    Ok(())
}
