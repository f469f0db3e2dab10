//! `/metrics` parses as Prometheus text and agrees with `/snapshot`.

use rst_tests::{
    namespaces::netns::{A4, B4},
    rig::Rig,
    rig::snapshot::Snapshot,
    traffic,
};

fn labels(s: &prometheus_parse::Sample, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| s.labels.get(k).unwrap_or_default().to_string()).collect()
}

fn value(s: &prometheus_parse::Sample) -> u64 {
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => {
            assert!(v >= 0.0 && v.fract() == 0.0, "{} = {v} is not a count", s.metric);
            #[expect(clippy::cast_sign_loss, reason = "checked non-negative integer above")]
            let n = v as u64;
            n
        }
        _ => panic!("unexpected metric type for {}", s.metric),
    }
}

#[test]
fn metrics_parse_and_agree_with_snapshot() {
    let rig = Rig::start();
    for port in [7201, 7202, 7202] {
        traffic::syn_to_closed_port(
            &rig.pair.a,
            "10.77.0.1:0".parse().unwrap(),
            format!("{B4}:{port}").parse().unwrap(),
        );
    }
    // b's clients, from ephemeral ports, reset by a server in a (SO_LINGER {1,0})
    for _ in 0..3 {
        let server = format!("{A4}:7203").parse().unwrap();
        let (client, accepted, _listener) =
            traffic::establish(&rig.pair.b, &rig.pair.a, format!("{B4}:0").parse().unwrap(), server);
        traffic::close_with_linger_zero(accepted);
        traffic::expect_reset(client);
    }
    rig.daemon.wait_for("three closed_port resets and three peer resets", |s| {
        s.port("sent", "closed_port", 7202) == 2
            && s.port("sent", "closed_port", 7201) == 1
            && s.cause("received", "peer_reset") == 3
    });
    // Read /metrics between two equal snapshots, so all three describe the same counts.
    let (snap, text) = (0..20)
        .find_map(|_| {
            let a = rig.daemon.get("/snapshot");
            let m = rig.daemon.get("/metrics");
            let b = rig.daemon.get("/snapshot");
            let strip = |s: &str| {
                Snapshot::parse(s).json.as_object().map(|o| {
                    o.iter()
                        .filter(|(k, _)| !["uptime_seconds", "time", "programs"].contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Vec<_>>()
                })
            };
            (strip(&a) == strip(&b)).then(|| (Snapshot::parse(&a), m))
        })
        .expect("counts kept changing");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics is valid Prometheus text");
    let mut resets = 0;
    for s in scrape.samples.iter().filter(|s| s.metric == "rstwatch_resets_total") {
        let [view, cause] = <[String; 2]>::try_from(labels(s, &["view", "cause"])).unwrap();
        assert_eq!(value(s), snap.cause(&view, &cause), "{view}/{cause}");
        resets += value(s);
    }
    let totals: u64 = ["sent", "received", "wire_in", "wire_out"].iter().map(|v| snap.total(v)).sum();
    assert_eq!(resets, totals);
    let port = |p: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "rstwatch_port_resets_total"
                    && labels(s, &["view", "cause", "port"]) == ["sent", "closed_port", p]
            })
            .map(value)
    };
    assert_eq!(port("7202"), Some(2));
    assert_eq!(port("7201"), Some(1));
    // received/refused is keyed by the port that refused (the remote one)
    let series = |cause: &str| -> Vec<(String, u64)> {
        scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == "rstwatch_port_resets_total" && labels(s, &["view", "cause"]) == ["received", cause]
            })
            .map(|s| (s.labels.get("port").unwrap_or_default().to_string(), value(s)))
            .collect()
    };
    let mut refused = series("refused");
    refused.sort();
    assert_eq!(refused, [("7201".to_string(), 1), ("7202".to_string(), 2)]);
    // the clients' own ports are ephemeral: summed into one bounded label
    let [lo, hi] =
        [snap.json["ephemeral_ports"][0].as_u64().unwrap(), snap.json["ephemeral_ports"][1].as_u64().unwrap()];
    assert_eq!(series("peer_reset"), [("ephemeral".to_string(), 3)], "one series for all client ports");
    for row in snap.json["ports"].as_array().unwrap().iter().filter(|r| r["cause"] == "peer_reset") {
        let p = row["port"].as_u64().unwrap();
        assert!((lo..=hi).contains(&p), "client port {p} in ip_local_port_range");
    }
    let one =
        |name: &str| scrape.samples.iter().find(|s| s.metric == name).map_or_else(|| panic!("{name} missing"), value);
    assert_eq!(one("rstwatch_samples_delivered_total"), snap.json["samples"]["delivered"].as_u64().unwrap());
    assert_eq!(one("rstwatch_samples_dropped_total"), snap.json["samples"]["dropped"].as_u64().unwrap());
    assert_eq!(one("rstwatch_build_info"), 1);
}
