//! 1 000 000 generated and mutated frames through the real XDP and tc
//! programs, ingress and egress (BPF_PROG_TEST_RUN): the verdict is always
//! pass, and what they count matches the reference parser exactly.

use std::collections::BTreeMap;

use rst_common::{cause, maps, view};
use rst_tests::{
    kernel::programs::{Programs, TC_ACT_OK, XDP_PASS},
    kernel::reference,
};
use rst_user::kernel::loader;

const FRAMES: usize = 1_000_000;

#[test]
fn a_million_mutated_frames_always_pass_and_count_like_the_reference() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0f75);
    let mut progs = Programs::load();
    // tc ingress apart: it counts wire_in as XDP does.
    let mut ingress = Programs::load();
    // (view, cause, port) -> count, as the reference expects it
    let mut want: BTreeMap<(u8, u8, u16), u64> = BTreeMap::new();
    let mut want_tc_in: BTreeMap<(u8, u8, u16), u64> = BTreeMap::new();
    let (mut rsts_in, mut rsts_out, mut refused) = (0u64, 0u64, 0u64);
    for i in 0..FRAMES {
        let f = reference::random_frame(&mut rng);
        assert_eq!(progs.xdp(progs.wire_xdp, &f, 1).0, XDP_PASS, "frame {i}: {f:02x?}");
        let egress = progs.try_tc(loader::TC_PROGRAM, &f, 1);
        let tc_in = ingress.try_tc(loader::TC_INGRESS_PROGRAM, &f, 1);
        assert_eq!(egress.is_some(), tc_in.is_some(), "one test harness for both tc hooks");
        if let (Some((verdict, _)), Some((verdict_in, _))) = (egress, tc_in) {
            assert_eq!((verdict, verdict_in), (TC_ACT_OK, TC_ACT_OK), "frame {i}: {f:02x?}");
        } else {
            refused += 1;
        }
        if let Some((c, sport, dport)) = reference::parse(&f) {
            rsts_in += 1;
            // an arriving refusal is keyed by the port that refused (its source)
            let port = if c == cause::REFUSAL { sport } else { dport };
            *want.entry((view::WIRE_IN, c, port)).or_default() += 1;
            if egress.is_some() {
                *want_tc_in.entry((view::WIRE_IN, c, port)).or_default() += 1;
                rsts_out += 1;
                // hand-fed egress frames were never announced by the stack
                let out = if c == cause::MALFORMED { c } else { cause::NOT_FROM_STACK };
                *want.entry((view::WIRE_OUT, out, sport)).or_default() += 1;
            }
        }
    }
    assert!(refused < FRAMES as u64 / 8, "the kernel's tc test harness refused {refused} frames");
    let by_port = |counts: &rst_user::pipeline::aggregate::KernelCounts| {
        let mut got: BTreeMap<(u8, u8, u16), u64> = BTreeMap::new();
        for (k, n) in &counts.ports {
            let (v, c, p) = maps::split_port_key(*k);
            *got.entry((v, c, p)).or_default() += n;
        }
        assert!(counts.overflow.iter().all(|&o| o == 0), "every port key fits the budget");
        got
    };
    assert_eq!(by_port(&ingress.counts()), want_tc_in, "tc ingress counts as the reference");
    let counts = progs.counts();
    assert_eq!(by_port(&counts), want);
    assert!(rsts_in > FRAMES as u64 / 4, "the generator makes plenty of RSTs ({rsts_in})");
    assert!(want.keys().any(|(_, c, _)| *c == cause::MALFORMED) && want.keys().any(|(_, c, _)| *c == cause::REFUSAL));
    let total = |v: u8| (0..cause::SLOTS).map(|c| counts.causes[cause::slot(v, c) as usize]).sum::<u64>();
    assert_eq!(total(view::WIRE_IN), rsts_in);
    assert_eq!(total(view::WIRE_OUT), rsts_out);
}
