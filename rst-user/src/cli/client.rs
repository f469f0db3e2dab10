//! `rstwatch snapshot`: asks a running daemon.

use std::net::SocketAddr;

use crate::{error::Error, output::text, pipeline::model::Snapshot};

fn get(addr: SocketAddr, path: &str) -> Result<String, Error> {
    let no_daemon = |e: ureq::Error| Error::NoDaemon { addr, detail: e.to_string() };
    // Whatever answers, its body is read to the end before the connection
    // closes: closing with unread data would make this client send a RST.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent.get(format!("http://{addr}{path}")).call().map_err(no_daemon)?;
    let status = response.status();
    let body = response.body_mut().read_to_string().map_err(no_daemon)?;
    if !status.is_success() {
        return Err(Error::NoDaemon { addr, detail: format!("{path} answered {status}: not an rstwatch daemon") });
    }
    Ok(body)
}

fn parse(addr: SocketAddr, body: &str) -> Result<Snapshot, Error> {
    serde_json::from_str(body)
        .map_err(|e| Error::NoDaemon { addr, detail: format!("answer is not an rstwatch snapshot: {e}") })
}

/// One snapshot from the daemon at `addr`.
pub fn fetch(addr: SocketAddr) -> Result<Snapshot, Error> {
    parse(addr, &get(addr, "/snapshot")?)
}

pub fn snapshot(addr: SocketAddr, json: bool) -> Result<(), Error> {
    use std::io::Write as _;
    let body = get(addr, "/snapshot")?;
    let out = if json { body + "\n" } else { text::render(&parse(addr, &body)?) };
    // A reader that went away (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}
