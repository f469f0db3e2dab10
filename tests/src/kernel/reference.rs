//! A plain-Rust reference of the kernel programs' wire parser
//! (rst-ebpf/src/packet.rs), for checking the real programs against it on
//! generated and mutated frames.

use rst_common::cause;

const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

fn be16(f: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]))
}

fn bytes<const N: usize>(f: &[u8], off: usize) -> Option<[u8; N]> {
    f.get(off..off + N)?.try_into().ok()
}

/// What the programs make of a frame: None unless it is a TCP RST they can
/// find; else (cause from the header, source port, destination port).
#[must_use]
pub fn parse(f: &[u8]) -> Option<(u8, u16, u16)> {
    let mut proto = be16(f, 12)?;
    let mut off = 14;
    for _ in 0..2 {
        if proto != 0x8100 && proto != 0x88a8 {
            break;
        }
        proto = be16(f, off + 2)?;
        off += 4;
    }
    let l4 = match proto {
        0x0800 => {
            let ver_ihl = *f.get(off)?;
            let frag = be16(f, off + 6)?;
            let p = *f.get(off + 9)?;
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            if ihl < 20 || p != 6 || frag & 0x1fff != 0 {
                return None;
            }
            off + ihl
        }
        0x86dd => {
            let mut next = *f.get(off + 6)?;
            let mut l4 = off + 40;
            for _ in 0..4 {
                match next {
                    0 | 43 | 60 => {
                        let ext: [u8; 2] = bytes(f, l4)?;
                        next = ext[0];
                        l4 += (usize::from(ext[1]) + 1) * 8;
                    }
                    44 => {
                        let frag: [u8; 4] = bytes(f, l4)?;
                        if u16::from_be_bytes([frag[2], frag[3]]) & 0xfff8 != 0 {
                            return None;
                        }
                        next = frag[0];
                        l4 += 8;
                    }
                    _ => break,
                }
            }
            if next != 6 {
                return None;
            }
            l4
        }
        _ => return None,
    };
    let flags = *f.get(l4 + 13)?;
    if flags & TCP_RST == 0 {
        return None;
    }
    let Some(th) = bytes::<20>(f, l4) else { return Some((cause::MALFORMED, 0, 0)) };
    let (sport, dport) = (u16::from_be_bytes([th[0], th[1]]), u16::from_be_bytes([th[2], th[3]]));
    let doff = usize::from(th[12] >> 4) * 4;
    if doff < 20 || l4 + doff > f.len() {
        return Some((cause::MALFORMED, sport, dport));
    }
    let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]);
    let c = if flags & TCP_ACK == 0 {
        cause::STRAY_REPLY
    } else if seq == 0 {
        cause::REFUSAL
    } else {
        cause::ABORT
    };
    Some((c, sport, dport))
}

/// A random frame: VLAN/QinQ tags, IPv4 with options and fragments, IPv6
/// with extension headers, odd ethertypes, any TCP flags and data offsets,
/// payloads, and truncation anywhere past the Ethernet header.
#[must_use]
pub fn random_frame(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for _ in 0..rng.usize(0..4).saturating_sub(1) {
        f.extend_from_slice(&(if rng.bool() { 0x8100u16 } else { 0x88a8 }).to_be_bytes());
        f.extend_from_slice(&rng.u16(..).to_be_bytes());
    }
    let kind = rng.u8(0..20);
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&rng.u16(1000..1016).to_be_bytes());
    tcp[2..4].copy_from_slice(&rng.u16(1000..1016).to_be_bytes());
    let seq = if rng.u8(0..3) == 0 { 0 } else { rng.u32(..) };
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = (if rng.u8(0..5) < 3 { 5 } else { rng.u8(0..16) }) << 4;
    tcp[13] = rng.u8(..) & !0x04 | if rng.u8(0..5) < 3 { 0x04 } else { 0 };
    tcp.extend((0..rng.usize(0..32)).map(|_| rng.u8(..)));
    match kind {
        0 => {
            f.extend_from_slice(&0x0806u16.to_be_bytes());
            f.extend((0..40).map(|_| rng.u8(..)));
        }
        1..=13 => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let words = if rng.u8(0..10) < 7 { 5 } else { rng.u8(0..16) };
            let mut ip = vec![0x40 | words, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
            if rng.u8(0..10) == 0 {
                ip[6..8].copy_from_slice(&rng.u16(1..0x2000).to_be_bytes());
            }
            if rng.u8(0..20) == 0 {
                ip[9] = 17;
            }
            ip.extend((20..usize::from(words.max(5)) * 4).map(|_| rng.u8(..)));
            f.extend_from_slice(&ip);
            f.extend_from_slice(&tcp);
        }
        _ => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let chain: Vec<u8> = (0..rng.usize(0..6)).map(|_| [0u8, 43, 60, 44][rng.usize(0..4)]).collect();
            let first = chain.first().copied().unwrap_or(6);
            let mut ip = vec![0x60, 0, 0, 0, 0, 0, first, 64];
            ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            f.extend_from_slice(&ip);
            for (i, h) in chain.iter().enumerate() {
                let next = chain.get(i + 1).copied().unwrap_or(if rng.u8(0..20) == 0 { 17 } else { 6 });
                if *h == 44 {
                    let off: u16 = if rng.u8(0..10) == 0 { rng.u16(1..0x2000) << 3 } else { 0 };
                    f.extend_from_slice(&[next, 0]);
                    f.extend_from_slice(&off.to_be_bytes());
                    f.extend_from_slice(&rng.u32(..).to_be_bytes());
                } else {
                    let len = rng.u8(0..3);
                    f.extend_from_slice(&[next, len]);
                    f.extend((0..usize::from(len) * 8 + 6).map(|_| rng.u8(..)));
                }
            }
            f.extend_from_slice(&tcp);
        }
    }
    if rng.u8(0..10) < 3 {
        let cut = rng.usize(14..=f.len());
        f.truncate(cut);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::frames::{ACK, Ip, RST, SYN, Tcp, frame};

    #[test]
    fn agrees_with_hand_built_frames() {
        let v4 = Ip::V4([10, 0, 0, 1], [10, 0, 0, 2]);
        assert_eq!(parse(&frame(&[], v4, &Tcp::new(1, 2, 0, RST | ACK))), Some((cause::REFUSAL, 1, 2)));
        assert_eq!(parse(&frame(&[7, 8], v4, &Tcp::new(1, 2, 5, RST))), Some((cause::STRAY_REPLY, 1, 2)));
        assert_eq!(parse(&frame(&[], v4, &Tcp::new(1, 2, 5, SYN))), None);
        let bad = Tcp { doff: 2, ..Tcp::new(1, 2, 5, RST | ACK) };
        assert_eq!(parse(&frame(&[], v4, &bad)), Some((cause::MALFORMED, 1, 2)));
        let f = frame(&[], v4, &Tcp::new(1, 2, 5, RST | ACK));
        assert_eq!(parse(&f[..14 + 20 + 15]), Some((cause::MALFORMED, 0, 0)), "flags visible, header cut");
        assert_eq!(parse(&f[..14 + 20 + 10]), None, "flags not visible");
    }
}
