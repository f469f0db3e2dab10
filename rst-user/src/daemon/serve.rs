//! The serving side of a run: the listening socket and pcap sink (both
//! checked before anything is loaded), HTTP and `--live` fed by the snapshot
//! channel, and the one-line summaries for the log and systemd.

use std::sync::Arc;

use tokio::sync::watch;

use crate::{
    error::Error,
    output::{self, pcap::PcapSink, web_config::WebConfig},
    pipeline::model::{Snapshot, Totals},
    settings::Settings,
};

/// The running HTTP server, stopped by [`Outputs::stop`], and the pcap sink.
pub(super) struct Outputs {
    stop_tx: watch::Sender<bool>,
    /// The endpoint's protection, replaced on reload.
    pub web: watch::Sender<Arc<WebConfig>>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    /// `--pcap`: where captured packets go.
    pub pcap: Option<PcapSink>,
}

impl Outputs {
    /// HTTP (/snapshot, /metrics) and `--live`, fed by the snapshot channel.
    pub(super) fn start(
        listener: tokio::net::TcpListener,
        rx: &watch::Receiver<Arc<Snapshot>>,
        settings: &Settings,
        web: WebConfig,
        pcap: Option<PcapSink>,
    ) -> Self {
        let (web, web_rx) = watch::channel(Arc::new(web));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let http_stop = async move {
            let _ = stop_rx.wait_for(|v| *v).await;
        };
        let options = output::metrics::Options { owners: settings.owner_metrics };
        let http = tokio::spawn(output::http::serve(listener, rx.clone(), options, web_rx, http_stop));
        if settings.live {
            tokio::spawn(output::live::run(rx.clone()));
        }
        Self { stop_tx, web, http, pcap }
    }

    /// One capture record from the ring, into the pcap files.
    pub(super) fn on_capture(&mut self, bytes: &[u8]) {
        if let (Some(sink), Some(c)) = (self.pcap.as_mut(), output::pcap::decode(bytes))
            && let Err(e) = sink.write(&c)
        {
            tracing::warn!("pcap: {e}");
        }
    }

    /// Stops the HTTP server and waits for it.
    pub(super) async fn stop(self) {
        let _ = self.stop_tx.send(true);
        let _ = self.http.await;
    }
}

pub(super) fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    let std = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            Error::AddrInUse { addr }
        } else {
            Error::Listen { addr, source }
        }
    })?;
    std.set_nonblocking(true).map_err(|source| Error::Listen { addr, source })?;
    tokio::net::TcpListener::from_std(std).map_err(|source| Error::Listen { addr, source })
}

/// `--pcap DIR`: the sink (its directory made and checked before anything is loaded).
pub(super) fn pcap_sink(settings: &Settings) -> Result<Option<PcapSink>, Error> {
    let Some(p) = &settings.pcap else { return Ok(None) };
    let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let sink = PcapSink::new(&p.dir, n(p.per_file), n(p.files))?;
    tracing::info!(
        dir = %p.dir.display(),
        per_file = p.per_file,
        files = p.files,
        "writing pcap files of sampled resets (rotated)"
    );
    Ok(Some(sink))
}

pub(super) fn summary(t: &Totals, prev: &Totals, s: &Snapshot) -> String {
    format!(
        "resets sent {} (+{}) received {} (+{}) wire_in {} (+{}) wire_out {} (+{}); samples delivered {} dropped {}",
        t.sent,
        t.sent.saturating_sub(prev.sent),
        t.received,
        t.received.saturating_sub(prev.received),
        t.wire_in,
        t.wire_in.saturating_sub(prev.wire_in),
        t.wire_out,
        t.wire_out.saturating_sub(prev.wire_out),
        s.samples.delivered,
        s.samples.dropped
    )
}
