//! Loads the embedded kernel object with this kernel's configuration and
//! attaches it. Everything is attached through links owned by the returned
//! `Ebpf`: dropping it, or the process dying, detaches all of it.

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TcAttachType, TracePoint, Xdp, XdpMode, tc},
};
use rst_common::{config::Config, maps};

use crate::error::{Error, chain};

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

/// Attaches XDP (ingress) and tc egress to one interface.
pub fn attach_wire(ebpf: &mut Ebpf, iface: &str) -> Result<(), Error> {
    let xdp: &mut Xdp = program(ebpf, "rst_xdp")?;
    if xdp.fd().is_err() {
        xdp.load().map_err(|e| load_error(&e))?;
    }
    // Default lets the kernel use native XDP where the driver has it, generic otherwise.
    xdp.attach(iface, XdpMode::Default)
        .or_else(|_| xdp.attach(iface, XdpMode::Skb))
        .map_err(|e| Error::Attach { what: format!("XDP on {iface}"), detail: chain(&e) })?;
    let tcp: &mut SchedClassifier = program(ebpf, "rst_tc_egress")?;
    if tcp.fd().is_err() {
        tcp.load().map_err(|e| load_error(&e))?;
    }
    if !aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0)) {
        tracing::warn!(iface, "kernel < 6.6 has no TCX: tc egress uses a clsact filter, which a killed daemon leaves behind");
        let _ = tc::qdisc_add_clsact(iface);
    }
    tcp.attach(iface, TcAttachType::Egress)
        .map_err(|e| Error::Attach { what: format!("tc egress on {iface}"), detail: chain(&e) })?;
    Ok(())
}
