//! The sample record sent through the ring buffer.

/// One reset, as seen by one view. Addresses are in network byte order
/// (IPv4 in the first 4 bytes); ports in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub ts_ns: u64,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    /// Raw `enum sk_rst_reason` value (`sent` only), else [`NO_REASON`].
    pub reason: u32,
    /// Process id, 0 when the reset did not run in the process that caused it.
    pub pid: u32,
    /// Interface index (wire views), else 0.
    pub ifindex: u32,
    pub view: u8,
    pub cause: u8,
    /// 4 or 6; 0 when unknown.
    pub family: u8,
    /// TCP state of the socket (`received`: before the reset), 0 when none.
    pub state: u8,
    /// TCP flags byte of the RST (wire views) or of the triggering segment (`sent`).
    pub tcp_flags: u8,
    /// Received RSTs (`received`, `wire_in`): `origin::*`; else 0.
    pub origin: u8,
    /// The RST's TTL (hop limit) and the peer's handshake's, 0 when unknown.
    pub ttl: u8,
    pub base_ttl: u8,
    pub comm: [u8; 16],
    /// cgroup v2 id of the socket's owner (`sk_cgrp_data`), 0 without a full socket.
    pub cgroup: u64,
    /// Payload bytes the RST carried (wire views; RFC 9293 §3.5.3 allows
    /// diagnostic text), and how many of them are in `payload`.
    pub payload_len: u16,
    pub payload_caplen: u8,
    /// `origin::evidence` bits.
    pub evidence: u8,
    /// Inode of the network namespace the reset happened in (stack views;
    /// 0 when unknown — the wire views' is the watching daemon's own).
    pub netns: u32,
    pub payload: [u8; PAYLOAD_BYTES],
    /// A correction ([`crate::origin::evidence::CORRECTION`]): the verdict it replaces.
    pub corrected_from: u8,
    pub _pad: [u8; 3],
    /// ms since the flow's previous RST (`AFTER_RST`), or, in a correction,
    /// until the peer spoke again or its handshake came on the new path.
    pub since_ms: u32,
    /// A correction by the peer's talking: its segment's sequence minus the RST's.
    pub seq_distance: i32,
    pub _pad2: u32,
}

/// Bytes of an RST's payload kept in a [`Sample`].
pub const PAYLOAD_BYTES: usize = 64;

pub const NO_REASON: u32 = u32::MAX;

/// Bytes of packet kept in a [`Capture`].
pub const CAPTURE_BYTES: usize = 96;
/// `Capture::kind`: the segment that triggered a reset, from its IP header on.
pub const CAPTURE_TRIGGER: u8 = 0;
/// `Capture::kind`: an RST as seen on the wire, from its Ethernet header on.
pub const CAPTURE_FRAME: u8 = 1;

/// Packet bytes for `--pcap`, sent through the `CAPTURES` ring for sampled resets.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    pub ts_ns: u64,
    pub view: u8,
    pub cause: u8,
    pub kind: u8,
    pub _pad: u8,
    /// Bytes valid in `data`.
    pub caplen: u32,
    pub data: [u8; CAPTURE_BYTES],
}
pub const CAPTURE_SIZE: usize = 112;
const _: () = assert!(size_of::<Capture>() == CAPTURE_SIZE);

#[cfg(feature = "user")]
unsafe impl aya::Pod for Capture {}
pub const SAMPLE_SIZE: usize = 176;
const _: () = assert!(size_of::<Sample>() == SAMPLE_SIZE);

#[cfg(feature = "user")]
unsafe impl aya::Pod for Sample {}

impl Default for Sample {
    fn default() -> Self {
        Self {
            ts_ns: 0,
            local_addr: [0; 16],
            remote_addr: [0; 16],
            local_port: 0,
            remote_port: 0,
            reason: 0,
            pid: 0,
            ifindex: 0,
            view: 0,
            cause: 0,
            family: 0,
            state: 0,
            tcp_flags: 0,
            origin: 0,
            ttl: 0,
            base_ttl: 0,
            comm: [0; 16],
            cgroup: 0,
            payload_len: 0,
            payload_caplen: 0,
            evidence: 0,
            netns: 0,
            payload: [0; PAYLOAD_BYTES],
            corrected_from: 0,
            _pad: [0; 3],
            since_ms: 0,
            seq_distance: 0,
            _pad2: 0,
        }
    }
}
