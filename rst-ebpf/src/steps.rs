//! Build-time switches that drop one step of the programs, for measuring
//! where each nanosecond goes (`cargo xtask bench --steps`; never in a
//! release). `RSTWATCH_SKIP_STEPS` (comma-separated) at build time names the
//! steps left out; counts are then no longer exact.
//!
//! - `announce`: the stack's announcement of a socketless reply (tracepoint, fentry);
//! - `take`: tc egress looking the announcement up;
//! - `counts`, `ports`, `peers`: the (view, cause) counter and the two key hashes;
//! - `samples`: the sample path (rate limit, ring);
//! - `endpoints`: the tracepoint reading the segment's addresses.

const SKIPPED: &str = match option_env!("RSTWATCH_SKIP_STEPS") {
    Some(s) => s,
    None => "",
};

/// Whether `step` is left out of this build.
pub(crate) const fn skip(step: &str) -> bool {
    let (hay, needle) = (SKIPPED.as_bytes(), step.as_bytes());
    let mut start = 0;
    while start + needle.len() <= hay.len() {
        let mut i = 0;
        while i < needle.len() && hay[start + i] == needle[i] {
            i += 1;
        }
        let ends = start + i == hay.len() || hay[start + i] == b',';
        if i == needle.len() && ends && (start == 0 || hay[start - 1] == b',') {
            return true;
        }
        start += 1;
    }
    false
}
