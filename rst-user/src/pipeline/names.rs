//! Names for the kernel's integer codes (contract §1–2): views, the one
//! cause catalogue, origins, kinds of missed events. Names are stable:
//! dashboards use them.

use rst_common::{cause, origin, view};

pub const VIEWS: [u8; 4] = [view::SENT, view::RECEIVED, view::WIRE_IN, view::WIRE_OUT];

/// Kinds of `missed`: the program's fdinfo `recursion_misses`.
pub const MISSED_RECURSION: &str = "recursion";
/// Kinds of `missed`: `UNANNOUNCED`, stack replies tc saw with no `tcp_send_reset` event.
pub const MISSED_UNANNOUNCED: &str = "unannounced";

#[must_use]
pub fn view_name(v: u8) -> &'static str {
    match v {
        view::SENT => "sent",
        view::RECEIVED => "received",
        view::WIRE_IN => "wire_in",
        view::WIRE_OUT => "wire_out",
        _ => "unknown",
    }
}

/// One cause (contract §2): its kernel code, its name, the views that report
/// it, and a sentence for people watching live. Adding a cause is one row here.
pub struct Cause {
    pub code: u8,
    pub name: &'static str,
    pub views: &'static [u8],
    pub sentence: &'static str,
}

const SENT: &[u8] = &[view::SENT];
const RECEIVED: &[u8] = &[view::RECEIVED];
const STACK: &[u8] = &[view::SENT, view::RECEIVED];
const WIRE: &[u8] = &[view::WIRE_IN, view::WIRE_OUT];
const WIRE_OUT: &[u8] = &[view::WIRE_OUT];

const fn c(code: u8, name: &'static str, views: &'static [u8], sentence: &'static str) -> Cause {
    Cause { code, name, views, sentence }
}

/// Every cause, each once, in contract order within each view.
pub const CAUSES: [Cause; 27] = {
    use cause as k;
    [
        c(k::CLOSED_PORT, "closed_port", SENT, "a SYN came for a port nobody listens on"),
        c(
            k::STALE_SEGMENT,
            "stale_segment",
            SENT,
            "peer is talking to a connection this host forgot, e.g. after a crash or reboot",
        ),
        c(k::LINGER_ABORT, "linger_abort", SENT, "a process closed with SO_LINGER {1,0}"),
        c(k::FIN_WAIT2_ABORT, "fin_wait2_abort", SENT, "close() with TCP_LINGER2 < 0 skipped FIN_WAIT2"),
        c(
            k::CLOSE_WITH_UNREAD_DATA,
            "close_with_unread_data",
            SENT,
            "a process closed a socket with received data still unread",
        ),
        c(k::ABORT_ON_DATA, "abort_on_data", SENT, "data arrived on a socket its process had already closed"),
        c(k::ABORT_ON_MEMORY, "abort_on_memory", SENT, "too many orphaned sockets or memory pressure"),
        c(k::KEEPALIVE_TIMEOUT, "keepalive_timeout", SENT, "keepalive probes went unanswered: the peer is gone"),
        c(
            k::DISCONNECT_WITH_DATA,
            "disconnect_with_data",
            SENT,
            "disconnect (connect AF_UNSPEC) with data still pending",
        ),
        c(k::TIMEWAIT_SOCKET, "timewait_socket", SENT, "a segment hit a connection in TIME_WAIT"),
        c(k::INVALID_ACK, "invalid_ack", SENT, "the peer acknowledged data never sent (bad ACK number)"),
        c(k::PAWS, "paws", SENT, "timestamp check (PAWS) failed"),
        c(k::BAD_FLAGS, "bad_flags", SENT, "illegal flag combination or unexpected SYN"),
        c(
            k::BAD_STATE,
            "bad_state",
            SENT,
            "the socket's state demanded a reset (shutdown/disconnect of a live connection)",
        ),
        c(k::MPTCP, "mptcp", SENT, "an MPTCP subflow was reset"),
        c(k::UNSPECIFIED, "unspecified", SENT, "the kernel did not say why"),
        c(k::REFUSED, "refused", RECEIVED, "our connect() was refused: the peer port is closed (ECONNREFUSED)"),
        c(k::PEER_RESET, "peer_reset", RECEIVED, "the peer aborted or lost the connection (ECONNRESET)"),
        c(k::RESET_WHILE_CLOSING, "reset_while_closing", RECEIVED, "the peer reset the connection during teardown"),
        c(k::RESET_IN_HANDSHAKE, "reset_in_handshake", RECEIVED, "a half-open incoming connection was reset"),
        c(
            k::REJECTED_INVALID,
            "rejected_invalid",
            RECEIVED,
            "a RST the stack refused: out of window or not exact — blind/injected, or a middlebox",
        ),
        c(k::OTHER, "other", STACK, "a reason this build does not know"),
        c(k::REFUSAL, "refusal", WIRE, "RST+ACK with seq 0: a reply to a SYN, the port is closed"),
        c(
            k::STRAY_REPLY,
            "stray_reply",
            WIRE,
            "RST without ACK: reply to a segment of a connection the sender does not know",
        ),
        c(k::ABORT, "abort", WIRE, "an endpoint aborted a live connection"),
        c(
            k::NOT_FROM_STACK,
            "not_from_stack",
            WIRE_OUT,
            "made outside the TCP stack: firewall reject, raw socket or forwarded",
        ),
        c(k::MALFORMED, "malformed", WIRE, "an RST with an impossible header (counted, never dropped)"),
    ]
};

