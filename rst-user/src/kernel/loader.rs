//! Loads the embedded kernel object with this kernel's configuration and
//! attaches it. Everything is attached through links owned by the returned
//! `Ebpf`: dropping it, or the process dying, detaches all of it.

use aya::{
    Btf, Ebpf, EbpfLoader, Endianness,
    programs::{
        BtfTracePoint, FEntry, FExit, SchedClassifier, TcAttachType, Xdp, XdpMode,
        tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions, TcHandle},
        xdp::XdpLinkId,
    },
};
use rst_common::{config::Config, maps};

use crate::error::{Error, chain};

pub const XDP_PROGRAM: &str = "rst_xdp";
/// `rst_xdp` without the payload copy, for kernels without `bpf_xdp_load_bytes` (< 5.18).
pub const XDP_PROGRAM_NO_PAYLOAD: &str = "rst_xdp_no_payload";
/// Our legacy tc filters' own priority and handle (kernels without TCX), so
/// that a stale one is ours to find, and a second one cannot be added.
const TC_PRIORITY: u16 = 0x7277;
const TC_HANDLE: TcHandle = TcHandle::new(0, 0x7277);
pub const TC_PROGRAM: &str = "rst_tc_egress";
/// `wire_in` at tc ingress (the default).
pub const TC_INGRESS_PROGRAM: &str = "rst_tc_ingress";
/// Programs that do nothing: baselines for measuring the hooks' own cost.
pub const EMPTY_XDP: &str = "empty_xdp";
pub const EMPTY_TC: &str = "empty_tc";
pub const EMPTY_TC_INGRESS: &str = "empty_tc_in";
pub const EMPTY_TP_SEND: &str = "empty_tp_send";
pub const EMPTY_TP_RECEIVE: &str = "empty_tp_receive";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rst-ebpf"));

pub struct Sizes {
    pub ring_bytes: u32,
    /// Entries of the call-site table (`SITES`; at least 1).
    pub site_buckets: u32,
    pub port_keys: u32,
    pub peer_keys: u32,
    pub owner_keys: u32,
}

fn load_error(e: &dyn std::error::Error) -> Error {
    let detail = chain(e);
    // The verifier's rejections say EACCES too: those are not about privileges.
    let verifier = detail.contains("erifier");
    if !verifier && (detail.contains("Operation not permitted") || detail.contains("permission denied")) {
        Error::NotPermitted
    } else {
        Error::Load { detail }
    }
}

