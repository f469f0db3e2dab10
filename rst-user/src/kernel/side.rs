//! The kernel side of a run behind one call: probe the kernel, load the
//! programs of [`programs::TABLE`] and the wire's, attach them, open the
//! counters and rings. What a kernel lacks disables only its own hook, with
//! one coverage line. The daemon talks to it through methods only.

use std::{path::PathBuf, time::Duration};

use aya::Ebpf;

use super::{
    Probe, loader, netns, note, pins,
    programs::{self, Attached, Hook, Missing},
    source::{Ring, Source},
    wire::Wire,
};
use crate::{
    error::Error,
    pipeline::{
        aggregate::{Drained, KernelCounts},
        model::{Interface, ProgramCost},
    },
};

/// What the kernel side needs to know of the settings.
pub struct Options {
    /// The running kernel's BTF.
    pub btf: PathBuf,
    /// `--netns`: count the stack views of this namespace only.
    pub netns: Option<u32>,
    /// Judge who sent received RSTs (contract §2a).
    pub origin: bool,
    pub ifaces: Vec<String>,
    /// The hook asked for `wire_in` (`--wire-in`).
    pub wire_in: loader::WireIn,
    /// Where the counters are pinned (None: not pinned), and whether to start from zero.
    pub pin_dir: Option<PathBuf>,
    pub fresh: bool,
    pub ring_bytes: u32,
    pub port_keys: u32,
    pub peer_keys: u32,
    pub owner_keys: u32,
    pub sample_rate: u32,
    /// Sampled resets also send packet bytes (`--pcap`).
    pub capture: bool,
    /// Seconds between folds of the key maps; 0 never.
    pub fold_seconds: u64,
}

/// The loaded programs and what the daemon reads from them.
pub struct KernelSide {
    probe: Probe,
    ebpf: Ebpf,
    wire: Wire,
    source: Source,
    captures: Ring,
    /// The fold timer, when folding is on and exact here.
    fold: Option<tokio::time::Interval>,
}

/// What woke [`KernelSide::next`] up.
pub enum Event {
    /// Samples or captures were handed to their callbacks.
    Drained,
    /// Time to fold the key maps ([`KernelSide::fold`]).
    FoldDue,
}

/// One poll of the kernel for a snapshot.
pub struct Reading {
    pub counts: KernelCounts,
    /// The newest call site the call-site table could not name (0: none).
    pub unknown_call_site: u64,
    pub interfaces: Vec<Interface>,
    pub programs: Vec<ProgramCost>,
}

impl KernelSide {
    /// Probes, loads and attaches; also returns the counters as they were
    /// before any program ran (pinned ones of an earlier run).
    pub fn open(o: &Options) -> Result<(Self, KernelCounts), Error> {
        let mut probe = super::probe(&o.btf)?;
        set_namespaces(o, &mut probe)?;
        set_origin(o, &mut probe);
        let (mut ebpf, wire, source, before) = start_programs(o, &mut probe)?;
        let fold = folding(o, &mut probe);
        let captures = Ring::open(&mut ebpf, rst_common::maps::CAPTURES)?;
        if o.capture {
            loader::set_capture(&mut ebpf, true)?;
        }
        Ok((Self { probe, ebpf, wire, source, captures, fold }, before))
    }

    /// What this kernel offers, as probed at start.
    #[must_use]
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The interfaces watched now.
    #[must_use]
    pub fn watched(&self) -> Vec<String> {
        self.wire.watched()
    }

    /// Waits for samples or captures, handing up to `batch` records of each
    /// ring to its callback, or for the fold timer.
    pub async fn next(
        &mut self,
        batch: usize,
        on_sample: impl FnMut(&[u8]),
        on_capture: impl FnMut(&[u8]),
    ) -> Result<Event, Error> {
        tokio::select! {
            r = self.source.drain(batch, on_sample) => r.map(|_| Event::Drained).map_err(Error::io("reading the ring buffer")),
            r = self.captures.drain(batch, on_capture) => r.map(|_| Event::Drained).map_err(Error::io("reading the capture ring")),
            _ = async { self.fold.as_mut().expect("guarded").tick().await }, if self.fold.is_some() => Ok(Event::FoldDue),
        }
    }

