//! The real kernel object, loaded with this kernel's configuration but not
//! attached, for BPF_PROG_TEST_RUN and for reading its counters.

use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions},
};
use rst_user::{kernel, kernel::loader, kernel::source::Source, pipeline::aggregate::KernelCounts};

pub struct Programs {
    ebpf: Ebpf,
    /// The XDP program the daemon attaches on this kernel (without `bpf_xdp_load_bytes`, before 5.18, its no-payload variant).
    pub wire_xdp: &'static str,
}

pub const XDP_PASS: u32 = 2;
pub const TC_ACT_OK: u32 = 0;

impl Programs {
    #[must_use]
    pub fn load() -> Self {
        Self::load_with_origin(false)
    }

    /// Like [`Programs::load`], judging received RSTs (contract §2a) when `origin`.
    #[must_use]
    pub fn load_with_origin(origin: bool) -> Self {
        let mut probe = kernel::probe(std::path::Path::new(kernel::VMLINUX)).expect("probing the kernel");
        probe.config.origin = u32::from(origin);
        let sizes =
            loader::Sizes { ring_bytes: 1 << 16, site_buckets: 1, port_keys: 1024, peer_keys: 1024, owner_keys: 1024 };
        let mut ebpf = loader::load(&probe.config, &sizes, &[]).expect("loading the programs");
        loader::set_sample_rate(&mut ebpf, 1000).expect("settings");
        let wire_xdp = if probe.has_xdp_load_bytes { loader::XDP_PROGRAM } else { loader::XDP_PROGRAM_NO_PAYLOAD };
        Self { ebpf, wire_xdp }
    }

    /// Runs XDP program `name` on `frame` `repeat` times; returns (verdict, ns per run).
    pub fn xdp(&mut self, name: &str, frame: &[u8], repeat: u32) -> (u32, u64) {
        let p = loader::xdp(&mut self.ebpf, name).expect("xdp program");
        let r = p.test_run(TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::new() }).expect("test run");
        (r.return_value, r.duration.as_nanos() as u64)
    }

    /// Runs tc program `name` on `frame`; returns (verdict, ns per run).
    pub fn tc(&mut self, name: &str, frame: &[u8], repeat: u32) -> (u32, u64) {
        self.try_tc(name, frame, repeat).unwrap_or_else(|| panic!("the kernel refused to test-run {frame:02x?}"))
    }

    /// Like [`Programs::tc`], None when the kernel's test harness refuses the
    /// frame (it rejects skbs whose IP header is cut short; a real one would
    /// still reach the program).
    pub fn try_tc(&mut self, name: &str, frame: &[u8], repeat: u32) -> Option<(u32, u64)> {
        let p = loader::tc(&mut self.ebpf, name).expect("tc program");
        let r = p.test_run(TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::new() }).ok()?;
        Some((r.return_value, r.duration.as_nanos() as u64))
    }

    /// Attaches the do-nothing programs to the same hooks rstwatch uses
    /// (both tcp tracepoints; tc ingress, or native XDP when `xdp`, and tc
    /// egress on `iface`, in this thread's namespace).
    pub fn attach_empty(&mut self, iface: &str, xdp: bool) {
        let btf = loader::kernel_btf(std::path::Path::new(kernel::VMLINUX)).expect("BTF");
        for (prog, tp) in [(loader::EMPTY_TP_SEND, "tcp_send_reset"), (loader::EMPTY_TP_RECEIVE, "tcp_receive_reset")] {
            loader::attach_tracepoint(&mut self.ebpf, &btf, prog, tp).expect("empty tracepoint");
        }
        if xdp {
            loader::xdp(&mut self.ebpf, loader::EMPTY_XDP)
                .expect("empty xdp")
                .attach(iface, aya::programs::XdpMode::Driver)
                .expect("attach empty xdp");
        } else {
            loader::tc(&mut self.ebpf, loader::EMPTY_TC_INGRESS)
                .expect("empty tc ingress")
                .attach(iface, aya::programs::TcAttachType::Ingress)
                .expect("attach empty tc ingress");
        }
        loader::tc(&mut self.ebpf, loader::EMPTY_TC)
            .expect("empty tc")
            .attach(iface, aya::programs::TcAttachType::Egress)
            .expect("attach empty tc");
    }

    /// Each loaded program's runs and run time, as the kernel counts them.
    #[must_use]
    pub fn costs(&self) -> Vec<rst_user::pipeline::model::ProgramCost> {
        loader::program_costs(&loader::loaded_programs(&self.ebpf))
    }

    /// The counters, through the daemon's own reader. Takes the maps: call once, last.
    #[must_use]
    pub fn counts(mut self) -> KernelCounts {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let _guard = rt.enter();
        Source::new(&mut self.ebpf).expect("maps").counts()
    }
}
