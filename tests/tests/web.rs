//! A locked-down endpoint (`--web-config`, the Prometheus exporter toolkit's
//! format): TLS with a CA of the test's own, basic auth with bcrypt hashes.
//! The real Prometheus scrapes it with `scheme: https` and `basic_auth`;
//! a wrong password gets 401, plain HTTP gets nothing useful, the clients
//! connect with their options (password from the environment or a file),
//! SIGHUP re-reads the file, and a bad file is one line, exit 2.

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use rst_tests::{
    namespaces::netns::Netns,
    rig::{
        daemon::{self, Daemon},
        prometheus::Prometheus,
    },
    wait,
};

const LISTEN: &str = "127.0.0.1:9477";
const PASSWORD: &str = "correct horse";

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("running a tool");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "2", "-subj", "/CN=rstwatch test CA"])
        .args(["-keyout", "ca.key", "-out", "ca.crt"])
        .current_dir(dir));
    run(Command::new("openssl")
        .args(["req"])
        .args(ec)
        .args(["-subj", "/CN=rstwatch", "-keyout", "server.key", "-out", "server.csr"])
        .current_dir(dir));
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"])
        .args(["-days", "2", "-extfile", "san.ext", "-out", "server.crt"])
        .current_dir(dir));
}

fn web_config(dir: &Path, password: &str) {
    let hash = bcrypt::hash(password, 6).unwrap();
    let text = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {hash}\n"
    );
    std::fs::write(dir.join("web.yml"), text).unwrap();
}

/// GET over HTTPS trusting the test's CA, as `user:password` when given: (status, body).
fn https(ns: &Netns, dir: &Path, path: &str, auth: Option<(&str, &str)>) -> Result<(u16, String), String> {
    use rustls_pki_types::{CertificateDer, pem::PemObject as _};
    let ca: Vec<_> = CertificateDer::pem_file_iter(dir.join("ca.crt"))
        .unwrap()
        .map(|c| ureq::tls::Certificate::from_der(&c.unwrap()).to_owned())
        .collect();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(ca))).build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build().into();
    let url = format!("https://{LISTEN}{path}");
    rst_tests::namespaces::netns::run_in(&ns.path(), || {
        let mut r = agent.get(&url);
        if let Some((u, p)) = auth {
            use base64::Engine as _;
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            r = r.header("Authorization", format!("Basic {pair}"));
        }
        let mut resp = r.call().map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        Ok((status, resp.body_mut().read_to_string().unwrap_or_default()))
    })
}

/// `rstwatch snapshot` against the secured daemon, with `env` and `args`: (exit code, stdout+stderr).
fn client(ns: &Netns, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(daemon::bin())
        .args(["snapshot", "--listen", LISTEN])
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_BACKTRACE")
        .current_dir(dir)
        .output()
        .expect("rstwatch snapshot");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_locked_down_endpoint_serves_prometheus_over_tls_with_basic_auth() {
    let ns = Netns::new("web");
    let dir = std::env::temp_dir().join(format!("rstw-web-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    web_config(&dir, PASSWORD);
    let config = dir.join("web.yml");
    let d = Daemon::start(&ns, &["--no-wire", "--web-config", config.to_str().unwrap()]);
    let ok = wait::until("the daemon over TLS", Duration::from_secs(20), Duration::from_millis(200), || {
        https(&ns, &dir, "/metrics", Some(("prometheus", PASSWORD)))
            .and_then(|(s, b)| if s == 200 { Ok(b) } else { Err(format!("{s}")) })
    });
    assert!(ok.contains("rstwatch_resets_total"));
    assert_eq!(https(&ns, &dir, "/metrics", Some(("prometheus", "wrong"))).unwrap().0, 401);
    assert_eq!(https(&ns, &dir, "/snapshot", None).unwrap().0, 401, "no credentials: no peer addresses");
    assert_eq!(https(&ns, &dir, "/metrics", Some(("nobody", PASSWORD))).unwrap().0, 401);
    assert_eq!(https(&ns, &dir, "/healthz", None).unwrap().0, 200, "liveness probes carry no password");
    // Plain HTTP to the TLS port: no answer an HTTP client can use.
    let plain = rst_tests::namespaces::netns::run_in(&ns.path(), || {
        ureq::get(format!("http://{LISTEN}/metrics")).call().map(|r| r.status().as_u16())
    });
    assert!(plain.is_err(), "plain HTTP got {plain:?}");

    // The clients: CA and user from flags, the password from the environment or a file.
    let (code, out) =
        client(&ns, &dir, &["--tls-ca", "ca.crt", "--user", "prometheus"], &[("RSTWATCH_PASSWORD", PASSWORD)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("rstwatch"), "{out}");
    std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).unwrap();
    let (code, out) =
        client(&ns, &dir, &["--tls-ca", "ca.crt", "--user", "prometheus", "--password-file", "password"], &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        client(&ns, &dir, &["--tls-ca", "ca.crt", "--user", "prometheus"], &[("RSTWATCH_PASSWORD", "wrong")]);
    assert_ne!(code, 0);
    assert!(out.contains("401") && out.lines().count() == 1, "one line: {out}");
    let (code, out) = client(&ns, &dir, &["--tls-ca", "ca.crt", "--user", "prometheus"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("RSTWATCH_PASSWORD"), "{out}");

    // The real Prometheus, scrape config as for node_exporter: https, the CA, basic_auth.
    std::fs::write(dir.join("prometheus-password"), PASSWORD).unwrap();
    let scrape = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rstwatch\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password_file: {pw}\n    static_configs:\n      - targets: ['{LISTEN}']\n",
        ca = dir.join("ca.crt").display(),
        pw = dir.join("prometheus-password").display()
    );
    let prom = Prometheus::start(&ns, &scrape, &[]);
    wait::until_true("Prometheus to scrape over TLS with basic auth", Duration::from_secs(20), || {
        prom.targets().first().is_some_and(|t| t["health"] == "up")
    });
    assert!(!prom.query("rstwatch_build_info").is_empty());

    // SIGHUP re-reads the file: a new password replaces the old one.
    web_config(&dir, "a new one");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(libc::pid_t::try_from(d.pid()).unwrap(), libc::SIGHUP) };
    wait::until_true("the new password to be the one", Duration::from_secs(10), || {
        https(&ns, &dir, "/metrics", Some(("prometheus", "a new one"))).is_ok_and(|(s, _)| s == 200)
    });
    assert_eq!(https(&ns, &dir, "/metrics", Some(("prometheus", PASSWORD))).unwrap().0, 401);
    drop(prom);
    drop(d);

    // A bad file: one line naming it and what is wrong, exit 2, nothing loaded.
    std::fs::write(dir.join("bad.yml"), "tls_server_config:\n  cert_file: server.crt\n").unwrap();
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(daemon::bin())
        .args(["run", "--no-pin", "--no-wire", "--web-config"])
        .arg(dir.join("bad.yml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.yml") && err.contains("key_file is missing") && err.trim().lines().count() == 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
