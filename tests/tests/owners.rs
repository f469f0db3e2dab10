//! Owner attribution with a real server: Debian's nginx, in a cgroup of its
//! own named like a systemd unit, answers every request with `return 444`
//! and `reset_timedout_connection on` — it closes with SO_LINGER {1,0}. The
//! client's sockets are made in a second cgroup. rstwatch must name nginx's
//! unit and worker for the resets it sends, and the client's cgroup (never a
//! process: that reset runs in softirq) for the resets it receives.

use std::{io::Write as _, net::SocketAddr};

use rst_tests::{namespaces::cgroup::Cgroup, namespaces::netns::VB, namespaces::nginx::Nginx, rig::Rig, traffic};
use serde_json::Value;

const REQUESTS: u16 = 3;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// The owner rows of (view, cause) named `owner`.
fn owner_rows<'a>(s: &'a Value, view: &str, cause: &str, owner: &str) -> Vec<&'a Value> {
    s["owners"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|r| r["view"] == view && r["cause"] == cause && r["owner"] == owner)
        .collect()
}

#[test]
fn nginx_444_resets_name_its_unit_worker_and_the_clients_cgroup() {
    let rig = Rig::start_with(&["--iface", VB, "--owner-metrics"]);
    let unit = format!("rstwatch-nginx-{}.service", std::process::id());
    let server_cg = Cgroup::new(&unit);
    let client_cg = Cgroup::new("rstwatch-client.scope");
    let server = addr("10.77.0.2:7480");
    let nginx = Nginx::start(&rig.pair.b, server, &server_cg);
    let d = rig.measure(
        |p| {
            for i in 0..REQUESTS {
                let local = addr(&format!("10.77.0.1:{}", 7481 + i));
                let mut c = client_cg.run(|| traffic::connect(&p.a, local, server).expect("connect to nginx"));
                c.write_all(b"GET / HTTP/1.1\r\nHost: rstwatch\r\n\r\n").expect("request");
                traffic::expect_reset(c);
            }
        },
        |d| {
            d.port("sent", "linger_abort", 7480) >= u64::from(REQUESTS)
                && (0..REQUESTS).all(|i| d.port("received", "peer_reset", 7481 + i) == 1)
                && !owner_rows(&d.after.json, "sent", "linger_abort", &unit).is_empty()
        },
    );
    let n = u64::from(REQUESTS);
    assert_eq!(d.port("sent", "linger_abort", 7480), n, "{}", d.after.json);
    assert_eq!(d.kernel_b("TcpExt:TCPAbortOnData"), n, "the kernel's own count of these aborts");

    // Exact counts by owner, with the cgroup's id and path.
    let rows = owner_rows(&d.after.json, "sent", "linger_abort", &unit);
    assert_eq!(rows.len(), 1, "{}", d.after.json["owners"]);
    assert_eq!(rows[0]["count"], n);
    assert_eq!(rows[0]["cgroup"], server_cg.id());
    assert_eq!(rows[0]["cgroup_path"], server_cg.rel.as_str());
    let clients = owner_rows(&d.after.json, "received", "peer_reset", "rstwatch-client.scope");
    assert_eq!(clients.len(), 1, "{}", d.after.json["owners"]);
    assert_eq!(clients[0]["count"], n);

    // Samples: close() runs in nginx's worker, so it is named; the client's
    // reset arrives in softirq, so only its socket's owner is.
    let sent = d.after.recent("sent", "linger_abort", 7480);
    assert!(!sent.is_empty(), "{}", d.after.json);
    let workers = nginx.workers();
    for s in &sent {
        assert_eq!(s["owner"], unit.as_str());
        assert_eq!(s["comm"], "nginx");
        assert!(s["pid"].as_u64().is_some_and(|p| workers.contains(&(p as u32))), "{s} not one of {workers:?}");
    }
    let received = d.after.recent("received", "peer_reset", 7481);
    assert_eq!(received.len(), 1, "{}", d.after.json);
    assert_eq!(received[0]["owner"], "rstwatch-client.scope");
    assert_eq!(received[0]["cgroup"], client_cg.id());
    assert!(received[0].get("pid").is_none() && received[0].get("comm").is_none(), "{}", received[0]);

    // The optional, bounded metric label.
    let metrics = rig.daemon.get("/metrics");
    let line = format!("rstwatch_owner_resets_total{{view=\"sent\",cause=\"linger_abort\",owner=\"{unit}\"}} {n}\n");
    assert!(metrics.contains(&line), "{metrics}");
}

