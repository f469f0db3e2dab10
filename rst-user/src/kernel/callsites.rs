//! The call-site table of the `sent` program on kernels without `enum
//! sk_rst_reason` (< 6.10): where each reset sender and each of its callers
//! lies in this kernel's text, from /proc/kallsyms (`rst_common::site`), and
//! the one log line for a call site the table does not know.

use std::collections::BTreeMap;

use rst_common::site::{self, BUCKET_BYTES, BUCKET_SHIFT};

const KALLSYMS: &str = "/proc/kallsyms";

/// Test and diagnosis knobs: `force` uses call sites even where the kernel
/// gives reasons (so both can be compared on one kernel).
pub const ENV_FORCE: &str = "RSTWATCH_CALL_SITES";
/// Comma-separated function names to leave out of the table, as if this
/// kernel's build had no such function (a call site the table does not know).
pub const ENV_FORGET: &str = "RSTWATCH_FORGET_CALL_SITES";

/// Whether the environment asks for call sites on a kernel with reasons.
#[must_use]
pub fn forced() -> bool {
    std::env::var(ENV_FORCE).is_ok_and(|v| v == "force")
}

fn forgotten() -> Vec<String> {
    std::env::var(ENV_FORGET).map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default()
}

/// One text symbol of the core kernel: address and name (`tcp_close.cold` kept whole).
fn text_symbols(kallsyms: &str) -> impl Iterator<Item = (u64, &str)> {
    kallsyms.lines().filter_map(|l| {
        let mut it = l.split_whitespace();
        let addr = u64::from_str_radix(it.next()?, 16).ok()?;
        let kind = it.next()?;
        let name = it.next()?;
        (matches!(kind, "t" | "T") && it.next().is_none()).then_some((addr, name))
    })
}

