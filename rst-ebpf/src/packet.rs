//! RST parsing shared by XDP and tc: Ethernet, up to two VLAN tags, IPv4
//! (options) or IPv6 (common extension headers), then the fixed TCP header.

use crate::proto::{AF_INET, AF_INET6, IPPROTO_TCP, IPV6_HLEN, TCP_ACK, TCP_HLEN, TCP_RST, TCP_SYN};
use rst_common::{
    cause,
    event::{CAPTURE_BYTES, CAPTURE_FRAME, PAYLOAD_BYTES},
    maps::FlowKey,
};

/// Bounds-checked reads from a frame; the only way headers are read.
pub trait Frame {
    fn read<T: Copy>(&self, off: usize) -> Option<T>;
    /// `N` bytes at `off` as cheaply as the hook allows, for a header read
    /// field by field: XDP checks the bounds once and points into the frame;
    /// tc copies them into `buf` with one helper call (each read is a call there).
    fn bytes<'a, const N: usize>(&'a self, off: usize, buf: &'a mut [u8; N]) -> Option<&'a [u8; N]>;
    fn len(&self) -> usize;
    /// Copies `n` (1..=PAYLOAD_BYTES) bytes from `off` into `buf` through
    /// the kernel's load-bytes helper (variable offset and length).
    fn load_into(&self, off: usize, buf: &mut [u8; PAYLOAD_BYTES], n: usize) -> bool;
    /// The frame's first bytes into `data` (a capture record in the ring),
    /// as many as fit; how many (0: none). By fixed-size reads (what the
    /// verifier accepts of direct packet access), the largest that fits.
    #[inline(always)]
    fn capture_into(&self, data: &mut [u8; CAPTURE_BYTES]) -> u32 {
        if let Some(b) = self.read::<[u8; CAPTURE_BYTES]>(0) {
            *data = b;
            CAPTURE_BYTES as u32
        } else if let Some(b) = self.read::<[u8; 74]>(0) {
            data[..74].copy_from_slice(&b);
            74
        } else if let Some(b) = self.read::<[u8; 54]>(0) {
            data[..54].copy_from_slice(&b);
            54
        } else {
            0
        }
    }
}

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// Addresses and ports of an RST as it appears on the wire.
pub struct Rst {
    pub family: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    /// Its sequence number (0 when the TCP header is cut) and IP TTL (hop limit).
    pub seq: u32,
    pub ttl: u8,
    /// The segment's cause from its own header (contract §2, wire views).
    pub cause: u8,
    /// Where its IP header and its payload start in the frame (payload: 0
    /// when the TCP header is cut); the length is read only for samples.
    pub ip_off: usize,
    pub payload_off: usize,
}

/// L3 protocol and L3 offset after skipping VLAN tags.
#[inline(always)]
fn l3<F: Frame>(f: &F) -> Option<(u16, usize)> {
    // In place where the hook allows: tc ingress reads this of every frame.
    let mut buf = [0u8; 2];
    let mut proto = u16::from_be_bytes(*f.bytes(12, &mut buf)?);
    let mut off = ETH_HLEN;
    for _ in 0..2 {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        proto = u16::from_be(f.read::<u16>(off + 2)?);
        off += 4;
    }
    Some((proto, off))
}

/// The fixed IP header of a TCP segment: in the frame on XDP, a copy on tc.
/// Its addresses are read only once the segment turned out to be an RST.
enum Ip<'a> {
    V4(&'a [u8; 20]),
    V6(&'a [u8; IPV6_HLEN]),
}

impl Ip<'_> {
    /// Family, source and destination address.
    #[inline(always)]
    fn addrs(&self) -> (u8, [u8; 16], [u8; 16]) {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        match self {
            Ip::V4(h) => {
                src[..4].copy_from_slice(&h[12..16]);
                dst[..4].copy_from_slice(&h[16..20]);
                (AF_INET, src, dst)
            }
            Ip::V6(h) => {
                src.copy_from_slice(&h[8..24]);
                dst.copy_from_slice(&h[24..40]);
                (AF_INET6, src, dst)
            }
        }
    }

    /// TTL (IPv4) or hop limit (IPv6).
    #[inline(always)]
    fn ttl(&self) -> u8 {
        match self {
            Ip::V4(h) => h[8],
            Ip::V6(h) => h[7],
        }
    }
}

