//! RST payloads on the wire: real frames sent through the veth pair carry
//! text, the IETF draft's diagnostic payload (draft-boucadair-tcpm-rst-
//! diagnostic-payload: CBOR 12345, {1: code, 2: pen, 3: text}) and more bytes
//! than a sample keeps. XDP (wire_in) and tc (wire_out) copy the first bytes
//! into the sample; /snapshot shows them decoded.

use std::time::Duration;

use rst_tests::{
    namespaces::netns::{Netns, VA},
    rig::Rig,
    rig::snapshot::Snapshot,
    traffic::flood,
    traffic::frames::{self, ACK, Ip, RST, Tcp},
    wait,
};
use serde_json::Value;

const A: [u8; 4] = [10, 77, 0, 1];
const B: [u8; 4] = [10, 77, 0, 2];

/// Sends one frame onto the wire from `dev` in `ns` (a packet socket; it bypasses tc).
fn send(ns: &Netns, dev: &str, frame: Vec<u8>) {
    let (ifindex, _) = ns.link_info(dev);
    assert_eq!(ns.run(|| flood::flood_count(&flood::socket(ifindex), &[frame], 1)), 1);
}

/// Sends one IPv4 packet (header included) through `ns`'s IP stack: out
/// through tc egress, as a raw socket's RST would leave — not the TCP stack's.
fn send_ip(ns: &Netns, packet: &[u8], to: [u8; 4]) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    ns.run(|| {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW))).expect("raw socket");
        let dst = SockAddr::from(std::net::SocketAddr::from((to, 0)));
        assert_eq!(s.send_to(packet, &dst).expect("send"), packet.len());
    });
}

fn rst(sport: u16, dport: u16, payload: &[u8]) -> Tcp {
    Tcp { payload: payload.to_vec(), ..Tcp::new(sport, dport, 0x4242, RST | ACK) }
}

/// The draft's diagnostic payload: 12345, {1: 2, 2: 32473, 3: "idle timeout"}.
fn diagnostic() -> Vec<u8> {
    let mut b = vec![0x19, 0x30, 0x39, 0xa3, 0x01, 0x02, 0x02, 0x19, 0x7e, 0xd9, 0x03, 0x6c];
    b.extend_from_slice(b"idle timeout");
    b
}

fn payload_of(s: &Snapshot, view: &str, cause: &str, port: u16) -> Option<Value> {
    s.recent(view, cause, port).first().map(|r| r["payload"].clone())
}

#[test]
fn rst_payloads_are_kept_and_decoded_in_both_directions() {
    let rig = Rig::start();
    let (a, b) = (&rig.pair.a, &rig.pair.b);
    let text = b"rstwatch test: closing idle connection";
    let long: Vec<u8> = (0..100u8).collect();
    send(a, VA, frames::frame(&[], Ip::V4(A, B), &rst(7601, 7602, text)));
    send(a, VA, frames::frame(&[], Ip::V4(A, B), &rst(7605, 7606, &long)));
    // A bare RST padded to Ethernet's 60-byte minimum: padding is not payload.
    let mut padded = frames::frame(&[], Ip::V4(A, B), &rst(7607, 7608, &[]));
    padded.resize(60, 0);
    send(a, VA, padded);
    send_ip(b, &frames::frame(&[], Ip::V4(B, A), &rst(7603, 7604, &diagnostic()))[14..], A);
    let s = wait::until("the three RSTs' samples", Duration::from_secs(10), Duration::from_millis(100), || {
        let s = rig.daemon.snapshot();
        let seen = payload_of(&s, "wire_in", "abort", 7602).is_some()
            && payload_of(&s, "wire_in", "abort", 7606).is_some()
            && payload_of(&s, "wire_in", "abort", 7608).is_some()
            && payload_of(&s, "wire_out", "not_from_stack", 7603).is_some();
        if seen { Ok(s) } else { Err(s.json["recent"].to_string()) }
    });

    let p = payload_of(&s, "wire_in", "abort", 7602).expect("text payload");
    assert_eq!(p["len"], text.len());
    assert_eq!(p["text"], std::str::from_utf8(text).expect("ascii"));
    assert!(p.get("diagnostic").is_none(), "{p}");

    let p = payload_of(&s, "wire_in", "abort", 7606).expect("long payload");
    assert_eq!(p["len"], 100, "the length on the wire");
    let kept = long[..64].iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    assert_eq!(p["hex"], kept.as_str(), "the first 64 bytes");

    assert!(payload_of(&s, "wire_in", "abort", 7608).is_some_and(|p| p.is_null()), "padding is not payload");

    // Through tc egress (bpf_skb_load_bytes), the draft's format decoded.
    let p = payload_of(&s, "wire_out", "not_from_stack", 7603).expect("diagnostic payload");
    assert_eq!(p["diagnostic"]["reason_code"], 2, "{p}");
    assert_eq!(p["diagnostic"]["pen"], 32473);
    assert_eq!(p["diagnostic"]["description"], "idle timeout");
}
