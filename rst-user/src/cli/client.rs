//! `rstwatch snapshot`: asks a running daemon.

use std::{net::SocketAddr, sync::Arc};

use crate::{cli::Access, error::Error, output::text, pipeline::model::Snapshot};

/// A daemon and how to reach it: over HTTPS with a CA to trust, with basic auth.
pub struct Target {
    pub addr: SocketAddr,
    http: Http,
    scheme: &'static str,
}

/// How the clients speak HTTP to a daemon, or to Prometheus: an agent
/// trusting `--tls-ca` (if given), and the `Authorization` value for
/// `--user` with the password from $RSTWATCH_PASSWORD or `--password-file`,
/// sent with every request.
pub(crate) struct Http {
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Http {
    /// From the clients' `--tls-ca`, `--user` and password options.
    pub(crate) fn new(access: &Access) -> Result<Self, Error> {
        let usage = |detail: String| Error::Usage { detail };
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if let Some(ca) = &access.tls_ca {
            use rustls_pki_types::{CertificateDer, pem::PemObject as _};
            let certs: Vec<_> = CertificateDer::pem_file_iter(ca)
                .and_then(Iterator::collect)
                .map_err(|e| usage(format!("--tls-ca {}: {e}", ca.display())))?;
            let roots = certs.into_iter().map(|c| ureq::tls::Certificate::from_der(&c).to_owned()).collect();
            let tls =
                ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots))).build();
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
                        usage(format!(
                            "--user {user}: set its password in $RSTWATCH_PASSWORD or name a --password-file"
                        ))
                    })?,
                };
                let pair =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{user}:{password}"));
                Some(format!("Basic {pair}"))
            }
        };
        Ok(Self { agent: config.build().into(), authorization })
    }

    /// A GET of `url`, with the `Authorization` header when there is a user.
    pub(crate) fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let request = self.agent.get(url);
        match &self.authorization {
            Some(a) => request.header("Authorization", a),
            None => request,
        }
    }

    /// Whether requests carry a user's credentials.
    pub(crate) fn authenticates(&self) -> bool {
        self.authorization.is_some()
    }
}

impl Target {
    /// From the command line (see [`Http`]).
    pub fn new(addr: SocketAddr, access: &Access) -> Result<Self, Error> {
        let scheme = if access.tls_ca.is_some() { "https" } else { "http" };
        Ok(Self { addr, http: Http::new(access)?, scheme })
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
    let mut response = t.http.get(&format!("{}://{addr}{path}", t.scheme)).call().map_err(no_daemon)?;
    let status = response.status();
    let body = response.body_mut().read_to_string().map_err(no_daemon)?;
    if status == 401 {
        let why = if t.http.authenticates() { "the user or password is wrong" } else { "it asks for --user" };
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
