//! A SYN flood of our own for benchmarks: hand-built frames sent through an
//! AF_PACKET socket with sendmmsg, from inside a test namespace to a closed
//! port on its veth peer, bounded by time.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

const BATCH: usize = 64;

fn csum(data: &[u8], seed: u32) -> u16 {
    let mut sum = seed;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One Ethernet + IPv4 + TCP SYN frame with valid checksums.
#[must_use]
pub fn syn_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    tcp_frame(src_mac, dst_mac, src, dst, sport, dport, 0x02, 5)
}

/// One Ethernet + IPv4 + TCP frame with `flags` and data offset `doff`
/// (in words; below 5 makes a malformed header), with valid checksums.
#[must_use]
#[expect(clippy::too_many_arguments, reason = "a frame has this many fields")]
pub fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    doff: u8,
) -> Vec<u8> {
    let tcp = crate::traffic::frames::Tcp { sport, dport, seq: 0x1234_5678, flags, doff, payload: Vec::new() };
    frame(src_mac, dst_mac, src, dst, &tcp)
}

/// One Ethernet + IPv4 frame carrying `tcp` (options go in its payload), with valid checksums.
#[must_use]
pub fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    t: &crate::traffic::frames::Tcp,
) -> Vec<u8> {
    let mut tcp = t.bytes();
    let len = u16::try_from(tcp.len()).expect("header length");
    let mut pseudo = Vec::with_capacity(12 + tcp.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&tcp);
    let c = csum(&pseudo, 0);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(20 + len).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(34 + tcp.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// Floods SYNs from `a` (over `va`) to a closed `port` on `b` for `d`;
/// returns how many were sent. `b` answers each with a RST.
#[must_use]
pub fn closed_port_storm(pair: &crate::namespaces::netns::Pair, port: u16, d: Duration) -> u64 {
    let (ifindex, src_mac) = pair.a.link_info(crate::namespaces::netns::VA);
    let (_, dst_mac) = pair.b.link_info(crate::namespaces::netns::VB);
    let frames: Vec<Vec<u8>> = (0..256u16)
        .map(|i| syn_frame(src_mac, dst_mac, Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2), 20000 + i, port))
        .collect();
    pair.a.run(|| flood(&socket(ifindex), &frames, d))
}

/// A raw socket bound to `ifindex` (call from inside the namespace).
#[must_use]
pub fn socket(ifindex: i32) -> OwnedFd {
    // SAFETY: plain socket(2)/bind(2)/setsockopt(2) with valid arguments.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from((libc::ETH_P_ALL as u16).to_be()));
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        let rc = libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), size_of::<libc::sockaddr_ll>() as u32);
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, (&raw const one).cast(), 4);
        fd
    }
}

/// Sends `frames` round-robin, `count` frames in all; returns how many were sent.
#[must_use]
pub fn flood_count(fd: &OwnedFd, frames: &[Vec<u8>], count: usize) -> u64 {
    let mut sent = 0;
    for i in 0..count {
        let f = &frames[i % frames.len()];
        // SAFETY: sending a valid buffer on a bound packet socket.
        if unsafe { libc::send(fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) } == f.len().cast_signed() {
            sent += 1;
        }
    }
    sent
}

/// Sends `frames` round-robin for `duration`; returns how many were sent.
#[must_use]
pub fn flood(fd: &OwnedFd, frames: &[Vec<u8>], duration: Duration) -> u64 {
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|i| {
            let f = &frames[i % frames.len()];
            libc::iovec { iov_base: f.as_ptr() as *mut _, iov_len: f.len() }
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid; each points at one iovec that outlives the calls.
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &raw mut *v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        // SAFETY: msgs is a valid array of BATCH headers.
        let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent += u64::from(n.unsigned_abs());
        } else {
            std::thread::yield_now();
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let f = syn_frame([2; 6], [4; 6], Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2), 1000, 9);
        assert_eq!(f.len(), 54);
        assert_eq!(csum(&f[14..34], 0), 0, "IPv4 header checksum");
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        pseudo.extend_from_slice(&f[34..54]);
        assert_eq!(csum(&pseudo, 0), 0, "TCP checksum");
    }
}
