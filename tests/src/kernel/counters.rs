//! The kernel's own TCP counters (/proc/net/snmp, /proc/net/netstat), read
//! inside a namespace: tests assert rstwatch's counts equal these.

use std::collections::HashMap;

use crate::namespaces::netns::Netns;

/// "Tcp:OutRsts", "TcpExt:TCPAbortOnClose", ... -> value.
pub type Counters = HashMap<String, u64>;

fn parse(text: &str, into: &mut Counters) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((prefix, names)), Some((_, values))) = (names.split_once(':'), values.split_once(':')) else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse() {
                into.insert(format!("{prefix}:{n}"), v);
            }
        }
    }
}

/// The current thread's namespace counters (thread-self: setns is per thread).
#[must_use]
pub fn read_here() -> Counters {
    let mut c = Counters::new();
    for f in ["/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"] {
        parse(&std::fs::read_to_string(f).expect("reading kernel counters"), &mut c);
    }
    c
}

#[must_use]
pub fn read(ns: &Netns) -> Counters {
    ns.run(read_here)
}

/// `after - before` for one counter.
#[must_use]
pub fn delta(before: &Counters, after: &Counters, name: &str) -> u64 {
    after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
}
