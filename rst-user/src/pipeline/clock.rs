//! Kernel timestamps (CLOCK_MONOTONIC, `bpf_ktime_get_ns`) as times of day,
//! so that what a person reads can be matched with the journal or tcpdump.

use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Local, SecondsFormat, Utc};

/// CLOCK_MONOTONIC now.
#[must_use]
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Wall clock minus the monotonic clock: add it to a kernel timestamp to get
/// time since the Unix epoch (read once at start: a later clock step is not followed).
#[must_use]
pub fn boot_offset() -> Duration {
    let wall = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    wall.saturating_sub(monotonic_now())
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-12-02T01:52:51.123Z`.
#[must_use]
pub fn rfc3339(offset: Duration, ts_ns: u64) -> String {
    DateTime::<Utc>::from(UNIX_EPOCH + offset + Duration::from_nanos(ts_ns))
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, as [`rfc3339`] writes it.
#[must_use]
pub fn now_rfc3339() -> String {
    DateTime::<Utc>::from(std::time::SystemTime::now()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `YYYY-MM-DD HH:MM:SS.mmm +HH:MM` in local time, for the heading of a text snapshot.
#[must_use]
pub fn local_datetime(rfc3339: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S%.3f %:z").to_string())
}

/// `HH:MM:SS.mmm` in local time for an RFC 3339 time, or None when it does not parse.
#[must_use]
pub fn local_hms(rfc3339: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(t.with_timezone(&Local).format("%H:%M:%S%.3f").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_time_to_utc_time_of_day() {
        // 1_764_640_371 s after the epoch is 2025-12-02T01:52:51Z.
        let offset = Duration::from_secs(1_764_640_371) - Duration::from_secs(100);
        assert_eq!(rfc3339(offset, 100_123_456_789), "2025-12-02T01:52:51.123Z");
        assert_eq!(local_hms("2025-12-02T01:52:51.123Z").map(|s| s.len()), Some(12));
        assert!(local_hms("not a time").is_none());
        assert_eq!(local_datetime("2025-12-02T01:52:51.123Z").map(|s| s.len()), Some(30));
        assert!(local_hms(&now_rfc3339()).is_some());
    }
}
