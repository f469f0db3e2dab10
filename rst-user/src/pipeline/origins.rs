//! Received RSTs by who sent them (contract §2a): the kernel's verdict
//! counters as snapshot rows, a sample's evidence, and corrections applied
//! to the recent resets they concern.

use super::names;
use std::collections::VecDeque;

use rst_common::{cause, origin, view};

use crate::pipeline::{
    decode::{Event, Judged},
    model::{Evidence, OriginCorrection, OriginCount},
};

/// Per judged view and cause: the count of each origin as corrected, and
/// the corrections. `causes` and `origins` are the kernel's arrays summed
/// over CPUs (`maps::COUNTS`, `maps::ORIGINS`; `origins` read first). What
/// the origin counters do not cover (resets counted before they existed,
/// say, resumed from pins of an earlier version) is `unknown`, so each
/// view's rows add up to its total.
#[must_use]
pub fn rows(causes: &[u64], origins: &[u64]) -> (Vec<OriginCount>, Vec<OriginCorrection>) {
    let at = |i: u32| origins.get(i as usize).copied().unwrap_or(0);
    let mut counts = Vec::new();
    let mut corrections = Vec::new();
    for v in [view::RECEIVED, view::WIRE_IN] {
        for c in names::causes_of(v) {
            let total = causes.get(cause::slot(v, c) as usize).copied().unwrap_or(0);
            if total == 0 {
                continue;
            }
            let mut judged = [0u64; origin::COUNT as usize];
            for o in 1..origin::COUNT {
                let gained: u64 = (0..origin::COUNT).map(|f| at(origin::correction(v, c, f, o))).sum();
                let lost: u64 = (0..origin::COUNT).map(|t| at(origin::correction(v, c, o, t))).sum();
                judged[usize::from(o)] = (at(origin::first(v, c, o)) + gained).saturating_sub(lost);
            }
            judged[0] = total.saturating_sub(judged[1..].iter().sum());
            for o in names::ORIGINS {
                let n = judged[usize::from(o)];
                if n > 0 {
                    counts.push(OriginCount {
                        view: names::view_name(v).into(),
                        cause: names::cause_name(c).into(),
                        origin: names::origin_name(o).into(),
                        count: n,
                    });
                }
            }
            for from in names::ORIGINS {
                for to in names::ORIGINS {
                    let n = at(origin::correction(v, c, from, to));
                    if n > 0 {
                        corrections.push(OriginCorrection {
                            view: names::view_name(v).into(),
                            cause: names::cause_name(c).into(),
                            from: names::origin_name(from).into(),
                            to: names::origin_name(to).into(),
                            count: n,
                        });
                    }
                }
            }
        }
    }
    (counts, corrections)
}

/// The evidence of a judged sample, for people and for JSON.
#[must_use]
pub fn evidence(j: &Judged) -> Evidence {
    let c = j.correction;
    Evidence {
        ttl: (j.ttl != 0).then_some(j.ttl),
        peer_ttl: (j.base_ttl != 0).then_some(j.base_ttl),
        path_longer: j.evidence & origin::evidence::PATH_LONGER != 0,
        after_rst_ms: (j.evidence & origin::evidence::AFTER_RST != 0).then_some(j.after_rst_ms),
        corrected_from: c.map(|c| names::origin_name(c.from).into()),
        peer_spoke_after_ms: c.filter(|c| !c.new_path).map(|c| c.ms),
        seq_distance: c.filter(|c| !c.new_path).map(|c| c.seq_distance),
        new_path_after_ms: c.filter(|c| c.new_path).map(|c| c.ms),
    }
}

/// Applies a correction sample to the recent resets of its flow that still
/// carry the verdict it replaces (both judged views of one RST).
pub fn apply(recent: &mut VecDeque<Event>, correction: &Event) {
    let Some(c) = correction.judged.as_ref().and_then(|j| j.correction.map(|c| (j.origin, c))) else { return };
    let (to, c) = c;
    for e in recent.iter_mut().rev() {
        if e.local != correction.local || e.remote != correction.remote {
            continue;
        }
        if let Some(j) = e.judged.as_mut().filter(|j| j.origin == c.from && j.correction.is_none()) {
            j.origin = to;
            j.correction = Some(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use rst_common::event::Sample;

    use super::*;
    use crate::pipeline::decode::{Correction, decode, encode};

    fn arrays() -> (Vec<u64>, Vec<u64>) {
        (vec![0; rst_common::maps::COUNT_SLOTS as usize], vec![0; origin::SLOTS as usize])
    }

    #[test]
    fn rows_add_up_to_each_views_total_with_corrections_moved() {
        let (mut causes, mut o) = arrays();
        causes[cause::slot(view::RECEIVED, cause::PEER_RESET) as usize] = 10;
        causes[cause::slot(view::WIRE_IN, cause::ABORT) as usize] = 10;
        for v in [view::RECEIVED, view::WIRE_IN] {
            let c = if v == view::RECEIVED { cause::PEER_RESET } else { cause::ABORT };
            o[origin::first(v, c, origin::PEER) as usize] = 5;
            o[origin::first(v, c, origin::MIDDLEBOX) as usize] = 3;
            o[origin::correction(v, c, origin::MIDDLEBOX, origin::FORGED) as usize] = 1;
        }
        // received also had 2 resets the stack handled with no wire verdict: unknown
        let (rows, corrections) = rows(&causes, &o);
        let of = |v: &str, origin: &str| rows.iter().find(|r| r.view == v && r.origin == origin).map_or(0, |r| r.count);
        for v in ["received", "wire_in"] {
            assert_eq!((of(v, "peer"), of(v, "middlebox"), of(v, "forged"), of(v, "unknown")), (5, 2, 1, 2), "{v}");
        }
        assert_eq!(corrections.len(), 2);
        assert_eq!(
            (corrections[0].from.as_str(), corrections[0].to.as_str(), corrections[0].count),
            ("middlebox", "forged", 1)
        );
    }

    #[test]
    fn a_correction_changes_the_recent_rows_of_its_flow_only() {
        let rst = |remote_port: u16, v: u8| {
            let s = Sample {
                view: v,
                family: 4,
                local_port: 80,
                remote_port,
                origin: origin::MIDDLEBOX,
                ttl: 64,
                base_ttl: 63,
                ..Sample::default()
            };
            decode(&encode(&s)).unwrap()
        };
        let mut recent: VecDeque<Event> =
            [rst(1000, view::WIRE_IN), rst(1000, view::RECEIVED), rst(2000, view::RECEIVED)].into();
        let mut c = Sample {
            view: view::RECEIVED,
            family: 4,
            local_port: 80,
            remote_port: 1000,
            origin: origin::FORGED,
            evidence: origin::evidence::CORRECTION,
            corrected_from: origin::MIDDLEBOX,
            since_ms: 4,
            seq_distance: 1448,
            ..Sample::default()
        };
        apply(&mut recent, &decode(&encode(&c)).unwrap());
        let origins: Vec<u8> = recent.iter().map(|e| e.judged.as_ref().unwrap().origin).collect();
        assert_eq!(origins, [origin::FORGED, origin::FORGED, origin::MIDDLEBOX]);
        let ev = evidence(recent[1].judged.as_ref().unwrap());
        assert_eq!(
            (ev.corrected_from.as_deref(), ev.peer_spoke_after_ms, ev.seq_distance),
            (Some("middlebox"), Some(4), Some(1448))
        );
        c.corrected_from = origin::PEER;
        apply(&mut recent, &decode(&encode(&c)).unwrap());
        assert_eq!(recent[2].judged.as_ref().unwrap().correction, None::<Correction>);
    }
}
