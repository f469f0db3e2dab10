//! HTTP: `GET /` (what is served here), `/snapshot` (JSON), `/metrics`
//! (Prometheus text or OpenMetrics, by `Accept`) and `/healthz` (every
//! requested hook attached).

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::sync::watch;

use crate::{
    output::{exposition::Format, metrics, process, web_config::WebConfig},
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
            [(i.ingress_hook(), i.wire_in), ("tc egress", i.wire_out)]
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

/// The endpoint's protection (TLS, basic auth), replaced on reload: read per
/// connection (TLS) and per request (auth).
type Web = watch::Receiver<Arc<WebConfig>>;

/// Refuses a request without the user and password the web configuration
/// names. `/healthz` and `/` carry no peer, process or payload: liveness
/// probes (a kubelet has no password) reach them without one.
async fn authenticate(State(web): State<Web>, request: Request, next: Next) -> Response {
    let web = web.borrow().clone();
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let open = matches!(request.uri().path(), "/healthz" | "/");
    if open || web.allows(header) {
        return next.run(request).await;
    }
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"rstwatch\"")], "401 Unauthorized\n")
        .into_response()
}

/// A connection may take this long to finish its TLS handshake or send its request headers.
const SLOW_CLIENT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `shutdown` resolves: each connection on a task of its own
/// (a slow one holds nobody up), over TLS when the web configuration says so.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rx: Snap,
    options: metrics::Options,
    web: Web,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(index))
        .route("/snapshot", get(snapshot))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(healthz))
        .with_state((rx, options))
        .layer(axum::middleware::from_fn_with_state(web.clone(), authenticate));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return Ok(()),
        };
        let Ok((tcp, _)) = accepted else {
            // Out of file descriptors, say: keep serving the connections there are.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let tls = web.borrow().tls.clone();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(SLOW_CLIENT)
                .to_owned();
            let _ = match tls {
                None => http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await,
                Some(config) => {
                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
                    let Ok(Ok(stream)) = tokio::time::timeout(SLOW_CLIENT, accept).await else { return };
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await
                }
            };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::model::Interface;

    #[test]
    fn healthy_only_when_every_requested_hook_is_attached() {
        let mut s = Snapshot::default();
        assert!(missing_hooks(&s).is_empty());
        let xdp = Interface { wire_in: false, ingress: "xdp".into(), ..Interface::example("eth1", true) };
        s.interfaces = vec![Interface::example("eth0", true), xdp, Interface::example("eth2", false)];
        assert_eq!(missing_hooks(&s), ["xdp on eth1", "tc ingress on eth2", "tc egress on eth2"]);
    }

    #[test]
    fn a_daemon_from_before_tc_ingress_is_read_by_its_two_fields() {
        let old: Interface = serde_json::from_str(r#"{"name": "eth0", "xdp": true, "tc": true}"#).unwrap();
        assert!(old.watched());
        let old: Interface = serde_json::from_str(r#"{"name": "eth0", "xdp": false, "tc": false}"#).unwrap();
        assert!(!old.watched());
        assert!(Interface::example("eth0", true).watched());
    }

    #[test]
    fn index_names_the_version_and_every_endpoint() {
        for e in ["/metrics", "/snapshot", "/healthz", env!("CARGO_PKG_VERSION")] {
            assert!(INDEX.contains(e), "{e}");
        }
    }
}
