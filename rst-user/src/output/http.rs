//! HTTP: `GET /snapshot` (JSON) and `GET /metrics` (Prometheus text).

use std::sync::Arc;

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use tokio::sync::watch;

use crate::{model::Snapshot, output::metrics};

type Snap = watch::Receiver<Arc<Snapshot>>;

async fn snapshot(State((rx, _)): State<(Snap, metrics::Options)>) -> impl IntoResponse {
    let body = serde_json::to_string(&**rx.borrow()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn prometheus(State((rx, options)): State<(Snap, metrics::Options)>) -> impl IntoResponse {
    let body = metrics::render(&rx.borrow(), options);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rx: Snap,
    options: metrics::Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app =
        Router::new().route("/snapshot", get(snapshot)).route("/metrics", get(prometheus)).with_state((rx, options));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