/// A symbol's function: the name before a compiler suffix (`.cold`, `.isra.0`).
fn base(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The table: `[start, end)` of every function of `site::FUNCTIONS` not
/// `forget`-ten, end being the next text symbol's address; sorted by start.
/// None when the addresses are hidden (all zero: kptr_restrict, no CAP_SYSLOG).
#[must_use]
pub fn table(kallsyms: &str, forget: &[String]) -> Option<Vec<(u64, u64, u8)>> {
    let mut sites: Vec<(u64, u64, u8)> = text_symbols(kallsyms)
        .filter(|(a, n)| *a != 0 && !forget.iter().any(|f| f == base(n)))
        .filter_map(|(a, n)| site::FUNCTIONS.iter().find(|(f, _)| *f == base(n)).map(|(_, k)| (a, u64::MAX, *k)))
        .collect();
    if sites.is_empty() {
        return None;
    }
    // Any symbol ends the one before it (the last text symbol, `_etext`, ends the text).
    let addresses = kallsyms.lines().filter_map(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok());
    for addr in addresses {
        for s in &mut sites {
            if addr > s.0 && addr < s.1 {
                s.1 = addr;
            }
        }
    }
    // A function no symbol follows has no known end: left out, never taken to run to the end of memory.
    sites.retain(|s| s.1 != u64::MAX);
    sites.sort_unstable();
    sites.dedup();
    (!sites.is_empty()).then_some(sites)
}

/// The `SITES` map's entries for `sites`: every 16-byte bucket any of them
/// touches, with the kind of each of its bytes (others' bytes unknown).
#[must_use]
pub fn buckets(sites: &[(u64, u64, u8)]) -> BTreeMap<u64, u64> {
    let mut map = BTreeMap::new();
    for &(start, end, kind) in sites {
        let mut addr = start;
        while addr < end {
            let nibbles: &mut u64 = map.entry(addr >> BUCKET_SHIFT).or_default();
            let byte = addr & (BUCKET_BYTES - 1);
            *nibbles = (*nibbles & !(0xf << (byte * 4))) | (u64::from(kind) << (byte * 4));
            addr += 1;
        }
    }
    map
}

/// Reads this kernel's table (with the functions the environment forgets left out).
#[must_use]
pub fn read() -> Option<Vec<(u64, u64, u8)>> {
    let text = std::fs::read_to_string(KALLSYMS).ok()?;
    table(&text, &forgotten())
}

/// `name+0xoffset` of a kernel address, as the kernel prints stack frames.
#[must_use]
pub fn describe(kallsyms: &str, addr: u64) -> String {
    text_symbols(kallsyms)
        .filter(|(a, _)| *a <= addr)
        .max_by_key(|(a, _)| *a)
        .map_or_else(|| format!("{addr:#x}"), |(a, n)| format!("{n}+{:#x}", addr - a))
}

/// The log line for a socket reset whose call site the table cannot name
/// (`addr` 1: no caller found on the kernel stack).
#[must_use]
pub fn unknown_line(addr: u64) -> String {
    let place = if addr == 1 {
        "with no known caller on the kernel stack".to_string()
    } else {
        let text = std::fs::read_to_string(KALLSYMS).unwrap_or_default();
        format!("called from {}", describe(&text, addr))
    };
    format!(
        "sent: a socket reset {place}, a call site (or a socket state there) this kernel's call-site table \
         does not name: counted as unspecified (no reason field before Linux 6.10; please report the kernel build)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81a00000 T tcp_close
ffffffff81a00100 t tcp_disconnect
ffffffff81a00300 T tcp_abort
ffffffff81a00400 t something_else
ffffffff81b00000 t tcp_close.cold
ffffffff81b00040 t tcp_v4_send_reset.isra.0
ffffffff81b00200 T tcp_v4_rcv
ffffffff81c00000 t tcp_probe_timer [some_module]
";

    #[test]
    fn each_function_spans_to_the_next_symbol_with_its_compiler_suffixes() {
        let t = table(KALLSYMS, &[]).unwrap();
        assert_eq!(
            t,
            vec![
                (0xffff_ffff_81a0_0000, 0xffff_ffff_81a0_0100, site::CLOSE),
                (0xffff_ffff_81a0_0100, 0xffff_ffff_81a0_0300, site::DISCONNECT),
                (0xffff_ffff_81a0_0300, 0xffff_ffff_81a0_0400, site::ABORT),
                (0xffff_ffff_81b0_0000, 0xffff_ffff_81b0_0040, site::CLOSE),
                (0xffff_ffff_81b0_0040, 0xffff_ffff_81b0_0200, site::EMITTER),
                (0xffff_ffff_81b0_0200, 0xffff_ffff_81c0_0000, site::RECEIVE),
            ],
            "module symbols are not the core kernel's"
        );
    }

    #[test]
    fn a_function_with_no_symbol_after_it_is_left_out() {
        let last = "ffffffff81000000 T tcp_close\nffffffff81000100 T tcp_abort\n";
        assert_eq!(table(last, &[]), Some(vec![(0xffff_ffff_8100_0000, 0xffff_ffff_8100_0100, site::CLOSE)]));
    }

    #[test]
    fn forgotten_functions_and_hidden_addresses_leave_no_entry() {
        let t = table(KALLSYMS, &["tcp_close".into()]).unwrap();
        assert!(t.iter().all(|s| s.2 != site::CLOSE));
        let hidden = KALLSYMS.lines().fold(String::new(), |acc, l| acc + "0000000000000000" + &l[16..] + "\n");
        assert_eq!(table(&hidden, &[]), None);
    }

    #[test]
    fn each_byte_of_a_bucket_has_its_functions_kind() {
        let b = buckets(&table(KALLSYMS, &[]).unwrap());
        let at = |ip: u64| site::kind_in(b.get(&(ip >> BUCKET_SHIFT)).copied().unwrap_or(0), ip) as u8;
        assert_eq!(at(0xffff_ffff_81a0_0000), site::CLOSE);
        assert_eq!(at(0xffff_ffff_81a0_00ff), site::CLOSE);
        assert_eq!(at(0xffff_ffff_81a0_0100), site::DISCONNECT);
        assert_eq!(at(0xffff_ffff_81a0_0400), site::UNKNOWN, "something_else is no call site");
        assert_eq!(at(0xffff_ffff_81b0_003f), site::CLOSE, "tcp_close.cold");
        assert_eq!(at(0xffff_ffff_81b0_0040), site::EMITTER, "the next function in the same bucket");
        // Two functions sharing one bucket keep their own bytes.
        let shared = buckets(&[(0x1000, 0x1005, site::CLOSE), (0x1005, 0x1010, site::ABORT)]);
        assert_eq!(shared.len(), 1);
        assert_eq!(site::kind_in(shared[&0x100], 0x1004) as u8, site::CLOSE);
        assert_eq!(site::kind_in(shared[&0x100], 0x1005) as u8, site::ABORT);
    }

    #[test]
    fn an_address_is_named_like_a_kernel_stack_frame() {
        assert_eq!(describe(KALLSYMS, 0xffff_ffff_81a0_0410), "something_else+0x10");
        assert_eq!(describe(KALLSYMS, 0x10), "0x10");
    }
}
