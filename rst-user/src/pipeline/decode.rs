//! Ring-buffer bytes -> [`Event`]: the only place the raw record is read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rst_common::{
    event::{NO_REASON, SAMPLE_SIZE, Sample},
    origin,
};

/// One decoded sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub view: u8,
    pub cause: u8,
    pub reason: Option<u32>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub ifindex: Option<u32>,
    pub state: u8,
    pub tcp_flags: u8,
    pub ts_ns: u64,
    /// cgroup id of the socket's owner, when the reset belongs to a full socket.
    pub cgroup: Option<u64>,
    /// An RST's payload: its length on the wire and the bytes kept.
    pub payload: Option<(u16, Vec<u8>)>,
    /// Inode of the network namespace (stack views).
    pub netns: Option<u32>,
    /// Received RSTs (`received`, `wire_in`): the verdict and its evidence.
    pub judged: Option<Judged>,
}

/// Who sent a received RST, and why we think so (`rst_common::origin`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Judged {
    pub origin: u8,
    /// 0: unknown.
    pub ttl: u8,
    pub base_ttl: u8,
    /// `origin::evidence` bits.
    pub evidence: u8,
    /// ms since the flow's previous RST (`AFTER_RST`).
    pub after_rst_ms: u32,
    /// Set when this sample corrects an earlier verdict (it reports no new reset).
    pub correction: Option<Correction>,
}

/// Later evidence that changed a verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Correction {
    pub from: u8,
    /// ms after the RST: until the peer spoke again, or (`new_path`) until a
    /// handshake from it arrived with the RST's TTL.
    pub ms: u32,
    pub new_path: bool,
    /// The peer's segment's sequence minus the RST's (not `new_path`).
    pub seq_distance: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sample record of {0} bytes, expected {SAMPLE_SIZE}")]
pub struct BadLength(pub usize);

