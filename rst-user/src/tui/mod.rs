//! `rstwatch top`: the live view of a running daemon. A fetch thread polls
//! `/snapshot`; the UI thread handles keys and renders. When stdout is not a
//! terminal it prints the plain summary every second instead.

pub mod app;
#[cfg(test)]
mod fixtures;
pub mod ui;

use std::{io::IsTerminal as _, sync::mpsc, time::Duration};

use crate::{
    cli::fleet,
    pipeline::model::{HostRate, Snapshot},
};

use ratatui::crossterm::event::{self, Event, KeyEventKind};

use crate::{cli::client, error::Error, output::text};

const REFRESH: Duration = Duration::from_secs(1);

/// Where the view reads from: one daemon, or a fleet through Prometheus.
pub enum Source {
    Daemon(client::Target),
    Fleet(fleet::Fleet),
}

impl Source {
    /// What the status line names: the daemon's address, or Prometheus's.
    fn label(&self) -> String {
        match self {
            Self::Daemon(t) => t.addr.to_string(),
            Self::Fleet(f) => format!("prometheus {}", f.url),
        }
    }

    /// What a sentence names ("waiting for …").
    fn name(&self) -> String {
        match self {
            Self::Daemon(t) => format!("the daemon at {}", t.addr),
            Self::Fleet(f) => format!("Prometheus at {}", f.url),
        }
    }

    fn fetch(&self) -> Result<(Snapshot, Option<Vec<HostRate>>), Error> {
        match self {
            Self::Daemon(t) => client::fetch(t).map(|s| (s, None)),
            Self::Fleet(f) => f.fetch().map(|(s, h)| (s, Some(h))),
        }
    }
}

pub fn run(source: Source) -> Result<(), Error> {
    if !std::io::stdout().is_terminal() {
        return plain(&source);
    }
    let name = source.label();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while tx.send(source.fetch()).is_ok() {
            std::thread::sleep(REFRESH);
        }
    });
    let mut terminal = ratatui::init();
    let mut app = app::App::new(name);
    let result = (|| -> std::io::Result<()> {
        while !app.quit {
            while let Ok(r) = rx.try_recv() {
                match r {
                    Ok((s, hosts)) => {
                        app.on_snapshot(s);
                        app.hosts = hosts;
                    }
                    Err(e) => app.on_error(e.short()),
                }
            }
            terminal.draw(|f| ui::render(f, &app))?;
            if event::poll(Duration::from_millis(200))?
                && let Event::Key(k) = event::read()?
                && k.kind == KeyEventKind::Press
            {
                app.on_key(k);
            }
        }
        Ok(())
    })();
    ratatui::restore();
    result.map_err(Error::io("drawing the terminal"))
}

/// Not a terminal: one plain table per second, for pipes and logs.
fn plain(source: &Source) -> Result<(), Error> {
    use std::io::Write as _;
    let name = source.name();
    // Without a daemon: one line per change of state, not one per second.
    let mut last_error: Option<String> = None;
    loop {
        let body = match source.fetch() {
            Ok((s, hosts)) => {
                last_error = None;
                Some(hosts.map(|h| text::hosts(&h)).unwrap_or_default() + &text::render(&s))
            }
            Err(e) => {
                let line = format!("waiting for {name}: {}\n", e.short());
                (last_error.replace(line.clone()).as_ref() != Some(&line)).then_some(line)
            }
        };
        if let Some(body) = body
            && writeln!(std::io::stdout().lock(), "{body}").is_err()
        {
            return Ok(()); // reader went away
        }
        std::thread::sleep(REFRESH);
    }
}