/// Loads the object; `pins` are (map, path) pairs reused when pinned, pinned when not.
pub fn load(config: &Config, sizes: &Sizes, pins: &[(&'static str, std::path::PathBuf)]) -> Result<Ebpf, Error> {
    let mut loader = EbpfLoader::new();
    loader
        .override_global("CONFIG", config, true)
        .map_max_entries(maps::SAMPLES, sizes.ring_bytes)
        .map_max_entries(maps::PORTS, sizes.port_keys)
        .map_max_entries(maps::PEERS, sizes.peer_keys)
        .map_max_entries(maps::OWNERS, sizes.owner_keys)
        .map_max_entries(maps::SITES, sizes.site_buckets.max(1))
        .map_max_entries(maps::STACK_RSTS, maps::stack_rst_entries(possible_cpus()));
    for (name, path) in pins {
        loader.map_pin_path(name, path.as_path());
    }
    loader.load(OBJECT).map_err(|e| load_error(&e))
}

/// The kernel's possible CPUs (per-CPU maps have one slot each), at least 1.
fn possible_cpus() -> u32 {
    aya::util::nr_cpus().ok().and_then(|n| u32::try_from(n).ok()).unwrap_or(1).max(1)
}

/// Sets the per-CPU sample rate the programs read (changeable while running).
pub fn set_sample_rate(ebpf: &mut Ebpf, rate: u32) -> Result<(), Error> {
    set_setting(ebpf, maps::SETTING_SAMPLE_RATE, rate)
}

/// Sets the generation the programs key ports, peers and owners with (folding).
pub fn set_generation(ebpf: &mut Ebpf, generation: u32) -> Result<(), Error> {
    set_setting(ebpf, maps::SETTING_GENERATION, generation)
}

/// Writes the call-site table the `sent_call_site` program reads.
pub fn set_sites(ebpf: &mut Ebpf, buckets: &std::collections::BTreeMap<u64, u64>) -> Result<(), Error> {
    let map = ebpf.map_mut(maps::SITES).ok_or_else(|| Error::Load { detail: "map SITES missing".into() })?;
    let mut sites: aya::maps::HashMap<_, u64, u64> =
        aya::maps::HashMap::try_from(map).map_err(|e| Error::Load { detail: e.to_string() })?;
    for (bucket, nibbles) in buckets {
        sites.insert(bucket, nibbles, 0).map_err(|e| Error::Load { detail: format!("writing SITES: {e}") })?;
    }
    Ok(())
}

/// Writes one slot of the `SETTINGS` map the programs read while running.
fn set_setting(ebpf: &mut Ebpf, slot: u32, value: u32) -> Result<(), Error> {
    let map = ebpf.map_mut(maps::SETTINGS).ok_or_else(|| Error::Load { detail: "map SETTINGS missing".into() })?;
    let mut settings: aya::maps::Array<_, u32> =
        aya::maps::Array::try_from(map).map_err(|e| Error::Load { detail: e.to_string() })?;
    settings.set(slot, value, 0).map_err(|e| Error::Load { detail: format!("setting SETTINGS[{slot}]: {e}") })
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::Load { detail: format!("program {name} missing from the object") })?;
    p.try_into().map_err(|e: aya::programs::ProgramError| Error::Load { detail: chain(&e) })
}

/// The kernel's BTF as aya reads it (for BTF tracepoints).
pub fn kernel_btf(path: &std::path::Path) -> Result<Btf, Error> {
    Btf::parse_file(path, Endianness::default())
        .map_err(|e| Error::NoBtf { path: path.to_path_buf(), detail: e.to_string() })
}

/// Loads program `program_name` for tracepoint `tcp:<tracepoint>` (a BTF
/// tracepoint: not skipped while bpf() syscalls run) and attaches it.
pub fn attach_tracepoint(ebpf: &mut Ebpf, btf: &Btf, program_name: &str, tracepoint: &str) -> Result<(), Error> {
    attach_btf_tracepoint(ebpf, btf, program_name, "tcp", tracepoint)
}

/// Loads the programs of `plan` — (program, the function or tracepoint it
/// attaches to; None for XDP and tc) — at once, one thread each: the kernel
/// verifies them in parallel (a privileged load takes no global verifier lock),
/// which is most of a start under emulation. Attaching comes after, one by one;
/// a program that failed here is loaded again there, which reports why.
pub fn preload(ebpf: &mut Ebpf, btf: &Btf, plan: &[(&str, Option<&str>)]) {
    use aya::programs::Program;
    std::thread::scope(|scope| {
        for (name, program) in ebpf.programs_mut() {
            let Some(&(_, target)) = plan.iter().find(|(n, _)| *n == name) else { continue };
            scope.spawn(move || {
                let _ = match (program, target) {
                    (Program::BtfTracePoint(p), Some(t)) => p.load(t, btf),
                    (Program::FEntry(p), Some(f)) => p.load(f, btf),
                    (Program::FExit(p), Some(f)) => p.load(f, btf),
                    (Program::Xdp(p), None) => p.load(),
                    (Program::SchedClassifier(p), None) => p.load(),
                    _ => Ok(()),
                };
            });
        }
    });
}

/// Like [`attach_tracepoint`] for any `<category>:<tracepoint>`.
pub fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &Btf,
    program_name: &str,
    category: &str,
    tracepoint: &str,
) -> Result<(), Error> {
    let tp: &mut BtfTracePoint = program(ebpf, program_name)?;
    if tp.fd().is_err() {
        tp.load(tracepoint, btf).map_err(|e| load_error(&e))?;
    }
    tp.attach()
        .map_err(|e| Error::Attach { what: format!("tracepoint {category}:{tracepoint}"), detail: chain(&e) })?;
    Ok(())
}

