//! The HTTP endpoint under abuse: hundreds of idle connections, slow ones
//! that never finish their headers, huge headers and a request flood. Scrapes
//! keep being answered, counting stays exact, the daemon's memory stays
//! bounded, and the server closes what never completes a request.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use rst_tests::{
    namespaces::netns::Pair,
    rig::{Rig, daemon::LISTEN},
    traffic,
};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn idle_slow_huge_and_flooding_clients_leave_scrapes_answered_and_counts_exact() {
    let rig = Rig::start();
    let addr: SocketAddr = LISTEN.parse().unwrap();
    let rss0 = rss_kib(rig.daemon.pid());
    let ns = rig.pair.b.path();
    // 300 idle connections, 100 that send half a request line and stop, 20 with 1 MiB of headers.
    let (idle, slow, huge) = rst_tests::namespaces::netns::run_in(&ns, || {
        let connect = || TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let idle: Vec<_> = (0..300).map(|_| connect()).collect();
        let slow: Vec<_> = (0..100)
            .map(|_| {
                let mut s = connect();
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
                s
            })
            .collect();
        let huge: Vec<_> = (0..20)
            .map(|_| {
                let mut s = connect();
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n");
                let filler = format!("X-Filler: {}\r\n", "a".repeat(8190));
                for _ in 0..128 {
                    if s.write_all(filler.as_bytes()).is_err() {
                        break; // the server gave up on it: good
                    }
                }
                s
            })
            .collect();
        (idle, slow, huge)
    });
    // Scrapes are answered meanwhile, and counting is exact: the rig checks sent == OutRsts.
    let flood_start = Instant::now();
    let mut answered = 0;
    for _ in 0..500 {
        if rig.daemon.get("/metrics").contains("rstwatch_resets_total") {
            answered += 1;
        }
    }
    let flood = flood_start.elapsed();
    assert_eq!(answered, 500, "every scrape of the flood answered");
    let d = rig.measure(
        |p: &Pair| {
            traffic::syn_to_closed_port(&p.a, "10.77.0.1:7900".parse().unwrap(), "10.77.0.2:7901".parse().unwrap());
        },
        |d| d.total("sent") >= 1,
    );
    assert_eq!(d.total("sent"), 1);
    let rss1 = rss_kib(rig.daemon.pid());
    // The server closes what never completed a request (10 s for the headers).
    std::thread::sleep(Duration::from_secs(12));
    // Closed by the server: reading reaches end of file (after any error answer) or a reset, not a timeout.
    let closed = |mut s: TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..64 {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
        false
    };
    let closed_idle = idle.into_iter().map(closed).filter(|c| *c).count();
    let closed_slow = slow.into_iter().map(closed).filter(|c| *c).count();
    let closed_huge = huge.into_iter().map(closed).filter(|c| *c).count();
    eprintln!(
        "daemon RSS {rss0} KiB before, {rss1} KiB with 420 hostile connections open; 500 scrapes in {flood:?}; closed by the server: idle {closed_idle}/300, slow {closed_slow}/100, huge headers {closed_huge}/20"
    );
    assert_eq!((closed_idle, closed_slow, closed_huge), (300, 100, 20));
    assert!(rss1 < rss0 + 32 * 1024, "memory bounded: {rss0} -> {rss1} KiB");
}