    /// Moves the folded generation of keys out of the kernel (see
    /// `Source::fold`). On failure one line says so and folding stops.
    pub fn fold(&mut self) -> Option<Drained> {
        match self.source.fold(&mut self.ebpf) {
            Ok(drained) => Some(drained),
            Err(e) => {
                tracing::warn!("folding stopped, key budgets fill from now on: {e}");
                self.fold = None;
                None
            }
        }
    }

    /// Reads the counts (giving the fastest keys hot slots) and the programs' state.
    pub fn read(&mut self) -> Reading {
        let counts = self.source.counts();
        self.source.promote(&counts);
        Reading {
            counts,
            unknown_call_site: self.source.unknown_call_site(),
            interfaces: self.wire.status(),
            programs: self.source.costs(),
        }
    }

    /// Re-attaches to interfaces that came back, notes the ones that went.
    pub fn check_interfaces(&mut self) {
        self.wire.check(&mut self.ebpf);
        self.source.set_loaded(&self.ebpf);
    }

    /// SIGHUP: the sample rate and the watched interfaces may change live.
    pub fn reload(&mut self, sample_rate: u32, ifaces: &[String]) {
        if let Err(e) = loader::set_sample_rate(&mut self.ebpf, sample_rate) {
            tracing::warn!("reload: {e}");
        }
        let _ = self.wire.sync(&mut self.ebpf, ifaces, false);
        self.source.set_loaded(&self.ebpf);
    }

