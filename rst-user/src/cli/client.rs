//! `rstwatch snapshot`: asks a running daemon.

use std::{net::SocketAddr, sync::Arc};

use crate::{cli::Access, error::Error, output::text, pipeline::model::Snapshot};

/// A daemon and how to reach it: over HTTPS with a CA to trust, with basic auth.
pub struct Target {
    pub addr: SocketAddr,
    agent: ureq::Agent,
    scheme: &'static str,
    authorization: Option<String>,
}

/// An HTTP agent trusting `--tls-ca` (if given), and the `Authorization`
/// value for `--user` with the password from $RSTWATCH_PASSWORD or
/// `--password-file`: how the clients reach a daemon, or Prometheus.
pub(crate) fn access(access: &Access) -> Result<(ureq::Agent, Option<String>), Error> {
    let usage = |detail: String| Error::Usage { detail };
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(ca) = &access.tls_ca {
        use rustls_pki_types::{CertificateDer, pem::PemObject as _};
        let certs: Vec<_> = CertificateDer::pem_file_iter(ca)
            .and_then(Iterator::collect)
            .map_err(|e| usage(format!("--tls-ca {}: {e}", ca.display())))?;
        let roots = certs.into_iter().map(|c| ureq::tls::Certificate::from_der(&c).to_owned()).collect();
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots))).build();
        config = config.tls_config(tls);
    }
    let authorization = match &access.user {
        None => None,
        Some(user) => {
            let password = match &access.password_file {
                Some(f) => std::fs::read_to_string(f)
                    .map_err(|e| usage(format!("--password-file {}: {e}", f.display())))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                None => std::env::var("RSTWATCH_PASSWORD").map_err(|_| {
                    usage(format!("--user {user}: set its password in $RSTWATCH_PASSWORD or name a --password-file"))
                })?,
            };
            let pair = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{user}:{password}"));
            Some(format!("Basic {pair}"))
        }
    };
    Ok((config.build().into(), authorization))
}

impl Target {
    /// From the command line (see [`access`]).
    pub fn new(addr: SocketAddr, access: &Access) -> Result<Self, Error> {
        let (agent, authorization) = self::access(access)?;
        let scheme = if access.tls_ca.is_some() { "https" } else { "http" };
        Ok(Self { addr, agent, scheme, authorization })
    }

    /// Plain HTTP, no auth (tests, and the daemon's default).
    #[must_use]
    pub fn plain(addr: SocketAddr) -> Self {
        Self::new(addr, &Access::default()).expect("no files to read")
    }
}

fn get(t: &Target, path: &str) -> Result<String, Error> {
    let addr = t.addr;
    let no_daemon = |e: ureq::Error| Error::NoDaemon { addr, detail: e.to_string() };
    // Whatever answers, its body is read to the end before the connection
    // closes: closing with unread data would make this client send a RST.
    let mut request = t.agent.get(format!("{}://{addr}{path}", t.scheme));
    if let Some(a) = &t.authorization {
        request = request.header("Authorization", a);
    }
    let mut response = request.call().map_err(no_daemon)?;
    let status = response.status();
    let body = response.body_mut().read_to_string().map_err(no_daemon)?;
    if status == 401 {
        let why = if t.authorization.is_some() { "the user or password is wrong" } else { "it asks for --user" };
        return Err(Error::NoDaemon { addr, detail: format!("{path} answered 401: {why}") });
    }
    if !status.is_success() {
        return Err(Error::NoDaemon { addr, detail: format!("{path} answered {status}: not an rstwatch daemon") });
    }
    Ok(body)
}

fn parse(addr: SocketAddr, body: &str) -> Result<Snapshot, Error> {
    serde_json::from_str(body)
        .map_err(|e| Error::NoDaemon { addr, detail: format!("answer is not an rstwatch snapshot: {e}") })
}

/// One snapshot from the daemon `t`.
pub fn fetch(t: &Target) -> Result<Snapshot, Error> {
    parse(t.addr, &get(t, "/snapshot")?)
}

pub fn snapshot(t: &Target, json: bool) -> Result<(), Error> {
    use std::io::Write as _;
    let body = get(t, "/snapshot")?;
    let out = if json { body + "\n" } else { text::render(&parse(t.addr, &body)?) };
    // A reader that went away (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}
