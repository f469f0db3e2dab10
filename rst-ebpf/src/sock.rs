//! Reads of the kernel's structs for the stack's programs: a socket's or a
//! segment's tuple, TCP header bytes, the owner's cgroup, the namespace, the
//! linger state. Offsets come from BTF through CONFIG.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use rst_common::{config::ABSENT, maps::FlowKey};

use crate::{
    config::cfg_get,
    proto::{AF_INET, AF_INET6, LINUX_AF_INET6, TCP_NEW_SYN_RECV, TCP_TIME_WAIT, TCPHDR_FLAGS},
};

/// A reset's tuple seen from here (local, remote): the same layout as the
/// map key, so it is one without a copy on the small BPF stack.
pub(crate) type Endpoints = FlowKey;

/// No tuple yet (IPv4, zeros).
pub(crate) const NO_ENDPOINTS: Endpoints =
    FlowKey { family: AF_INET, _pad: [0; 3], lport: 0, rport: 0, local: [0; 16], remote: [0; 16] };

#[inline(always)]
pub(crate) fn kread<T: Copy + Default>(base: u64, off: u32) -> T {
    if base == 0 || off == ABSENT {
        return T::default();
    }
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T) }.unwrap_or_default()
}

#[inline(always)]
pub(crate) fn kread_bytes<const N: usize>(base: u64, off: u32) -> [u8; N] {
    if base == 0 || off == ABSENT {
        return [0; N];
    }
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const [u8; N]) }.unwrap_or([0; N])
}

/// `v` as a table index when below `len`. Works in 64-bit registers, so the
/// verifier keeps the bound (a 32-bit value re-extended after a spill loses it).
#[inline(always)]
pub(crate) fn slot(v: u64, len: usize) -> Option<usize> {
    // One opaque 64-bit load: compare and index use this very register.
    let v = unsafe { core::ptr::read_volatile(&raw const v) };
    (v < len as u64).then_some(v as usize)
}

/// `sk_fullsock()`: a socket that is neither a timewait nor a request socket
/// (those are smaller structs with no owner, options or user tuple).
#[inline(always)]
pub(crate) fn full_socket(sk: u64, state: u8) -> bool {
    sk != 0 && state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV
}

/// Address of the TCP header of a segment in the stack (`head +
/// transport_header`), 0 if unknown.
#[inline(always)]
pub(crate) fn tcp_header(skb: u64) -> u64 {
    let head: u64 = kread(skb, cfg_get!(skb_head));
    let th_off: u16 = kread(skb, cfg_get!(skb_transport_header));
    if head == 0 { 0 } else { head + u64::from(th_off) }
}

/// A full socket's own tuple.
#[inline(always)]
pub(crate) fn sock_endpoints(sk: u64) -> Endpoints {
    let mut e = NO_ENDPOINTS;
    e.lport = u16::from_be(kread(sk, cfg_get!(inet_sport)));
    e.rport = u16::from_be(kread(sk, cfg_get!(sk_dport)));
    if kread::<u16>(sk, cfg_get!(sk_family)) == LINUX_AF_INET6 {
        e.family = AF_INET6;
        e.local = kread_bytes(sk, cfg_get!(sk_v6_rcv_saddr));
        e.remote = kread_bytes(sk, cfg_get!(sk_v6_daddr));
    } else {
        e.local[..4].copy_from_slice(&kread_bytes::<4>(sk, cfg_get!(sk_rcv_saddr)));
        e.remote[..4].copy_from_slice(&kread_bytes::<4>(sk, cfg_get!(sk_daddr)));
    }
    e
}

/// The first bytes of a TCP header, through the flags: ports, sequence
/// and acknowledgment numbers, data offset and flags. Zeros if unknown.
pub(crate) type TcpStart = [u8; 14];

/// One read of a TCP header's first bytes (`th` 0: zeros).
#[inline(always)]
pub(crate) fn tcp_start(th: u64) -> TcpStart {
    kread_bytes(th, 0)
}

/// The flags byte of a [`TcpStart`].
#[inline(always)]
pub(crate) fn tcp_flags(t: &TcpStart) -> u8 {
    t[TCPHDR_FLAGS as usize]
}

/// The tuple of an incoming segment seen from here (its destination is our
/// local end): the reset a socketless reply answers, or a dropped RST. `tcp`
/// is the start of its TCP header. The IP header is one read: 40 bytes are
/// there for every TCP segment the stack handles (an IPv4 header is followed
/// by at least the TCP header).
#[inline(always)]
pub(crate) fn skb_endpoints(skb: u64, tcp: &TcpStart) -> Endpoints {
    let mut e = NO_ENDPOINTS;
    let head: u64 = kread(skb, cfg_get!(skb_head));
    let nh: u16 = kread(skb, cfg_get!(skb_network_header));
    let iph = if head == 0 { 0 } else { head + u64::from(nh) };
    let ip: [u8; 40] = kread_bytes(iph, 0);
    if ip[0] >> 4 == 6 {
        e.family = AF_INET6;
        e.remote.copy_from_slice(&ip[8..24]);
        e.local.copy_from_slice(&ip[24..40]);
    } else {
        e.remote[..4].copy_from_slice(&ip[12..16]);
        e.local[..4].copy_from_slice(&ip[16..20]);
    }
    e.rport = u16::from_be_bytes([tcp[0], tcp[1]]);
    e.lport = u16::from_be_bytes([tcp[2], tcp[3]]);
    e
}

/// The cgroup v2 id of a full socket's owner (`sk_cgrp_data.cgroup->kn->id`), 0 if unknown.
#[inline(always)]
pub(crate) fn owner_cgroup(sk: u64) -> u64 {
    let cgrp: u64 = kread(sk, cfg_get!(sk_cgroup));
    let kn: u64 = kread(cgrp, cfg_get!(cgroup_kn));
    kread(kn, cfg_get!(kn_id))
}

/// Inode of a socket's network namespace, else of the device a segment came
/// in on; 0 if unknown.
#[inline(always)]
pub(crate) fn netns(sk: u64, skb: u64) -> u32 {
    let net: u64 = if sk != 0 {
        kread(sk, cfg_get!(sk_net))
    } else {
        let dev: u64 = kread(skb, cfg_get!(skb_dev));
        kread(dev, cfg_get!(dev_net))
    };
    kread(net, cfg_get!(net_inum))
}

/// Whether close() is sending this reset because of SO_LINGER {on, 0}
/// (SOCK_LINGER set, sk_lingertime 0): close() marks the socket
/// SHUTDOWN_MASK before it disconnects; connect(AF_UNSPEC) (tcp_disconnect)
/// and sock_destroy (tcp_abort, `ss -K`) leave it as the process had it.
#[inline(always)]
pub(crate) fn closed_with_linger_zero(sk: u64) -> bool {
    const SHUTDOWN_MASK: u8 = 3;
    let bit = cfg_get!(sock_linger_bit);
    if sk == 0 || bit >= 64 {
        return false;
    }
    let flags: u64 = kread(sk, cfg_get!(sk_flags));
    let lingertime: u64 = kread(sk, cfg_get!(sk_lingertime));
    let shutdown: u8 = kread(sk, cfg_get!(sk_shutdown));
    flags & (1 << bit) != 0 && lingertime == 0 && shutdown & SHUTDOWN_MASK == SHUTDOWN_MASK
}