/// IPv4: the first fragment of a TCP datagram, and where its TCP header starts.
#[inline(always)]
fn ipv4_l4<'a, F: Frame>(f: &'a F, off: usize, buf: &'a mut [u8; 20]) -> Option<(Ip<'a>, usize)> {
    let h = f.bytes(off, buf)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if ihl < 20 || h[9] != IPPROTO_TCP || frag_off != 0 {
        return None;
    }
    Some((Ip::V4(h), off + ihl))
}

/// IPv6: walks hop-by-hop, routing, destination options and the first
/// fragment header to the TCP header.
#[inline(always)]
fn ipv6_l4<'a, F: Frame>(f: &'a F, off: usize, buf: &'a mut [u8; IPV6_HLEN]) -> Option<(Ip<'a>, usize)> {
    let h = f.bytes(off, buf)?;
    let mut next = h[6];
    let mut l4 = off + IPV6_HLEN;
    for _ in 0..4 {
        match next {
            0 | 43 | 60 => {
                let ext: [u8; 2] = f.read(l4)?;
                next = ext[0];
                l4 += (usize::from(ext[1]) + 1) * 8;
            }
            44 => {
                let frag: [u8; 4] = f.read(l4)?;
                if u16::from_be_bytes([frag[2], frag[3]]) & 0xfff8 != 0 {
                    return None;
                }
                next = frag[0];
                l4 += 8;
            }
            _ => break,
        }
    }
    (next == IPPROTO_TCP).then_some((Ip::V6(h), l4))
}

/// Bytes of payload an RST carries, by its IP length field (Ethernet padding
/// is not payload). Read only for sampled RSTs: counting never pays it.
#[inline(always)]
fn payload_len<F: Frame>(f: &F, rst: &Rst) -> usize {
    if rst.payload_off == 0 {
        return 0;
    }
    let off = rst.ip_off;
    let end = if rst.family == AF_INET {
        f.read::<[u8; 2]>(off + 2).map(|l| off + usize::from(u16::from_be_bytes(l)))
    } else {
        f.read::<[u8; 2]>(off + 4).map(|l| off + IPV6_HLEN + usize::from(u16::from_be_bytes(l)))
    };
    end.map_or(0, |end| end.saturating_sub(rst.payload_off))
}

/// Parses a frame; `None` unless it is a TCP segment with RST set. Non-RST
/// segments cost three header reads (Ethernet type, IP, TCP) and no copy;
/// an arriving (`inbound`) SYN or SYN-ACK also leaves its sender's TTL for
/// judging its RSTs later (`origin::handshake`).
#[inline(always)]
pub fn parse_rst<F: Frame>(f: &F, inbound: bool) -> Option<Rst> {
    let (proto, off) = l3(f)?;
    let mut v4 = [0u8; 20];
    let mut v6 = [0u8; IPV6_HLEN];
    let (ip, l4) = match proto {
        ETH_P_IPV4 => ipv4_l4(f, off, &mut v4)?,
        ETH_P_IPV6 => ipv6_l4(f, off, &mut v6)?,
        _ => return None,
    };
    // One read of the whole fixed header; a segment cut inside it costs a
    // second read, of its flags alone (an RST cut short is still counted).
    let mut buf = [0u8; TCP_HLEN];
    let th = f.bytes(l4, &mut buf);
    let flags = match th {
        Some(th) => th[13],
        None => f.read::<u8>(l4 + 13)?,
    };
    if flags & TCP_RST == 0 {
        if inbound && flags & TCP_SYN != 0 && crate::origin::on() {
            let (family, src, _) = ip.addrs();
            crate::origin::handshake(family, &src, ip.ttl());
        }
        return None;
    }
    let (family, src, dst) = ip.addrs();
    let mut rst = Rst {
        family,
        src,
        dst,
        sport: 0,
        dport: 0,
        flags,
        seq: 0,
        ttl: ip.ttl(),
        cause: cause::MALFORMED,
        ip_off: off,
        payload_off: 0,
    };
    let Some(th) = th else { return Some(rst) };
    rst.sport = u16::from_be_bytes([th[0], th[1]]);
    rst.dport = u16::from_be_bytes([th[2], th[3]]);
    let doff = usize::from(th[12] >> 4) * 4;
    if doff < TCP_HLEN || l4 + doff > f.len() {
        return Some(rst);
    }
    rst.payload_off = l4 + doff;
    let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]);
    rst.seq = seq;
    rst.cause = if flags & TCP_ACK == 0 {
        cause::STRAY_REPLY
    } else if seq == 0 {
        cause::REFUSAL
    } else {
        cause::ABORT
    };
    Some(rst)
}

