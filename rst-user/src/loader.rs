//! Loads the embedded kernel object with this kernel's configuration and
//! attaches it. Everything is attached through links owned by the returned
//! `Ebpf`: dropping it, or the process dying, detaches all of it.

use aya::{
    Btf, Ebpf, EbpfLoader, Endianness,
    programs::{
        BtfTracePoint, SchedClassifier, TcAttachType, Xdp, XdpMode, tc, tc::SchedClassifierLinkId, xdp::XdpLinkId,
    },
};
use rst_common::{config::Config, maps};

use crate::error::{Error, chain};

pub const XDP_PROGRAM: &str = "rst_xdp";
pub const TC_PROGRAM: &str = "rst_tc_egress";
/// Programs that do nothing: baselines for measuring the hooks' own cost.
pub const EMPTY_XDP: &str = "empty_xdp";
pub const EMPTY_TC: &str = "empty_tc";
pub const EMPTY_TP_SEND: &str = "empty_tp_send";
pub const EMPTY_TP_RECEIVE: &str = "empty_tp_receive";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rst-ebpf"));

pub struct Sizes {
    pub ring_bytes: u32,
    pub port_keys: u32,
    pub peer_keys: u32,
    pub owner_keys: u32,
}

fn load_error(e: &dyn std::error::Error) -> Error {
    let detail = chain(e);
    if detail.contains("Operation not permitted") || detail.contains("permission denied") {
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
        .map_max_entries(maps::OWNERS, sizes.owner_keys);
    for (name, path) in pins {
        loader.map_pin_path(name, path.as_path());
    }
    loader.load(OBJECT).map_err(|e| load_error(&e))
}

/// Sets the per-CPU sample rate the programs read (changeable while running).
pub fn set_sample_rate(ebpf: &mut Ebpf, rate: u32) -> Result<(), Error> {
    set_setting(ebpf, maps::SETTING_SAMPLE_RATE, rate)
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

/// Like [`attach_tracepoint`] for any `<category>:<tracepoint>`.
pub fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &Btf,
    program_name: &str,
    category: &str,
    tracepoint: &str,
) -> Result<(), Error> {
    let tp: &mut BtfTracePoint = program(ebpf, program_name)?;
    tp.load(tracepoint, btf).map_err(|e| load_error(&e))?;
    tp.attach()
        .map_err(|e| Error::Attach { what: format!("tracepoint {category}:{tracepoint}"), detail: chain(&e) })?;
    Ok(())
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
        _ => return None,
    };
    Some(fd)
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

/// The links of one watched interface; detaching drops them.
pub struct WireLinks {
    xdp: XdpLinkId,
    tc: SchedClassifierLinkId,
}

/// Attaches XDP (ingress) and tc egress to one interface (both or neither).
pub fn attach_wire(ebpf: &mut Ebpf, iface: &str) -> Result<WireLinks, Error> {
    let prog = xdp(ebpf, XDP_PROGRAM)?;
    // Default lets the kernel use native XDP where the driver has it, generic otherwise.
    let xdp_link = prog
        .attach(iface, XdpMode::Default)
        .or_else(|_| prog.attach(iface, XdpMode::Skb))
        .map_err(|e| Error::Attach { what: format!("XDP on {iface}"), detail: chain(&e) })?;
    let prog = tc(ebpf, TC_PROGRAM)?;
    if !aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0)) {
        tracing::warn!(
            iface,
            "kernel < 6.6 has no TCX: tc egress uses a clsact filter, which a killed daemon leaves behind"
        );
        let _ = tc::qdisc_add_clsact(iface);
    }
    match prog.attach(iface, TcAttachType::Egress) {
        Ok(tc_link) => Ok(WireLinks { xdp: xdp_link, tc: tc_link }),
        Err(e) => {
            let _ = xdp(ebpf, XDP_PROGRAM)?.detach(xdp_link);
            Err(Error::Attach { what: format!("tc egress on {iface}"), detail: chain(&e) })
        }
    }
}

/// Detaches one interface's programs.
pub fn detach_wire(ebpf: &mut Ebpf, links: WireLinks) -> Result<(), Error> {
    let detail = |e: aya::programs::ProgramError| Error::Attach { what: "detaching".into(), detail: chain(&e) };
    xdp(ebpf, XDP_PROGRAM)?.detach(links.xdp).map_err(detail)?;
    tc(ebpf, TC_PROGRAM)?.detach(links.tc).map_err(detail)
}
