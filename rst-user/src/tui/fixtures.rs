//! Test fixtures shared by the view's and the model's tests: two
//! snapshots two seconds apart, and key presses.

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::app::App;
use crate::pipeline::model::{CauseCount, PeerCount, PortCount, PortLabel, Recent, Snapshot, Totals};

/// A snapshot at `uptime` with `closed` closed-port and `linger` linger resets.
pub fn snap(uptime: f64, closed: u64, linger: u64) -> Snapshot {
    Snapshot {
        version: 1,
        uptime_seconds: uptime,
        kernel: "6.18".into(),
        totals: Totals { sent: closed + linger, received: closed, wire_in: 0, wire_out: 0 },
        causes: vec![
            CauseCount { view: "sent".into(), cause: "closed_port".into(), count: closed },
            CauseCount { view: "sent".into(), cause: "linger_abort".into(), count: linger },
            CauseCount { view: "received".into(), cause: "refused".into(), count: closed },
        ],
        ports: vec![
            PortCount {
                view: "sent".into(),
                cause: "closed_port".into(),
                port: PortLabel::Port(9999),
                count: closed - 1,
            },
            PortCount { view: "sent".into(), cause: "closed_port".into(), port: PortLabel::Port(443), count: 1 },
            PortCount { view: "sent".into(), cause: "linger_abort".into(), port: PortLabel::Port(8080), count: linger },
        ],
        peers: vec![PeerCount {
            view: "sent".into(),
            cause: "closed_port".into(),
            addr: "10.0.0.7".into(),
            netns: None,
            count: closed,
        }],
        recent: vec![Recent::example("127.0.0.1:8080", "127.0.0.1:40000", 42, 5_000_000_000)],
        ..Snapshot::default()
    }
}

/// An app that has seen two snapshots: closed_port +20 in 2 s, linger +1.
pub fn app() -> App {
    let mut a = App::new("127.0.0.1:9477".into());
    a.on_snapshot(snap(10.0, 10, 1));
    a.on_snapshot(snap(12.0, 30, 2));
    a
}

/// One key press.
pub fn key(app: &mut App, c: KeyCode) {
    app.on_key(KeyEvent::from(c));
}
