//! `rstwatch top`: the live view of a running daemon. A fetch thread polls
//! `/snapshot`; the UI thread handles keys and renders. When stdout is not a
//! terminal it prints the plain summary every second instead.

pub mod app;
pub mod ui;

use std::{io::IsTerminal as _, sync::mpsc, time::Duration};

use ratatui::crossterm::event::{self, Event, KeyEventKind};

use crate::{cli::client, error::Error, output::text};

const REFRESH: Duration = Duration::from_secs(1);

pub fn run(target: client::Target) -> Result<(), Error> {
    if !std::io::stdout().is_terminal() {
        return plain(&target);
    }
    let addr = target.addr;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while tx.send(client::fetch(&target)).is_ok() {
            std::thread::sleep(REFRESH);
        }
    });
    let mut terminal = ratatui::init();
    let mut app = app::App::new(addr.to_string());
    let result = (|| -> std::io::Result<()> {
        while !app.quit {
            while let Ok(r) = rx.try_recv() {
                match r {
                    Ok(s) => app.on_snapshot(s),
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
fn plain(target: &client::Target) -> Result<(), Error> {
    use std::io::Write as _;
    let addr = target.addr;
    // Without a daemon: one line per change of state, not one per second.
    let mut last_error: Option<String> = None;
    loop {
        let body = match client::fetch(target) {
            Ok(s) => {
                last_error = None;
                Some(text::render(&s))
            }
            Err(e) => {
                let line = format!("waiting for the daemon at {addr}: {}\n", e.short());
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
