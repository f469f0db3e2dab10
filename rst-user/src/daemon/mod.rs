//! `rstwatch run`, a composition of the stages: settings ([`setup`]), the
//! kernel side ([`crate::kernel::side`]: load, attach, read), the pipeline
//! ([`publish`]: decode, aggregate, snapshot), the outputs ([`serve`]); then
//! one loop that moves data between them and serves systemd (notify,
//! watchdog, reload on SIGHUP) until SIGINT/SIGTERM.

mod publish;
mod serve;
mod setup;

use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    cli::RunArgs,
    error::Error,
    kernel::{
        privileges,
        side::{Event, KernelSide},
    },
    output::notify,
    settings::Settings,
};
use publish::Pipeline;
use serve::Outputs;

/// Samples handled per wake-up before the counters get their turn.
const DRAIN_BATCH: usize = 4096;

pub async fn run(args: RunArgs) -> Result<(), Error> {
    // Everything a user can get wrong is checked before anything is loaded.
    let (mut settings, _) = setup::settings(&args)?;
    let web = setup::web_config(&settings)?;
    // From the start: a SIGTERM while loading (systemd stopping us) ends the
    // run cleanly once it is up, never kills it halfway.
    let mut signals = Signals::install()?;
    if !privileges::sufficient() {
        return Err(Error::NotPermitted);
    }
    let listener = serve::bind(settings.listen)?;
    let pcap = serve::pcap_sink(&settings)?;
    let (mut kernel, before) = KernelSide::open(&setup::kernel_options(&settings))?;
    let (mut pipeline, rx) = Pipeline::new(&settings, kernel.probe(), &before);
    let first = pipeline.publish(&mut kernel);
    let mut outputs = Outputs::start(listener, &rx, &settings, web, pcap);
    tracing::info!(listen = %settings.listen, ifaces = ?kernel.watched(), sample_rate = settings.sample_rate, kernel = %kernel.probe().release, "rstwatch running");
    notify::ready(&serve::summary(&first.totals, &first.totals, &first));

    let result =
        serve_until_signal(&args, &mut settings, &mut kernel, &mut pipeline, &mut outputs, &mut signals, first.totals)
            .await;
    notify::stopping();
    if pipeline.undecodable > 0 {
        tracing::warn!(undecodable = pipeline.undecodable, "ring records of an unexpected size were skipped");
    }
    outputs.stop().await;
    kernel.close();
    result
}

/// The signals a run answers, installed before anything is loaded.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Self, Error> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(Error::io("installing SIGINT handler"))?,
            terminate: signal(SignalKind::terminate()).map_err(Error::io("installing SIGTERM handler"))?,
            hangup: signal(SignalKind::hangup()).map_err(Error::io("installing SIGHUP handler"))?,
        })
    }
}

/// The one loop: samples and captures as they come, a snapshot every poll,
/// folds, the watchdog, interface checks and reloads, until SIGINT/SIGTERM.
async fn serve_until_signal(
    args: &RunArgs,
    settings: &mut Settings,
    k: &mut KernelSide,
    p: &mut Pipeline,
    outputs: &mut Outputs,
    signals: &mut Signals,
    first: crate::pipeline::model::Totals,
) -> Result<(), Error> {
    let mut tick = tokio::time::interval(Duration::from_millis(settings.poll_ms));
    // Keep-alives come from this loop: if it stalls, systemd notices.
    let watchdog_every = notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_hours(1)));
    let mut last_summary = (Instant::now(), first);
    let mut iface_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = k.next(DRAIN_BATCH, |bytes| p.on_record(bytes), |bytes| outputs.on_capture(bytes)) => {
                if let Event::FoldDue = ev? {
                    if let Some(drained) = k.fold() {
                        p.on_fold(drained);
                    }
                    // at once: the aggregator holds the old kernel counts too until it reads them again
                    p.publish(k);
                }
            }
            _ = tick.tick() => {
                let snap = p.publish(k);
                let due = settings.summary_seconds > 0 && last_summary.0.elapsed() >= Duration::from_secs(settings.summary_seconds);
                if due {
                    let line = serve::summary(&snap.totals, &last_summary.1, &snap);
                    tracing::info!("{line}");
                    notify::status(&line);
                    last_summary = (Instant::now(), snap.totals);
                }
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => notify::watchdog(),
            _ = iface_check.tick() => k.check_interfaces(),
            _ = signals.hangup.recv() => reload(args, settings, k, p, outputs),
            _ = signals.interrupt.recv() => return Ok(()),
            _ = signals.terminate.recv() => return Ok(()),
        }
    }
}

/// SIGHUP: re-reads the config and applies what can change without reloading programs.
fn reload(args: &RunArgs, current: &mut Settings, k: &mut KernelSide, p: &mut Pipeline, outputs: &Outputs) {
    notify::reloading();
    match setup::settings(args) {
        Err(e) => tracing::warn!("reload failed, keeping the running settings: {e}"),
        Ok((new, _)) => {
            let (live, restart) = current.changes(&new);
            if live.is_empty() && restart.is_empty() {
                tracing::info!("reload: nothing changed");
            }
            for c in &live {
                tracing::info!("reload: {c}");
            }
            for c in &restart {
                tracing::warn!("reload: {c} needs a restart; keeping the running value");
            }
            k.reload(new.sample_rate, &new.ifaces);
            p.agg.set_top(new.top);
            // The web configuration is read again even when its name did not change (new certificates).
            match setup::web_config(&new) {
                Ok(web) => {
                    let _ = outputs.web.send(std::sync::Arc::new(web));
                }
                Err(e) => tracing::warn!("reload: {e}; keeping the running web configuration"),
            }
            *current = current.reloadable(&new);
        }
    }
    p.detector.set_thresholds(current.alerts);
    notify::ready("reloaded");
}