/// A tracing program (fentry/fexit) the kernel refused with EPERM and no
/// verifier word: the kernel forbids function hooks here (ftrace restricted).
fn trampoline_error(kind: &str, function: &str, e: &dyn std::error::Error) -> Error {
    let detail = chain(e);
    if detail.contains("Operation not permitted") {
        return Error::Attach {
            what: format!("{kind} {function}"),
            detail: "this kernel does not permit fentry/fexit programs (function tracing is restricted)".into(),
        };
    }
    load_error(e)
}

/// Loads fentry program `program_name` on kernel function `function` and attaches it.
pub fn attach_fentry(ebpf: &mut Ebpf, btf: &Btf, program_name: &str, function: &str) -> Result<(), Error> {
    let p: &mut FEntry = program(ebpf, program_name)?;
    if p.fd().is_err() {
        p.load(function, btf).map_err(|e| trampoline_error("fentry", function, &e))?;
    }
    p.attach().map_err(|e| Error::Attach { what: format!("fentry {function}"), detail: chain(&e) })?;
    Ok(())
}

/// Loads fexit program `program_name` on kernel function `function` and attaches it.
pub fn attach_fexit(ebpf: &mut Ebpf, btf: &Btf, program_name: &str, function: &str) -> Result<(), Error> {
    let p: &mut FExit = program(ebpf, program_name)?;
    if p.fd().is_err() {
        p.load(function, btf).map_err(|e| trampoline_error("fexit", function, &e))?;
    }
    p.attach().map_err(|e| Error::Attach { what: format!("fexit {function}"), detail: chain(&e) })?;
    Ok(())
}

/// Tells the stack programs whether tc egress watches any interface (then
/// they announce their replies to it) and which families it pairs (see
/// `maps::SETTING_ANNOUNCE`); 0: none watched.
pub fn set_announce(ebpf: &mut Ebpf, bits: u32) -> Result<(), Error> {
    set_setting(ebpf, maps::SETTING_ANNOUNCE, bits)
}

/// Turns packet captures of sampled resets on or off (`--pcap`).
pub fn set_capture(ebpf: &mut Ebpf, on: bool) -> Result<(), Error> {
    set_setting(ebpf, maps::SETTING_CAPTURE, u32::from(on))
}

/// The raw fd of a loaded program (valid while `ebpf` lives).
#[must_use]
pub fn program_fd(ebpf: &Ebpf, name: &str) -> Option<std::os::fd::RawFd> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let fd = match ebpf.program(name)? {
        aya::programs::Program::BtfTracePoint(p) => p.fd().ok()?.as_fd().as_raw_fd(),
        aya::programs::Program::FEntry(p) => p.fd().ok()?.as_fd().as_raw_fd(),
        aya::programs::Program::FExit(p) => p.fd().ok()?.as_fd().as_raw_fd(),
        _ => return None,
    };
    Some(fd)
}

/// (name, fd) of every program of `ebpf` that is loaded now.
#[must_use]
pub fn loaded_programs(ebpf: &Ebpf) -> Vec<(String, std::os::fd::RawFd)> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    ebpf.programs().filter_map(|(name, p)| Some((name.to_string(), p.fd().ok()?.as_fd().as_raw_fd()))).collect()
}