#[test]
fn keepalive_timeout_in_a_timer_names_the_sockets_owner_not_a_process() {
    let rig = Rig::start();
    let cg = Cgroup::new("rstwatch-keepalive.service");
    let (client, server) = (addr("10.77.0.1:7121"), addr("10.77.0.2:7120"));
    // The listener is made in the cgroup; the accepted socket inherits its owner.
    let listener = cg.run(|| traffic::listen(&rig.pair.b, server));
    let c = traffic::connect(&rig.pair.a, client, server).expect("connect");
    let (s, _) = listener.accept().expect("accept");
    let sock = socket2::SockRef::from(&s);
    let ka = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(1))
        .with_interval(std::time::Duration::from_secs(1))
        .with_retries(1);
    sock.set_tcp_keepalive(&ka).expect("keepalive");
    let d = rig.measure(
        // The peer goes silent (its link down): the probes go unanswered.
        |p| drop(p.a.exec(&["ip", "link", "set", "va", "down"])),
        |d| {
            d.port("sent", "keepalive_timeout", 7120) > 0
                && !d.after.recent("sent", "keepalive_timeout", 7120).is_empty()
        },
    );
    assert_eq!(d.port("sent", "keepalive_timeout", 7120), 1, "{}", d.after.json);
    let r = &d.after.recent("sent", "keepalive_timeout", 7120)[0];
    assert_eq!(r["owner"], "rstwatch-keepalive.service", "{r}");
    assert_eq!(r["cgroup"], cg.id());
    assert!(r.get("pid").is_none() && r.get("comm").is_none(), "a timer reset names no process: {r}");
    assert_eq!(owner_rows(&d.after.json, "sent", "keepalive_timeout", "rstwatch-keepalive.service")[0]["count"], 1);
    drop((c, s));
}

#[test]
fn a_listener_answering_a_stray_ack_names_the_segment_and_the_listeners_owner() {
    let rig = Rig::start();
    let cg = Cgroup::new("rstwatch-listener.service");
    let _listener = cg.run(|| traffic::listen(&rig.pair.b, addr("10.77.0.2:7130")));
    // An ACK for no connection to a listening port: the stack answers with a
    // RST on the listener's behalf (the tracepoint gets the listener as sk).
    let d = rig.measure(
        |p| assert_eq!(traffic::inject(p, 7131, 7130, 0x10, 5, 1), 1),
        |d| d.after.port_causes("sent", 7130).iter().map(|c| c.1).sum::<u64>() > 0 && d.total("wire_out") > 0,
    );
    let causes = d.after.port_causes("sent", 7130);
    assert_eq!(causes.iter().map(|c| c.1).sum::<u64>(), 1, "{}", d.after.json);
    let cause = causes[0].0.as_str();
    let r = &d.after.recent("sent", cause, 7130)[0];
    assert_eq!(r["remote"], "10.77.0.1:7131", "the segment's peer, not the listener's empty one: {r}");
    assert_eq!(r["owner"], "rstwatch-listener.service");
    assert_eq!(d.after.peer("sent", cause, "10.77.0.1") - d.before.peer("sent", cause, "10.77.0.1"), 1);
    // tc matched the stack's announcement: not "not_from_stack", nothing missed.
    assert_eq!(d.port("wire_out", "not_from_stack", 7130), 0, "{}", d.after.json);
    assert_eq!(d.missed("sent"), 0);
}

#[test]
fn owners_past_the_key_budget_are_counted_as_other() {
    let rig = Rig::start_with(&["--iface", VB, "--owner-keys", "1"]);
    let (first, second) = (Cgroup::new("rstwatch-first.service"), Cgroup::new("rstwatch-second.service"));
    let server = addr("10.77.0.2:7140");
    // Each cgroup's client is refused once: two owners of received/refused, room for one.
    let d = rig.measure(
        |p| {
            first.run(|| traffic::syn_to_closed_port(&p.a, addr("10.77.0.1:7141"), server));
            second.run(|| traffic::syn_to_closed_port(&p.a, addr("10.77.0.1:7142"), server));
        },
        |d| d.port("received", "refused", 7140) == 2,
    );
    let rows: Vec<&Value> = d.after.json["owners"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|r| r["view"] == "received" && r["cause"] == "refused")
        .collect();
    let named: Vec<&str> = rows.iter().filter_map(|r| r["owner"].as_str()).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(named.contains(&"other"), "the second owner overflowed: {named:?}");
    assert!(named.contains(&"rstwatch-first.service"), "{named:?}");
    assert_eq!(rows.iter().filter_map(|r| r["count"].as_u64()).sum::<u64>(), 2, "nothing lost: {rows:?}");
}
