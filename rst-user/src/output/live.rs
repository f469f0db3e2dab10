//! `--live`: prints the text summary on stdout every two seconds while counts change.

use std::{io::Write as _, sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::{output::text, pipeline::model::Snapshot};

pub async fn run(mut rx: watch::Receiver<Arc<Snapshot>>) {
    let mut last = None;
    loop {
        let snap = rx.borrow_and_update().clone();
        let key = (snap.totals, snap.samples.delivered);
        if last != Some(key) {
            if writeln!(std::io::stdout().lock(), "{}", text::render(&snap)).is_err() {
                // stdout closed (e.g. piped into `head`): stop printing, keep counting.
                tracing::info!("stdout is closed; live summary stopped");
                return;
            }
            last = Some(key);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        if rx.has_changed().is_err() {
            return;
        }
    }
}
