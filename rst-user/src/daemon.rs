//! `rstwatch run`: checks the environment, loads and attaches, then wires
//! source -> decode -> aggregate -> snapshot (watch) -> outputs.

use std::{sync::Arc, time::{Duration, Instant}};

use tokio::{signal::unix::{SignalKind, signal}, sync::watch};

use crate::{
    aggregate::{Aggregator, Limits},
    cli::RunArgs,
    decode,
    error::Error,
    kernel, loader,
    model::Snapshot,
    output,
    privileges,
    source::Source,
};

/// Samples handled per wake-up before the counters get their turn.
const DRAIN_BATCH: usize = 4096;
const RECENT: usize = 64;

fn check_interfaces(args: &RunArgs) -> Result<(), Error> {
    for name in &args.ifaces {
        let c = std::ffi::CString::new(name.as_str()).map_err(|_| Error::NoInterface { name: name.clone() })?;
        // SAFETY: valid C string.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
            return Err(Error::NoInterface { name: name.clone() });
        }
    }
    Ok(())
}

fn bind(args: &RunArgs) -> Result<tokio::net::TcpListener, Error> {
    let addr = args.listen;
    let std = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse { Error::AddrInUse { addr } } else { Error::Listen { addr, source } }
    })?;
    std.set_nonblocking(true).map_err(|source| Error::Listen { addr, source })?;
    tokio::net::TcpListener::from_std(std).map_err(|source| Error::Listen { addr, source })
}

pub async fn run(args: RunArgs) -> Result<(), Error> {
    // Everything a user can get wrong is checked before anything is loaded.
    check_interfaces(&args)?;
    if !privileges::sufficient() {
        return Err(Error::NotPermitted);
    }
    let listener = bind(&args)?;
    let probe = kernel::probe(args.sample_rate)?;
    let sizes = loader::Sizes { ring_bytes: args.ring_bytes, port_keys: args.port_keys, peer_keys: args.peer_keys };
    let mut ebpf = loader::load(&probe.config, &sizes)?;
    for (name, present) in [("tcp_send_reset", probe.has_send_reset), ("tcp_receive_reset", probe.has_receive_reset)] {
        if present {
            loader::attach_tracepoint(&mut ebpf, name)?;
        } else {
            tracing::warn!("tracepoint tcp:{name} is missing on this kernel: its view stays at zero");
        }
    }
    let ifaces: &[String] = if args.no_wire { &[] } else { &args.ifaces };
    for iface in ifaces {
        loader::attach_wire(&mut ebpf, iface)?;
    }
    if ifaces.is_empty() {
        tracing::info!("no interface watched: wire_in/wire_out stay at zero (add --iface IF)");
    }
    let mut source = Source::new(&mut ebpf)?;
    let mut agg = Aggregator::new(Limits { top: args.top, recent: RECENT }, probe.release.clone(), probe.reason_names.clone());
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let started = Instant::now();
    let publish = |agg: &mut Aggregator, source: &Source| {
        agg.on_counts(source.counts());
        tx.send_replace(Arc::new(agg.snapshot(started.elapsed().as_secs_f64())));
    };
    publish(&mut agg, &source);

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let http_stop = {
        let mut s = stop_rx.clone();
        async move {
            let _ = s.wait_for(|v| *v).await;
        }
    };
    let http = tokio::spawn(output::http::serve(listener, rx.clone(), http_stop));
    if args.live {
        tokio::spawn(output::live::run(rx.clone()));
    }
    tracing::info!(listen = %args.listen, ifaces = ?ifaces, sample_rate = args.sample_rate, kernel = %probe.release, "rstwatch running");

    let mut sigint = signal(SignalKind::interrupt()).map_err(|source| Error::Io { what: "installing SIGINT handler", source })?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|source| Error::Io { what: "installing SIGTERM handler", source })?;
    let mut tick = tokio::time::interval(Duration::from_millis(args.poll_ms));
    let mut undecodable = 0u64;
    loop {
        tokio::select! {
            r = source.drain(DRAIN_BATCH, |bytes| match decode::decode(bytes) {
                Ok(ev) => agg.on_sample(ev),
                Err(_) => undecodable += 1,
            }) => { r.map_err(|source| Error::Io { what: "reading the ring buffer", source })?; }
            _ = tick.tick() => publish(&mut agg, &source),
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = stop_rx.changed() => {}
        }
    }
    if undecodable > 0 {
        tracing::warn!(undecodable, "ring records of an unexpected size were skipped");
    }
    let _ = stop_tx.send(true);
    let _ = http.await;
    drop(source);
    drop(ebpf);
    tracing::info!("detached all programs; exiting");
    Ok(())
}