/// One number of a program's fdinfo (`recursion_misses`, `run_cnt`, `run_time_ns`); 0 when absent.
#[must_use]
pub fn fdinfo(fd: std::os::fd::RawFd, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Each program's runs and run time as the kernel counts them (while `kernel.bpf_stats_enabled` is 1).
#[must_use]
pub fn program_costs(programs: &[(String, std::os::fd::RawFd)]) -> Vec<crate::pipeline::model::ProgramCost> {
    programs
        .iter()
        .map(|(name, fd)| crate::pipeline::model::ProgramCost {
            program: name.clone(),
            runs: fdinfo(*fd, "run_cnt"),
            run_ns: fdinfo(*fd, "run_time_ns"),
        })
        .collect()
}

/// The XDP program `name`, loaded (once) but not attached.
pub fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, Error> {
    let p: &mut Xdp = program(ebpf, name)?;
    if p.fd().is_err() {
        p.load().map_err(|e| load_error(&e))?;
    }
    Ok(p)
}

/// The tc program `name`, loaded (once) but not attached.
pub fn tc<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, Error> {
    let p: &mut SchedClassifier = program(ebpf, name)?;
    if p.fd().is_err() {
        p.load().map_err(|e| load_error(&e))?;
    }
    Ok(p)
}

/// Which hook makes `wire_in` (`--wire-in`, config `wire_in`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireIn {
    /// tc ingress (a TCX link on kernels >= 6.6, a clsact filter before): costs the
    /// traffic nothing measurable and changes nothing about the device.
    #[default]
    Tc,
    /// Native XDP, for a driver where it is free; where the driver refuses
    /// native mode, tc ingress instead (one log line), never generic XDP.
    Xdp,
}

/// The hook a wire view got on one interface (`/snapshot` `interfaces`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A TCX link (tc, kernels >= 6.6).
    Tcx,
    /// A clsact filter of ours (tc, before TCX).
    Clsact,
    /// Native XDP.
    Xdp,
}

impl Hook {
    /// The name `/snapshot` and the logs use.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Clsact => "tc",
            Self::Xdp => "xdp",
        }
    }
}

/// The ingress link of one watched interface.
enum IngressLink {
    Tc(SchedClassifierLinkId),
    Xdp(XdpLinkId),
}

/// The links of one watched interface; detaching drops them.
pub struct WireLinks {
    ingress: IngressLink,
    egress: SchedClassifierLinkId,
}

impl WireLinks {
    /// The hooks `wire_in` and `wire_out` got.
    #[must_use]
    pub fn hooks(&self, mode: WireMode) -> (Hook, Hook) {
        let tc = if mode.tcx { Hook::Tcx } else { Hook::Clsact };
        (if matches!(self.ingress, IngressLink::Xdp(_)) { Hook::Xdp } else { tc }, tc)
    }
}

/// How this kernel's wire hooks are attached.
#[derive(Clone, Copy, Debug)]
pub struct WireMode {
    /// The hook asked for `wire_in`.
    pub ingress: WireIn,
    /// [`XDP_PROGRAM`] or, without `bpf_xdp_load_bytes`, [`XDP_PROGRAM_NO_PAYLOAD`].
    pub xdp_program: &'static str,
    /// tc through TCX links (kernel >= 6.6), else clsact filters.
    pub tcx: bool,
}

impl WireMode {
    /// The programs to load for watching interfaces in this mode.
    #[must_use]
    pub fn programs(self) -> Vec<&'static str> {
        match self.ingress {
            WireIn::Tc => vec![TC_INGRESS_PROGRAM, TC_PROGRAM],
            // tc ingress too: where native XDP is refused, it stands in.
            WireIn::Xdp => vec![self.xdp_program, TC_INGRESS_PROGRAM, TC_PROGRAM],
        }
    }
}

/// Attaches tc program `name` at `at` on `iface`: a TCX link, or a clsact
/// filter of ours (named, with our priority and handle) after removing one
/// an earlier daemon left.
fn attach_tc(
    ebpf: &mut Ebpf,
    name: &str,
    iface: &str,
    at: TcAttachType,
    tcx: bool,
) -> Result<SchedClassifierLinkId, Error> {
    let prog = tc(ebpf, name)?;
    let attached = if tcx {
        prog.attach(iface, at)
    } else {
        let _ = tc::qdisc_add_clsact(iface);
        // A daemon killed before it could detach (SIGKILL, a crash) leaves its
        // clsact filter counting; it is ours by name: remove it first, so the wire is counted once.
        if tc::qdisc_detach_program(iface, at, name).is_ok() {
            let at = direction(at);
            tracing::warn!(iface, "removed a tc {at} filter left by an earlier rstwatch that did not exit cleanly");
        }
        let options = NlOptions { priority: TC_PRIORITY, handle: TC_HANDLE, ..NlOptions::default() };
        prog.attach_with_options(iface, at, TcAttachOptions::Netlink(options))
    };
    attached.map_err(|e| Error::Attach { what: format!("tc {} on {iface}", direction(at)), detail: chain(&e) })
}

