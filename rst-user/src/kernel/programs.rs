//! The one table of the stack's hooks: each program, what it hooks, which
//! probe result gates it and what degrades without it. Preloading (the
//! kernel verifies them in parallel) and attaching (one by one, in table
//! order) both read it. The wire programs (XDP, tc) are attached per
//! interface by [`super::wire::Wire`].

use std::collections::BTreeSet;

use rst_common::view;

use super::Probe;

/// Where a program hooks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A BTF tracepoint (tp_btf) `category:name`.
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    Fentry(&'static str),
    Fexit(&'static str),
}

impl Hook {
    /// The function or tracepoint name the program loads against.
    #[must_use]
    pub const fn target(self) -> &'static str {
        match self {
            Self::Tracepoint { name, .. } => name,
            Self::Fentry(f) | Self::Fexit(f) => f,
        }
    }
}

/// What happens when a program does not load or attach on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// The run stops with the error (the probe found the hook, so it must work).
    Fatal,
    /// The hook alone is disabled, with one coverage line: `feature` (for
    /// example `fentry:tcp_reset`) is missing, and `without` degrades.
    Degrades { feature: &'static str, without: &'static str },
}

/// One program of the stack side.
pub struct Program {
    pub name: &'static str,
    pub hook: Hook,
    /// The view whose `missed` counts this program's recursion misses.
    pub view: Option<u8>,
    /// Whether it is attached on this kernel, given the programs attached
    /// before it in the table (a fallback runs only where its primary did not).
    pub wanted: fn(&Probe, &Attached) -> bool,
    pub missing: Missing,
}

/// The programs attached so far, by name.
pub type Attached = BTreeSet<&'static str>;

const fn tcp(name: &'static str) -> Hook {
    Hook::Tracepoint { category: "tcp", name }
}

pub const SENT: &str = "tcp_send_reset";
pub const SENT_CALL_SITE: &str = "sent_call_site";
pub const SENT_V4: &str = "sent_no_full_socket_v4";
pub const SENT_V6: &str = "sent_no_full_socket_v6";
pub const RECEIVED_RST: &str = "received_rst";
pub const RECEIVED: &str = "tcp_receive_reset";
pub const REJECTED: &str = "kfree_skb";

const WITHOUT_SOCKETLESS: &str = "sent resets without a full socket (closed port, TIME_WAIT) are not counted";

/// In attach order: the call-site program runs before `tcp_send_reset` on
/// the same tracepoint (that one takes its cause); `tcp_receive_reset` is
/// the fallback where fentry on `tcp_reset` does not attach.
pub const TABLE: &[Program] = &[
    Program {
        name: SENT_CALL_SITE,
        hook: tcp("tcp_send_reset"),
        view: None,
        wanted: |p, _| p.has_send_reset && p.sites.is_some(),
        missing: Missing::Degrades {
            feature: "program:sent_call_site",
            without: "socket resets count as unspecified unless SO_LINGER {1,0}",
        },
    },
    Program {
        name: SENT,
        hook: tcp("tcp_send_reset"),
        view: Some(view::SENT),
        wanted: |p, _| p.has_send_reset,
        missing: Missing::Fatal,
    },
    // tcp_reset(sk, skb): unlike the tracepoint in it, fentry sees whether a RST arrived.
    Program {
        name: RECEIVED_RST,
        hook: Hook::Fentry("tcp_reset"),
        view: Some(view::RECEIVED),
        wanted: |p, _| p.tcp_reset_has_skb,
        missing: Missing::Degrades {
            feature: "fentry:tcp_reset",
            without: "received also counts the resets the kernel raises on its own socket with no RST arriving",
        },
    },
    Program {
        name: RECEIVED,
        hook: tcp("tcp_receive_reset"),
        view: Some(view::RECEIVED),
        wanted: |p, done| p.has_receive_reset && !done.contains(RECEIVED_RST),
        missing: Missing::Fatal,
    },
    // Kernels < 6.10: the tracepoint fires for full sockets only.
    Program {
        name: SENT_V4,
        hook: Hook::Fentry("tcp_v4_send_reset"),
        view: Some(view::SENT),
        wanted: |p, _| p.has_send_reset && !p.send_reset_has_socketless,
        missing: Missing::Degrades { feature: "fentry:tcp_v4_send_reset", without: WITHOUT_SOCKETLESS },
    },
    Program {
        name: SENT_V6,
        hook: Hook::Fentry("tcp_v6_send_reset"),
        view: Some(view::SENT),
        wanted: |p, _| p.has_send_reset && !p.send_reset_has_socketless,
        missing: Missing::Degrades { feature: "fentry:tcp_v6_send_reset", without: WITHOUT_SOCKETLESS },
    },
    Program {
        name: "received_in_handshake",
        hook: Hook::Fexit("tcp_check_req"),
        view: Some(view::RECEIVED),
        wanted: |_, _| true,
        missing: Missing::Degrades {
            feature: "fexit:tcp_check_req",
            without: "a RST that ends a handshake (request socket, EmbryonicRsts) is not counted as received",
        },
    },
    Program {
        name: REJECTED,
        hook: Hook::Tracepoint { category: "skb", name: "kfree_skb" },
        view: None,
        wanted: |p, _| p.has_rejected,
        missing: Missing::Degrades {
            feature: "program:kfree_skb",
            without: "received/rejected_invalid is not counted",
        },
    },
];

