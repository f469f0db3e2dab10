//! Loads the embedded kernel object with this kernel's configuration and
//! attaches it. Everything is attached through links owned by the returned
//! `Ebpf`: dropping it, or the process dying, detaches all of it.

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TcAttachType, TracePoint, Xdp, XdpMode, tc},
};
use rst_common::{config::Config, maps};

use crate::error::{Error, chain};

pub const XDP_PROGRAM: &str = "rst_xdp";
pub const TC_PROGRAM: &str = "rst_tc_egress";
/// Programs that do nothing: baselines for measuring the hooks' own cost.
pub const EMPTY_XDP: &str = "empty_xdp";
pub const EMPTY_TC: &str = "empty_tc";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rst-ebpf"));

pub struct Sizes {
    pub ring_bytes: u32,
    pub port_keys: u32,
    pub peer_keys: u32,
}

fn load_error(e: &dyn std::error::Error) -> Error {
    let detail = chain(e);
    if detail.contains("Operation not permitted") || detail.contains("permission denied") {
        Error::NotPermitted
    } else {
        Error::Load { detail }
    }
}

pub fn load(config: &Config, sizes: &Sizes) -> Result<Ebpf, Error> {
    EbpfLoader::new()
        .override_global("CONFIG", config, true)
        .map_max_entries(maps::SAMPLES, sizes.ring_bytes)
        .map_max_entries(maps::PORTS, sizes.port_keys)
        .map_max_entries(maps::PEERS, sizes.peer_keys)
        .load(OBJECT)
        .map_err(|e| load_error(&e))
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or_else(|| Error::Load { detail: format!("program {name} missing from the object") })?;
    p.try_into().map_err(|e: aya::programs::ProgramError| Error::Load { detail: chain(&e) })
}

/// Loads (once) and attaches one tracepoint program to `tcp:<name>`.
pub fn attach_tracepoint(ebpf: &mut Ebpf, name: &str) -> Result<(), Error> {
    let tp: &mut TracePoint = program(ebpf, name)?;
    tp.load().map_err(|e| load_error(&e))?;
    tp.attach("tcp", name).map_err(|e| Error::Attach { what: format!("tracepoint tcp:{name}"), detail: chain(&e) })?;
    Ok(())
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

/// Attaches XDP (ingress) and tc egress to one interface.
pub fn attach_wire(ebpf: &mut Ebpf, iface: &str) -> Result<(), Error> {
    let prog = xdp(ebpf, XDP_PROGRAM)?;
    // Default lets the kernel use native XDP where the driver has it, generic otherwise.
    prog.attach(iface, XdpMode::Default)
        .or_else(|_| prog.attach(iface, XdpMode::Skb))
        .map_err(|e| Error::Attach { what: format!("XDP on {iface}"), detail: chain(&e) })?;
    let prog = tc(ebpf, TC_PROGRAM)?;
    if !aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0)) {
        tracing::warn!(iface, "kernel < 6.6 has no TCX: tc egress uses a clsact filter, which a killed daemon leaves behind");
        let _ = tc::qdisc_add_clsact(iface);
    }
    prog.attach(iface, TcAttachType::Egress)
        .map_err(|e| Error::Attach { what: format!("tc egress on {iface}"), detail: chain(&e) })?;
    Ok(())
}