    /// Detaches everything: the counters' reader first, then the programs.
    pub fn close(self) {
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
fn set_namespaces(o: &Options, probe: &mut Probe) -> Result<(), Error> {
    let c = &mut probe.config;
    let readable = ![c.sk_net, c.skb_dev, c.dev_net, c.net_inum].contains(&rst_common::config::ABSENT);
    if readable {
        c.own_netns = netns::own().unwrap_or(0);
    }
    let Some(inode) = o.netns else { return Ok(()) };
    if !readable {
        return Err(Error::NoNetnsFilter);
    }
    c.netns_filter = inode;
    if !netns::in_use(inode) {
        tracing::warn!(netns = inode, "no process and no /run/netns entry is in this network namespace now");
    }
    tracing::info!(netns = inode, "--netns: sent and received count this network namespace only");
    Ok(())
}

/// Whether received RSTs are judged (contract §2a): the evidence is taken on
/// watched interfaces, so with none (or `--no-origin`) one line says every
/// origin is unknown.
fn set_origin(o: &Options, probe: &mut Probe) {
    let why = if !o.origin {
        Some("off (--no-origin)")
    } else if o.ifaces.is_empty() {
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

fn load(o: &Options, probe: &Probe) -> Result<Ebpf, Error> {
    let sizes = loader::Sizes {
        ring_bytes: o.ring_bytes,
        site_buckets: probe.sites.as_ref().map_or(1, |b| u32::try_from(b.len()).unwrap_or(u32::MAX)),
        port_keys: o.port_keys,
        peer_keys: o.peer_keys,
        owner_keys: o.owner_keys,
    };
    let pins = match &o.pin_dir {
        None => Vec::new(),
        Some(dir) => {
            pins::prepare(dir)?;
            let scope = pins::Scope { own: netns::own().unwrap_or(0), counted: o.netns };
            pins::claim(dir, scope, o.fresh)?;
            if o.fresh {
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

/// Attaches one program of the table (loading it first if preloading did not).
fn attach(ebpf: &mut Ebpf, btf: &aya::Btf, p: &programs::Program) -> Result<(), Error> {
    match p.hook {
        Hook::Tracepoint { category, name } => loader::attach_btf_tracepoint(ebpf, btf, p.name, category, name),
        Hook::Fentry(function) => loader::attach_fentry(ebpf, btf, p.name, function),
        Hook::Fexit(function) => loader::attach_fexit(ebpf, btf, p.name, function),
    }
}

/// Attaches the table's programs wanted on this kernel, in order; returns
/// those attached. A fatal one's failure is the run's error; any other
/// disables its hook with one coverage line.
fn attach_table(ebpf: &mut Ebpf, btf: &aya::Btf, probe: &mut Probe) -> Result<Attached, Error> {
    // The call-site program reads its table: without it, that program is missing.
    let mut sites = probe.sites.as_ref().map(|s| loader::set_sites(ebpf, s));
    let mut done = Attached::new();
    for p in programs::TABLE {
        if !(p.wanted)(probe, &done) {
            continue;
        }
        let result = if p.name == programs::SENT_CALL_SITE
            && let Some(Err(e)) = sites.take()
        {
            Err(e)
        } else {
            attach(ebpf, btf, p)
        };
        let attached = match (result, p.missing) {
            (Ok(()), Missing::Degrades { feature, .. }) => {
                note(&mut probe.coverage, feature, true, "");
                true
            }
            (Ok(()), Missing::Fatal) => true,
            (Err(e), Missing::Fatal) => return Err(e),
            (Err(e), Missing::Degrades { feature, without }) => {
                note(&mut probe.coverage, feature, false, &format!("{without} ({e})"));
                false
            }
        };
        if attached {
            done.insert(p.name);
        }
    }
    Ok(done)
}

/// Loads, attaches the table's programs and the watched interfaces, and
/// opens the maps. A program that does not load or attach on this kernel
/// (say, a verifier rejection) disables only its own hook, with one line in
/// the coverage, unless the table says the run cannot go on without it.
fn start_programs(o: &Options, probe: &mut Probe) -> Result<(Ebpf, Wire, Source, KernelCounts), Error> {
    let mut ebpf = load(o, probe)?;
    let mut source = Source::new(&mut ebpf)?;
    let before = source.counts();
    loader::set_sample_rate(&mut ebpf, o.sample_rate)?;
    let btf = loader::kernel_btf(&o.btf)?;
    let mode = loader::WireMode {
        ingress: o.wire_in,
        xdp_program: if probe.has_xdp_load_bytes { loader::XDP_PROGRAM } else { loader::XDP_PROGRAM_NO_PAYLOAD },
        tcx: probe.has_tcx,
    };
    let mut plan: Vec<(&str, Option<&str>)> =
        programs::plan(probe).iter().map(|p| (p.name, Some(p.hook.target()))).collect();
    if !o.ifaces.is_empty() {
        plan.extend(mode.programs().into_iter().map(|p| (p, None)));
    }
    loader::preload(&mut ebpf, &btf, &plan);
    let done = attach_table(&mut ebpf, &btf, probe)?;
    probe.has_rejected = done.contains(programs::REJECTED);
    if probe.has_send_reset && !probe.send_reset_has_socketless {
        tracing::info!("kernel < 6.10: resets without a full socket are counted at tcp_v4/v6_send_reset (fentry)");
    }
    let mut wire = Wire::new(mode, programs::paired(probe, &done));
    wire.sync(&mut ebpf, &o.ifaces, true)?;
    if let Some(detail) = wire.unloadable() {
        // Wire logged its one line already.
        probe.coverage.features.insert("program:wire".into(), false);
        probe
            .coverage
            .degraded
            .push(format!("program:wire is missing on this kernel: wire_in/wire_out stay at zero ({detail})"));
    }
    if o.ifaces.is_empty() {
        tracing::info!("no interface watched: wire_in/wire_out stay at zero (add --iface IF)");
    }
    let counted = programs::TABLE
        .iter()
        .filter(|p| done.contains(p.name))
        .filter_map(|p| Some((p.view?, loader::program_fd(&ebpf, p.name)?)))
        .collect();
    source.set_programs(counted);
    source.set_loaded(&ebpf);
    drop(btf);
    // Parsing kernel BTF (here and in aya) used tens of MiB that are free now:
    // hand them back so the idle daemon stays small.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    Ok((ebpf, wire, source, before))
}

/// The fold timer, when folding is on and exact here; else one coverage line.
fn folding(o: &Options, probe: &mut Probe) -> Option<tokio::time::Interval> {
    if o.fold_seconds == 0 {
        return None;
    }
    let why = super::source::fold_unsupported();
    let detail =
        why.as_deref().map(|w| format!("key budgets are not folded: they fill and the rest counts as other ({w})"));
    note(&mut probe.coverage, "fold", why.is_none(), detail.as_deref().unwrap_or_default());
    why.is_none().then(|| {
        let every = Duration::from_secs(o.fold_seconds);
        tokio::time::interval_at(tokio::time::Instant::now() + every, every)
    })
}
