//! HTTP: `GET /` (what is served here), `/snapshot` (JSON), `/metrics`
//! (Prometheus text or OpenMetrics, by `Accept`) and `/healthz` (every
//! requested hook attached).

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::sync::watch;

use crate::{
    output::{exposition::Format, metrics, process},
    pipeline::model::Snapshot,
};

type Snap = watch::Receiver<Arc<Snapshot>>;

const INDEX: &str = concat!(
    "<!DOCTYPE html>\n<html><head><title>rstwatch</title></head><body>\n",
    "<h1>rstwatch ",
    env!("CARGO_PKG_VERSION"),
    "</h1>\n<p>Who is resetting TCP connections on this host, and why.</p>\n<ul>\n",
    "<li><a href=\"/metrics\">/metrics</a>: Prometheus metrics (OpenMetrics when the Accept header asks for it)</li>\n",
    "<li><a href=\"/snapshot\">/snapshot</a>: every count, top ports, peers and owners, recent resets (JSON)</li>\n",
    "<li><a href=\"/healthz\">/healthz</a>: 200 when every requested hook is attached, else 503 and what is missing</li>\n",
    "</ul>\n</body></html>\n"
);

async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

async fn snapshot(State((rx, _)): State<(Snap, metrics::Options)>) -> impl IntoResponse {
    let body = serde_json::to_string(&**rx.borrow()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn prometheus(State((rx, options)): State<(Snap, metrics::Options)>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = metrics::render_as(format, &rx.borrow(), options, process::read());
    ([(header::CONTENT_TYPE, format.content_type())], body)
}

/// The requested hooks that are not attached now, one phrase each.
#[must_use]
pub fn missing_hooks(s: &Snapshot) -> Vec<String> {
    s.interfaces
        .iter()
        .flat_map(|i| {
            [("xdp", i.xdp), ("tc egress", i.tc)]
                .into_iter()
                .filter(|(_, on)| !on)
                .map(move |(hook, _)| format!("{hook} on {}", i.name))
        })
        .collect()
}

async fn healthz(State((rx, _)): State<(Snap, metrics::Options)>) -> impl IntoResponse {
    let missing = missing_hooks(&rx.borrow());
    if missing.is_empty() {
        (StatusCode::OK, "ok: the stack's tracepoints and every requested interface hook are attached\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not attached: {}\n", missing.join(", ")))
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rx: Snap,
    options: metrics::Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(index))
        .route("/snapshot", get(snapshot))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(healthz))
        .with_state((rx, options));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::model::Interface;

    #[test]
    fn healthy_only_when_every_requested_hook_is_attached() {
        let mut s = Snapshot::default();
        assert!(missing_hooks(&s).is_empty());
        s.interfaces = vec![
            Interface { name: "eth0".into(), xdp: true, tc: true },
            Interface { name: "eth1".into(), xdp: false, tc: true },
            Interface { name: "eth2".into(), xdp: false, tc: false },
        ];
        assert_eq!(missing_hooks(&s), ["xdp on eth1", "xdp on eth2", "tc egress on eth2"]);
    }

    #[test]
    fn index_names_the_version_and_every_endpoint() {
        for e in ["/metrics", "/snapshot", "/healthz", env!("CARGO_PKG_VERSION")] {
            assert!(INDEX.contains(e), "{e}");
        }
    }
}