fn direction(at: TcAttachType) -> &'static str {
    if matches!(at, TcAttachType::Ingress) { "ingress" } else { "egress" }
}

/// Native XDP on `iface`, or why the driver refuses it.
fn attach_xdp(ebpf: &mut Ebpf, iface: &str, mode: WireMode) -> Result<XdpLinkId, String> {
    let prog = xdp(ebpf, mode.xdp_program).map_err(|e| e.to_string())?;
    prog.attach(iface, XdpMode::Driver).map_err(|e| chain(&e))
}

/// Attaches the ingress hook (`mode.ingress`) and tc egress to one interface
/// (both or neither). Never generic XDP: it copies or linearises every
/// received packet; where native XDP is refused, tc ingress stands in, with one log line.
pub fn attach_wire(ebpf: &mut Ebpf, iface: &str, mode: WireMode) -> Result<WireLinks, Error> {
    // Every program loads (and passes the verifier) before any is attached.
    for name in mode.programs() {
        if name == mode.xdp_program {
            xdp(ebpf, name)?;
        } else {
            tc(ebpf, name)?;
        }
    }
    let xdp_link = match mode.ingress {
        WireIn::Xdp => attach_xdp(ebpf, iface, mode)
            .inspect_err(|why| {
                tracing::warn!(iface, "native XDP refused ({why}): wire_in uses tc ingress on it instead");
            })
            .ok(),
        WireIn::Tc => None,
    };
    let ingress = match xdp_link {
        Some(link) => IngressLink::Xdp(link),
        None => IngressLink::Tc(attach_tc(ebpf, TC_INGRESS_PROGRAM, iface, TcAttachType::Ingress, mode.tcx)?),
    };
    match attach_tc(ebpf, TC_PROGRAM, iface, TcAttachType::Egress, mode.tcx) {
        Ok(egress) => Ok(WireLinks { ingress, egress }),
        Err(e) => {
            let _ = detach_ingress(ebpf, ingress, mode);
            Err(e)
        }
    }
}

/// Removes every legacy tc filter of ours (by program name, ingress and
/// egress) from `iface`; true if there was one.
#[must_use]
pub fn remove_tc_filters(iface: &str) -> bool {
    let ingress = tc::qdisc_detach_program(iface, TcAttachType::Ingress, TC_INGRESS_PROGRAM).is_ok();
    tc::qdisc_detach_program(iface, TcAttachType::Egress, TC_PROGRAM).is_ok() || ingress
}

fn detach_ingress(ebpf: &mut Ebpf, link: IngressLink, mode: WireMode) -> Result<(), Error> {
    let detail = |e: aya::programs::ProgramError| Error::Attach { what: "detaching".into(), detail: chain(&e) };
    match link {
        IngressLink::Xdp(l) => xdp(ebpf, mode.xdp_program)?.detach(l).map_err(detail),
        IngressLink::Tc(l) => tc(ebpf, TC_INGRESS_PROGRAM)?.detach(l).map_err(detail),
    }
}

/// Detaches one interface's programs.
pub fn detach_wire(ebpf: &mut Ebpf, links: WireLinks, mode: WireMode) -> Result<(), Error> {
    let detail = |e: aya::programs::ProgramError| Error::Attach { what: "detaching".into(), detail: chain(&e) };
    detach_ingress(ebpf, links.ingress, mode)?;
    tc(ebpf, TC_PROGRAM)?.detach(links.egress).map_err(detail)
}