fn addr(family: u8, raw: [u8; 16]) -> IpAddr {
    if family == 6 {
        IpAddr::V6(Ipv6Addr::from(raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    }
}

/// One ring-buffer record as the kernel wrote it, if `bytes` holds a whole one.
#[must_use]
pub fn record<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    // SAFETY: T is plain data (any bit pattern is valid); the length is checked.
    (bytes.len() >= size_of::<T>()).then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, BadLength> {
    let s: Sample = record(bytes).ok_or(BadLength(bytes.len()))?;
    let comm_len = s.comm.iter().position(|&b| b == 0).unwrap_or(s.comm.len());
    Ok(Event {
        view: s.view,
        cause: s.cause,
        reason: (s.reason != NO_REASON).then_some(s.reason),
        local: SocketAddr::new(addr(s.family, s.local_addr), s.local_port),
        remote: SocketAddr::new(addr(s.family, s.remote_addr), s.remote_port),
        pid: (s.pid != 0).then_some(s.pid),
        comm: (s.pid != 0).then(|| String::from_utf8_lossy(&s.comm[..comm_len]).into_owned()),
        ifindex: (s.ifindex != 0).then_some(s.ifindex),
        state: s.state,
        tcp_flags: s.tcp_flags,
        ts_ns: s.ts_ns,
        cgroup: (s.cgroup != 0).then_some(s.cgroup),
        netns: (s.netns != 0).then_some(s.netns),
        payload: (s.payload_len != 0)
            .then(|| (s.payload_len, s.payload[..usize::from(s.payload_caplen).min(s.payload.len())].to_vec())),
        judged: origin::judged(s.view).then(|| judged(&s)),
    })
}

fn judged(s: &Sample) -> Judged {
    use origin::evidence::{CORRECTION, NEW_PATH};
    let correction = (s.evidence & CORRECTION != 0).then_some(Correction {
        from: s.corrected_from,
        ms: s.since_ms,
        new_path: s.evidence & NEW_PATH != 0,
        seq_distance: s.seq_distance,
    });
    Judged {
        origin: s.origin,
        ttl: s.ttl,
        base_ttl: s.base_ttl,
        evidence: s.evidence,
        after_rst_ms: if correction.is_some() { 0 } else { s.since_ms },
        correction,
    }
}

#[cfg(test)]
pub(crate) fn encode(s: &Sample) -> Vec<u8> {
    // SAFETY: reading a repr(C) value without padding as bytes.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(s).cast::<u8>(), SAMPLE_SIZE) }.to_vec()
}

#[cfg(test)]
mod tests {
    use rst_common::{cause, view};

    use super::*;

    #[test]
    fn decodes_ipv4_linger_abort_with_process() {
        let mut comm = [0u8; 16];
        comm[..7].copy_from_slice(b"python3");
        let s = Sample {
            ts_ns: 7,
            local_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            remote_addr: [127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            local_port: 40000,
            remote_port: 8080,
            reason: 14,
            pid: 1234,
            view: view::SENT,
            cause: cause::LINGER_ABORT,
            family: 4,
            comm,
            ..Sample::default()
        };
        let e = decode(&encode(&s)).unwrap();
        assert_eq!(e.local.to_string(), "127.0.0.1:40000");
        assert_eq!(e.remote.to_string(), "127.0.0.2:8080");
        assert_eq!(e.reason, Some(14));
        assert_eq!(e.pid, Some(1234));
        assert_eq!(e.comm.as_deref(), Some("python3"));
        assert_eq!(e.ifindex, None);
        assert_eq!(e.cgroup, None);
    }

    #[test]
    fn decodes_a_verdict_and_a_correction() {
        use origin::evidence::{AFTER_RST, CORRECTION};
        let s = Sample {
            view: view::WIRE_IN,
            origin: origin::MIDDLEBOX,
            ttl: 64,
            base_ttl: 63,
            evidence: AFTER_RST,
            since_ms: 5,
            ..Sample::default()
        };
        let j = decode(&encode(&s)).unwrap().judged.unwrap();
        assert_eq!((j.origin, j.ttl, j.base_ttl, j.after_rst_ms, j.correction), (origin::MIDDLEBOX, 64, 63, 5, None));
        let c = Sample {
            evidence: CORRECTION,
            origin: origin::FORGED,
            corrected_from: origin::MIDDLEBOX,
            since_ms: 3,
            seq_distance: 100,
            ..s
        };
        let j = decode(&encode(&c)).unwrap().judged.unwrap();
        assert_eq!(
            j.correction,
            Some(Correction { from: origin::MIDDLEBOX, ms: 3, new_path: false, seq_distance: 100 })
        );
        assert_eq!(
            decode(&encode(&Sample { view: view::SENT, ..s })).unwrap().judged,
            None,
            "sent resets are not judged"
        );
    }

    #[test]
    fn decodes_owner_and_payload() {
        let mut s = Sample { cgroup: 4242, payload_len: 100, payload_caplen: 3, ..Sample::default() };
        s.payload[..4].copy_from_slice(b"abcd");
        let e = decode(&encode(&s)).unwrap();
        assert_eq!(e.cgroup, Some(4242));
        assert_eq!(e.payload, Some((100, b"abc".to_vec())), "only the bytes kept, the wire length as sent");
    }

    #[test]
    fn decodes_ipv6_without_reason_or_process() {
        let mut a = [0u8; 16];
        a[15] = 1;
        let s = Sample {
            local_addr: a,
            remote_addr: a,
            local_port: 1,
            remote_port: 2,
            reason: NO_REASON,
            ifindex: 3,
            view: view::WIRE_IN,
            cause: cause::REFUSAL,
            family: 6,
            ..Sample::default()
        };
        let e = decode(&encode(&s)).unwrap();
        assert_eq!(e.local.to_string(), "[::1]:1");
        assert_eq!(e.reason, None);
        assert_eq!(e.comm, None);
        assert_eq!(e.ifindex, Some(3));
    }

    #[test]
    fn short_record_is_an_error() {
        assert_eq!(decode(&[0u8; 10]), Err(BadLength(10)));
    }
}