/// The programs a start on this kernel attaches if every one succeeds: what
/// to preload. A fallback is loaded later, only where its primary fails.
#[must_use]
pub fn plan(probe: &Probe) -> Vec<&'static Program> {
    let mut done = Attached::new();
    TABLE
        .iter()
        .filter(|p| {
            let wanted = (p.wanted)(probe, &done);
            if wanted {
                done.insert(p.name);
            }
            wanted
        })
        .collect()
}

/// `maps::ANNOUNCE_PAIR_*` bits: the families whose every reply to a
/// segment a `sent` program sees (the tracepoint from 6.10, else the fentry
/// program of that family), so tc egress pairs those replies.
#[must_use]
pub fn paired(probe: &Probe, done: &Attached) -> u32 {
    use rst_common::maps::{ANNOUNCE_PAIR_V4, ANNOUNCE_PAIR_V6};
    if !done.contains(SENT) {
        return 0;
    }
    if probe.send_reset_has_socketless {
        return ANNOUNCE_PAIR_V4 | ANNOUNCE_PAIR_V6;
    }
    [(SENT_V4, ANNOUNCE_PAIR_V4), (SENT_V6, ANNOUNCE_PAIR_V6)]
        .into_iter()
        .filter(|(name, _)| done.contains(name))
        .fold(0, |bits, (_, bit)| bits | bit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(probe: &Probe) -> Vec<&'static str> {
        plan(probe).iter().map(|p| p.name).collect()
    }

    #[test]
    fn a_new_kernel_plans_the_tracepoints_and_fentry_on_tcp_reset() {
        let p = Probe::example_6_18();
        assert_eq!(names(&p), [SENT, RECEIVED_RST, "received_in_handshake", REJECTED]);
        let all: Attached = names(&p).into_iter().collect();
        assert_eq!(paired(&p, &all), rst_common::maps::ANNOUNCE_PAIR_V4 | rst_common::maps::ANNOUNCE_PAIR_V6);
    }

    #[test]
    fn an_old_kernel_plans_call_sites_fentry_per_family_and_the_receive_tracepoint() {
        let p = Probe::example_5_10();
        assert_eq!(names(&p), [SENT_CALL_SITE, SENT, RECEIVED, SENT_V4, SENT_V6, "received_in_handshake"]);
        let only_v4: Attached = [SENT, SENT_V4].into_iter().collect();
        assert_eq!(paired(&p, &only_v4), rst_common::maps::ANNOUNCE_PAIR_V4);
        assert_eq!(paired(&p, &Attached::new()), 0);
    }

    #[test]
    fn the_receive_tracepoint_is_the_fallback_where_fentry_on_tcp_reset_fails() {
        let p = Probe::example_6_18();
        let without_fentry = Attached::from([SENT]);
        let received = TABLE.iter().find(|t| t.name == RECEIVED).expect("in the table");
        assert!((received.wanted)(&p, &without_fentry));
        assert!(!(received.wanted)(&p, &Attached::from([SENT, RECEIVED_RST])));
    }

    #[test]
    fn every_program_is_listed_once_and_degrades_with_a_named_feature() {
        let mut seen = BTreeSet::new();
        for p in TABLE {
            assert!(seen.insert(p.name), "{} twice", p.name);
            if let Missing::Degrades { feature, without } = p.missing {
                assert!(feature.contains(':') && !without.is_empty(), "{}", p.name);
            }
        }
    }
}
