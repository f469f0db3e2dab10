//! State of `rstwatch top`: the latest snapshots, rates, selection, sort,
//! filter. Pure: keys and snapshots in, state out; `ui` renders it.

use std::collections::{HashMap, VecDeque};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::pipeline::model::{OwnerCount, PeerCount, PortCount, Recent, Snapshot};

/// Seconds of history in the sparklines.
pub const HISTORY: usize = 60;
pub const VIEWS: [&str; 4] = ["sent", "received", "wire_in", "wire_out"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Causes,
    Ports,
    Peers,
    Owners,
    Recent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Rate,
    Count,
    Name,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conn {
    Waiting,
    Connected,
    Lost(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct CauseRow {
    pub view: String,
    pub cause: String,
    pub count: u64,
    pub rate: f64,
    /// Share of its view's total, 0..=1.
    pub share: f64,
}

#[expect(clippy::struct_excessive_bools, reason = "independent UI toggles")]
pub struct App {
    pub addr: String,
    pub snap: Option<Snapshot>,
    prev: Option<Snapshot>,
    rates: HashMap<(String, String), f64>,
    pub view_rates: [f64; 4],
    pub history: [VecDeque<u64>; 4],
    pub pane: Pane,
    pub selected: [usize; 5],
    /// The selected cause by name: the selection follows it when the order changes.
    selected_cause: Option<(String, String)>,
    pub sort: Sort,
    pub paused: bool,
    pub filter: String,
    pub editing_filter: bool,
    pub help: bool,
    pub conn: Conn,
    pub quit: bool,
    /// Fleet mode (`--prometheus`): the hosts by reset rate; None for one daemon.
    pub hosts: Option<Vec<crate::pipeline::model::HostRate>>,
}

fn pane_index(p: Pane) -> usize {
    match p {
        Pane::Causes => 0,
        Pane::Ports => 1,
        Pane::Peers => 2,
        Pane::Owners => 3,
        Pane::Recent => 4,
    }
}

impl App {
    #[must_use]
    pub fn new(addr: String) -> Self {
        Self {
            addr,
            snap: None,
            prev: None,
            rates: HashMap::new(),
            view_rates: [0.0; 4],
            history: Default::default(),
            pane: Pane::Causes,
            selected: [0; 5],
            selected_cause: None,
            sort: Sort::Rate,
            paused: false,
            filter: String::new(),
            editing_filter: false,
            help: false,
            conn: Conn::Waiting,
            quit: false,
            hosts: None,
        }
    }

    /// A new snapshot from the daemon. Rates use the daemon's uptime, so they
    /// do not depend on when this process happened to read.
    pub fn on_snapshot(&mut self, s: Snapshot) {
        self.conn = Conn::Connected;
        if self.paused {
            return;
        }
        let restarted = self.prev.as_ref().is_some_and(|p| s.uptime_seconds < p.uptime_seconds);
        if let Some(p) = self.prev.as_ref().filter(|_| !restarted) {
            let dt = s.uptime_seconds - p.uptime_seconds;
            if dt > 0.0 {
                self.rates = s
                    .causes
                    .iter()
                    .map(|c| {
                        let before =
                            p.causes.iter().find(|o| o.view == c.view && o.cause == c.cause).map_or(0, |o| o.count);
                        ((c.view.clone(), c.cause.clone()), c.count.saturating_sub(before) as f64 / dt)
                    })
                    .collect();
                for (i, v) in VIEWS.iter().enumerate() {
                    let r = total(&s, v).saturating_sub(total(p, v)) as f64 / dt;
                    self.view_rates[i] = r;
                    let h = &mut self.history[i];
                    if h.len() == HISTORY {
                        h.pop_front();
                    }
                    #[expect(clippy::cast_sign_loss, reason = "a rate is never negative")]
                    h.push_back(r.round() as u64);
                }
            }
        }
        self.prev = Some(s.clone());
        self.snap = Some(s);
        self.follow_selected_cause();
    }

    /// Puts the cause selection back on the cause it was on (rates and sort
    /// reorder the table), or remembers the one under the cursor.
    fn follow_selected_cause(&mut self) {
        let rows = self.causes();
        let found =
            self.selected_cause.as_ref().and_then(|(v, c)| rows.iter().position(|r| &r.view == v && &r.cause == c));
        if let Some(i) = found {
            self.selected[0] = i;
        } else {
            self.selected[0] = self.selected[0].min(rows.len().saturating_sub(1));
            self.selected_cause = rows.get(self.selected[0]).map(|r| (r.view.clone(), r.cause.clone()));
        }
    }

    pub fn on_error(&mut self, error: String) {
        self.conn = Conn::Lost(error);
    }

    #[must_use]
    pub fn rate(&self, view: &str, cause: &str) -> f64 {
        self.rates.get(&(view.to_string(), cause.to_string())).copied().unwrap_or(0.0)
    }

    /// The causes table, sorted.
    #[must_use]
    pub fn causes(&self) -> Vec<CauseRow> {
        let Some(s) = &self.snap else { return Vec::new() };
        let mut rows: Vec<CauseRow> = s
            .causes
            .iter()
            .map(|c| {
                let t = total(s, &c.view);
                CauseRow {
                    view: c.view.clone(),
                    cause: c.cause.clone(),
                    count: c.count,
                    rate: self.rate(&c.view, &c.cause),
                    share: if t == 0 { 0.0 } else { c.count as f64 / t as f64 },
                }
            })
            .collect();
        let by_name = |a: &CauseRow, b: &CauseRow| (&a.view, &a.cause).cmp(&(&b.view, &b.cause));
        match self.sort {
            Sort::Rate => {
                rows.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(b.count.cmp(&a.count)).then_with(|| by_name(a, b)));
            }
            Sort::Count => rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| by_name(a, b))),
            Sort::Name => rows.sort_by(by_name),
        }
        rows
    }

    #[must_use]
    pub fn selected_cause(&self) -> Option<CauseRow> {
        let rows = self.causes();
        rows.get(self.selected[0].min(rows.len().saturating_sub(1))).cloned()
    }

    fn matches(&self, text: &str) -> bool {
        self.filter.is_empty() || text.contains(&self.filter)
    }

    /// Top ports of the selected cause, filtered.
    #[must_use]
    pub fn ports(&self) -> Vec<&PortCount> {
        let (Some(s), Some(sel)) = (&self.snap, self.selected_cause()) else { return Vec::new() };
        s.ports
            .iter()
            .filter(|p| p.view == sel.view && p.cause == sel.cause)
            .filter(|p| self.matches(&p.port.to_string()))
            .collect()
    }

    /// Top peers of the selected cause, filtered.
    #[must_use]
    pub fn peers(&self) -> Vec<&PeerCount> {
        let (Some(s), Some(sel)) = (&self.snap, self.selected_cause()) else { return Vec::new() };
        s.peers.iter().filter(|p| p.view == sel.view && p.cause == sel.cause && self.matches(&p.addr)).collect()
    }

    /// Owners (unit, container, cgroup) of the selected cause's socket-bound resets, filtered.
    #[must_use]
    pub fn owners(&self) -> Vec<&OwnerCount> {
        let (Some(s), Some(sel)) = (&self.snap, self.selected_cause()) else { return Vec::new() };
        s.owners.iter().filter(|o| o.view == sel.view && o.cause == sel.cause && self.matches(&o.owner)).collect()
    }

    /// Recent samples, newest first, filtered by address or port.
    #[must_use]
    pub fn recent(&self) -> Vec<&Recent> {
        let Some(s) = &self.snap else { return Vec::new() };
        s.recent.iter().filter(|r| self.matches(&r.local) || self.matches(&r.remote)).collect()
    }

    fn pane_len(&self) -> usize {
        match self.pane {
            Pane::Causes => self.causes().len(),
            Pane::Ports => self.ports().len(),
            Pane::Peers => self.peers().len(),
            Pane::Owners => self.owners().len(),
            Pane::Recent => self.recent().len(),
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) {
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            return;
        }
        if self.help {
            self.help = false;
            return;
        }
        let i = pane_index(self.pane);
        match key.code {
            // Esc backs out one level: an active filter first, then the view.
            KeyCode::Esc if !self.filter.is_empty() => self.filter.clear(),
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => self.quit = true,
            KeyCode::Tab => {
                self.pane = match self.pane {
                    Pane::Causes => Pane::Ports,
                    Pane::Ports => Pane::Peers,
                    Pane::Peers => Pane::Owners,
                    Pane::Owners => Pane::Recent,
                    Pane::Recent => Pane::Causes,
                };
            }
            KeyCode::BackTab => {
                self.pane = match self.pane {
                    Pane::Causes => Pane::Recent,
                    Pane::Ports => Pane::Causes,
                    Pane::Peers => Pane::Ports,
                    Pane::Owners => Pane::Peers,
                    Pane::Recent => Pane::Owners,
                };
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected[i] = (self.selected[i] + 1).min(self.pane_len().saturating_sub(1));
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected[i] = self.selected[i].saturating_sub(1),
            KeyCode::Char('s') => {
                self.sort = match self.sort {
                    Sort::Rate => Sort::Count,
                    Sort::Count => Sort::Name,
                    Sort::Name => Sort::Rate,
                };
            }
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('/') => {
                self.editing_filter = true;
                self.filter.clear();
            }
            KeyCode::Char('?') => self.help = true,
            _ => {}
        }
        let moved = matches!(key.code, KeyCode::Down | KeyCode::Up | KeyCode::Char('j' | 'k'));
        if self.pane == Pane::Causes && moved {
            // a new cause under the cursor: remember it; its ports, peers and owners start at the top
            self.selected_cause = None;
            self.selected[1] = 0;
            self.selected[2] = 0;
            self.selected[3] = 0;
        }
        // a new sort order keeps the selected cause
        self.follow_selected_cause();
    }
}

#[must_use]
pub fn total(s: &Snapshot, view: &str) -> u64 {
    match view {
        "sent" => s.totals.sent,
        "received" => s.totals.received,
        "wire_in" => s.totals.wire_in,
        "wire_out" => s.totals.wire_out,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyCode;

    use super::*;
    use crate::tui::fixtures::{app, key, snap};

    #[test]
    fn sort_cycles_rate_count_name() {
        let mut a = app();
        let order = |a: &App| a.causes().iter().map(|c| c.cause.clone()).collect::<Vec<_>>();
        assert_eq!(order(&a)[0..2], ["refused", "closed_port"]); // 10/s each: then count, then view/cause name
        assert_eq!(order(&a)[2], "linger_abort");
        key(&mut a, KeyCode::Char('s'));
        assert_eq!(a.sort, Sort::Count);
        key(&mut a, KeyCode::Char('s'));
        assert_eq!(
            a.causes().iter().map(|c| (c.view.as_str(), c.cause.as_str())).collect::<Vec<_>>(),
            [("received", "refused"), ("sent", "closed_port"), ("sent", "linger_abort")]
        );
    }

    #[test]
    fn selection_stays_on_its_cause_when_the_order_changes() {
        let mut a = app();
        key(&mut a, KeyCode::Down);
        key(&mut a, KeyCode::Down);
        assert_eq!(a.selected_cause().unwrap().cause, "linger_abort");
        // linger_abort surges: sorted by rate it moves to the top, the selection with it
        a.on_snapshot(snap(14.0, 30, 200));
        assert_eq!(a.causes()[0].cause, "linger_abort");
        assert_eq!(a.selected_cause().unwrap().cause, "linger_abort");
        // and through a change of sort order
        key(&mut a, KeyCode::Char('s'));
        key(&mut a, KeyCode::Char('s'));
        assert_eq!(a.selected_cause().unwrap().cause, "linger_abort");
    }

    #[test]
    fn pause_freezes_the_numbers_and_q_closes_help_then_quits() {
        let mut a = app();
        key(&mut a, KeyCode::Char('p'));
        a.on_snapshot(snap(14.0, 99, 9));
        assert_eq!(a.causes()[0].count, 30, "paused: still the old numbers");
        key(&mut a, KeyCode::Char('?'));
        key(&mut a, KeyCode::Char('q')); // closes help
        assert!(!a.quit);
        key(&mut a, KeyCode::Char('q'));
        assert!(a.quit);
    }
}
