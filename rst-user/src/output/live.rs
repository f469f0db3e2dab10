//! `--live`: prints the text summary on stdout every two seconds while counts change.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::{model::Snapshot, output::text};

pub async fn run(mut rx: watch::Receiver<Arc<Snapshot>>) {
    let mut last = None;
    loop {
        let snap = rx.borrow_and_update().clone();
        let key = (snap.totals, snap.samples.delivered);
        if last != Some(key) {
            println!("{}", text::render(&snap));
            last = Some(key);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        if rx.has_changed().is_err() {
            return;
        }
    }
}