/// Counts an RST seen on the wire and samples it. `inbound`: the local end is
/// the destination (`wire_in`), else the source (`wire_out`). `from_stack`
/// (egress only) says whether the TCP stack made it; it is asked only for
/// well-formed RSTs.
#[inline(always)]
pub fn observe<F: Frame>(f: &F, view: u8, inbound: bool, ifindex: u32, from_stack: impl Fn(&FlowKey) -> bool) {
    let Some(mut rst) = parse_rst(f, inbound) else { return };
    let (local, remote, lport, rport) =
        if inbound { (rst.dst, rst.src, rst.dport, rst.sport) } else { (rst.src, rst.dst, rst.sport, rst.dport) };
    let key = FlowKey { family: rst.family, _pad: [0; 3], lport, rport, local, remote };
    if !inbound && rst.cause != cause::MALFORMED && !from_stack(&key) {
        rst.cause = cause::NOT_FROM_STACK;
    }
    // The watched interfaces are in the daemon's own namespace: no namespace in the key.
    // An arriving refusal is keyed by the port that refused (its source), as `received/refused` is.
    let port = if inbound && rst.cause == cause::REFUSAL { rport } else { lport };
    crate::counters::count(view, rst.cause, port, rst.family, &remote, 0);
    let verdict = if inbound {
        let v = crate::origin::judge(&key, rst.seq, rst.ttl, rst.cause);
        crate::counters::count_origin(view, rst.cause, v.origin);
        v
    } else {
        crate::origin::Verdict::default()
    };
    let sampled = crate::counters::emit(
        #[inline(always)]
        |s| {
            // The tuple again, not `&key`: filling from `key` makes the verifier explore
            // about 18 000 more instructions of the tc program (measured on 6.18).
            let flow = FlowKey { family: rst.family, _pad: [0; 3], lport, rport, local, remote };
            crate::sample::describe(s, view, rst.cause, rst.flags, rst_common::event::NO_REASON, &flow, verdict);
            s.ifindex = ifindex;
            let len = payload_len(f, &rst);
            s.payload_len = len.min(usize::from(u16::MAX)) as u16;
            let n = len.min(PAYLOAD_BYTES).min(f.len().saturating_sub(rst.payload_off));
            if n > 0 && f.load_into(rst.payload_off, &mut s.payload, n) {
                s.payload_caplen = n as u8;
            }
        },
    );
    if sampled && crate::counters::capturing() {
        capture_frame(f, view, rst.cause);
    }
}

/// The RST frame's first bytes, for `--pcap`.
#[inline(always)]
fn capture_frame<F: Frame>(f: &F, view: u8, cause: u8) {
    crate::counters::capture(view, cause, CAPTURE_FRAME, |data| f.capture_into(data));
}