fn cause(code: u8) -> Option<&'static Cause> {
    CAUSES.iter().find(|c| c.code == code)
}

#[must_use]
pub fn cause_name(c: u8) -> &'static str {
    cause(c).map_or("other", |c| c.name)
}

/// The causes `v` can report, in contract order.
pub fn causes_of(v: u8) -> impl Iterator<Item = u8> {
    CAUSES.iter().filter(move |c| c.views.contains(&v)).map(|c| c.code)
}

/// Who sent a received RST (contract §2a), by `rst_common::origin` code.
#[must_use]
pub fn origin_name(o: u8) -> &'static str {
    match o {
        origin::PEER => "peer",
        origin::MIDDLEBOX => "middlebox",
        origin::FORGED => "forged",
        _ => "unknown",
    }
}

pub const ORIGINS: [u8; 4] = [origin::UNKNOWN, origin::PEER, origin::MIDDLEBOX, origin::FORGED];

/// One plain sentence for a cause, for people watching live (the seed's words).
#[must_use]
pub fn explain(_view: &str, cause: &str) -> &'static str {
    CAUSES.iter().find(|c| c.name == cause).map_or("a reason this build does not know", |c| c.sentence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_catalogue_names_every_kernel_cause_once_as_the_contract_does() {
        for code in cause::ALL {
            assert_eq!(CAUSES.iter().filter(|c| c.code == code).count(), 1, "cause code {code}");
        }
        assert_eq!(CAUSES.len(), cause::ALL.len());
        let contract = include_str!("../../../docs/contract.md");
        for c in &CAUSES {
            assert!(contract.contains(&format!("`{}`", c.name)), "{} is not in docs/contract.md", c.name);
            assert!(!c.views.is_empty() && !c.sentence.is_empty(), "{}", c.name);
        }
    }

    #[test]
    fn each_view_lists_its_causes_in_contract_order() {
        let names = |v| causes_of(v).map(cause_name).collect::<Vec<_>>();
        let sent = names(view::SENT);
        assert_eq!((sent.first(), sent.last(), sent.len()), (Some(&"closed_port"), Some(&"other"), 17));
        assert_eq!(
            names(view::RECEIVED),
            ["refused", "peer_reset", "reset_while_closing", "reset_in_handshake", "rejected_invalid", "other"]
        );
        assert_eq!(names(view::WIRE_IN), ["refusal", "stray_reply", "abort", "malformed"]);
        assert_eq!(names(view::WIRE_OUT), ["refusal", "stray_reply", "abort", "not_from_stack", "malformed"]);
        assert_eq!(explain("sent", "closed_port"), "a SYN came for a port nobody listens on");
        assert_eq!(explain("sent", "nonsense"), "a reason this build does not know");
    }
}
