//! `kernel.bpf_stats_enabled` on for a while: the kernel then counts each
//! program's runs and run time (`run_cnt`, `run_time_ns`). Restored on drop.

const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";

pub struct BpfStats(String);

impl BpfStats {
    #[must_use]
    pub fn enable() -> Self {
        let was = std::fs::read_to_string(PATH).expect("kernel.bpf_stats_enabled");
        std::fs::write(PATH, "1").expect("enabling kernel.bpf_stats_enabled");
        Self(was.trim().to_string())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(PATH, &self.0);
    }
}
