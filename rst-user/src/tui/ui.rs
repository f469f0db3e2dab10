//! Renders `rstwatch top`: a pure function of the app state (which holds the snapshot).

use crate::pipeline::names;
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style, Stylize as _},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Clear, List, ListItem, ListState, Paragraph, Row, Sparkline, Table, TableState},
};

use super::app::{App, Conn, HISTORY, Pane, Sort, VIEWS, total};
use crate::pipeline::model;

const FOCUS: Style = Style::new().fg(Color::Yellow);

fn block<'a>(title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let b = Block::default().borders(Borders::ALL).title(title);
    if focused { b.border_style(FOCUS) } else { b }
}

/// `3d04h`, `2h05m`, `4m07s`, `12s`.
fn uptime(seconds: f64) -> String {
    #[expect(clippy::cast_sign_loss, reason = "uptime is never negative")]
    let s = seconds as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn header(f: &mut Frame, area: Rect, app: &App) {
    let alerts: Vec<String> =
        app.snap.iter().flat_map(|s| &s.alerts).map(|a| format!("{} {}", a.kind, a.subject())).collect();
    let mut spans = vec![Span::raw(" resets ")];
    // An alert first: on a narrow screen the rest of the title gives way.
    if !alerts.is_empty() {
        spans.push(Span::raw(format!(" ALERT: {} ", alerts.join(", "))).red().bold());
    }
    if let (Some(s), Some(hosts)) = (&app.snap, &app.hosts) {
        spans.push(Span::raw(format!("─ fleet of {} hosts ", hosts.len())));
        if let Some(by) = origins(s) {
            spans.push(Span::raw(format!("─ received from {by} ")));
        }
    } else if let Some(s) = &app.snap {
        spans.push(Span::raw(format!("─ up {} ─ samples dropped {} ", uptime(s.uptime_seconds), s.samples.dropped)));
        if let Some(ns) = s.netns {
            spans.push(Span::raw(format!("─ netns {ns} only ")));
        }
        if let Some(by) = origins(s) {
            spans.push(Span::raw(format!("─ received from {by} ")));
        }
        let ifaces: Vec<String> = s
            .interfaces
            .iter()
            .map(|i| if i.watched() { i.name.clone() } else { format!("{} (detached)", i.name) })
            .collect();
        spans.push(Span::raw(if ifaces.is_empty() {
            "─ no interface watched ".to_string()
        } else {
            format!("─ watching {} ", ifaces.join(", "))
        }));
    }
    let title = Line::from(spans);
    let rows = Layout::vertical([Constraint::Length(1); 4]).split(block(title.clone(), false).inner(area));
    f.render_widget(block(title, false), area);
    if app.snap.is_none() {
        // No reading yet: zeros would look like one.
        f.render_widget(Paragraph::new(format!("waiting for the daemon at {} …", app.addr)).yellow(), rows[0]);
        return;
    }
    for (i, v) in VIEWS.iter().enumerate() {
        let [text, spark] = Layout::horizontal([Constraint::Length(34), Constraint::Min(0)]).areas(rows[i]);
        let t = app.snap.as_ref().map_or(0, |s| total(s, v));
        f.render_widget(Paragraph::new(format!("{v:<9}{t:>12} {:>9.1}/s", app.view_rates[i])), text);
        let data: Vec<u64> = app.history[i].iter().copied().collect();
        let skip = data.len().saturating_sub(spark.width as usize).min(HISTORY);
        f.render_widget(Sparkline::default().data(&data[skip..]).style(Style::new().fg(Color::Cyan)), spark);
    }
}

/// Received resets per origin (contract §2a), `peer 3 middlebox 1 …`; None before any.
fn origins(s: &model::Snapshot) -> Option<String> {
    let parts: Vec<String> = names::ORIGINS
        .map(names::origin_name)
        .into_iter()
        .filter_map(|o| {
            let n: u64 = s.origins.iter().filter(|r| r.view == "received" && r.origin == o).map(|r| r.count).sum();
            (n > 0).then(|| format!("{o} {n}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn causes(f: &mut Frame, area: Rect, app: &App) {
    let sort = match app.sort {
        Sort::Rate => "rate",
        Sort::Count => "count",
        Sort::Name => "name",
    };
    // The sorted column carries the arrow (▼ largest first, ▲ a to z).
    let mark = |s: Sort, name: &str, w: usize| {
        let name =
            if app.sort == s { format!("{name}{}", if s == Sort::Name { '▲' } else { '▼' }) } else { name.into() };
        if s == Sort::Name { name } else { format!("{name:>w$}") }
    };
    let head = Row::new([
        "view".to_string(),
        mark(Sort::Name, "cause", 0),
        mark(Sort::Count, "count", 9),
        mark(Sort::Rate, "rate/s", 7),
        "share".into(),
    ])
    .add_modifier(Modifier::BOLD);
    let rows: Vec<Row> = app
        .causes()
        .into_iter()
        .map(|c| {
            Row::new(vec![
                Cell::from(c.view),
                Cell::from(c.cause),
                Cell::from(format!("{:>9}", c.count)),
                Cell::from(format!("{:>7.1}", c.rate)),
                Cell::from(format!("{:>4.0}%", c.share * 100.0)),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Min(12),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(5),
        ],
    )
    .header(head)
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .block(block(format!(" causes (sort: {sort}) "), app.pane == Pane::Causes));
    let mut state = TableState::default().with_selected((!empty).then_some(app.selected[0]));
    f.render_stateful_widget(table, area, &mut state);
}

fn keyed(f: &mut Frame, area: Rect, title: &str, rows: Vec<(String, u64)>, focused: bool, selected: usize) {
    let empty = rows.is_empty();
    let rows: Vec<Row> =
        rows.into_iter().map(|(k, n)| Row::new(vec![Cell::from(k), Cell::from(format!("{n:>9}"))])).collect();
    let table = Table::new(rows, [Constraint::Min(8), Constraint::Length(9)])
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(block(title, focused));
    let mut state = TableState::default().with_selected((focused && !empty).then_some(selected));
    f.render_stateful_widget(table, area, &mut state);
}

/// `s` in at most `w` columns: cut with `…` when longer (never used on an address).
fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else if w == 0 {
        String::new()
    } else {
        s.chars().take(w - 1).chain(['…']).collect()
    }
}

/// `s` padded or cut to exactly `w` columns.
fn cell(s: &str, w: usize) -> String {
    format!("{:<w$}", fit(s, w))
}

/// The recent pane's rows: one line each when they fit, else two, the
/// addresses on a line of their own (an address or port is never cut; the
/// cause and the process give way first).
fn recent_items(rows: &[&model::Recent], width: usize) -> Vec<ListItem<'static>> {
    let with_netns = model::several_netns(rows.iter().map(|r| r.netns));
    let path = |r: &model::Recent| match r.netns {
        Some(n) if with_netns => format!("{}  netns {n}", r.path()),
        _ => r.path(),
    };
    let widest = |f: &dyn Fn(&model::Recent) -> usize| rows.iter().map(|r| f(r)).max().unwrap_or(0);
    let (w_when, w_view) = (widest(&|r| r.when().chars().count()), widest(&|r| r.view.len()));
    let w_cause = widest(&|r| r.cause.len());
    let w_path = widest(&|r| path(r).chars().count());
    let one_line = w_when + w_view + w_cause + w_path + 3 <= width;
    rows.iter()
        .map(|r| {
            let head = format!("{} {} ", cell(&r.when(), w_when), cell(&r.view, w_view));
            if one_line {
                let who = fit(&r.who(), width.saturating_sub(w_when + w_view + w_cause + w_path + 4));
                return ListItem::new(format!("{head}{} {} {who}", cell(&r.cause, w_cause), cell(&path(r), w_path)));
            }
            let left = width.saturating_sub(head.chars().count());
            let cause = cell(&r.cause, w_cause.min(left));
            let who = fit(&r.who(), left.saturating_sub(cause.chars().count() + 1));
            let (src, dst) = r.ends();
            let ns = path(r).split_once("  netns ").map(|(_, n)| format!("  netns {n}")).unwrap_or_default();
            let whole = format!("  {src} → {dst}{ns}");
            let mut lines = vec![Line::from(format!("{head}{cause} {who}"))];
            if whole.chars().count() <= width {
                lines.push(Line::from(whole));
            } else {
                lines.push(Line::from(format!("  {src} →")));
                lines.push(Line::from(format!("    {dst}{ns}")));
            }
            ListItem::new(lines)
        })
        .collect()
}

/// Fleet mode: the hosts by reset rate where one daemon's recent resets go.
fn hosts(f: &mut Frame, area: Rect, app: &App, hosts: &[model::HostRate]) {
    let frame = block(" hosts by reset rate (sent + received, last minute) ", app.pane == Pane::Recent);
    let shown: Vec<&model::HostRate> =
        hosts.iter().filter(|h| app.filter.is_empty() || h.host.contains(&app.filter)).collect();
    let w = shown.iter().map(|h| h.host.chars().count()).max().unwrap_or(4).max(4);
    let items: Vec<ListItem> = shown
        .iter()
        .map(|h| ListItem::new(format!("{:<w$} {:>10.1}/s {:>12} resets", h.host, h.rate, h.total)))
        .collect();
    f.render_widget(List::new(items).block(frame), area);
}

fn recent(f: &mut Frame, area: Rect, app: &App) {
    if let Some(h) = &app.hosts {
        hosts(f, area, app, h);
        return;
    }
    let rows = app.recent();
    let frame = block(" recent resets (local time; source → destination; process or owner) ", app.pane == Pane::Recent);
    if rows.is_empty() && !app.filter.is_empty() {
        // An empty pane says why.
        let why = format!("no recent sample matches {:?}", app.filter);
        f.render_widget(Paragraph::new(why).dark_gray().block(frame), area);
        return;
    }
    let items = recent_items(&rows, frame.inner(area).width as usize);
    let list = List::new(items).highlight_style(Style::new().add_modifier(Modifier::REVERSED)).block(frame);
    let mut state = ListState::default().with_selected((app.pane == Pane::Recent).then_some(app.selected[4]));
    f.render_stateful_widget(list, area, &mut state);
}

fn status(f: &mut Frame, area: Rect, app: &App) {
    let conn = match &app.conn {
        Conn::Waiting => Span::raw(format!("connecting to {} …", app.addr)).yellow(),
        Conn::Connected => Span::raw(format!("daemon {}", app.addr)).green(),
        Conn::Lost(e) => Span::raw(format!("daemon at {} is gone ({e}); reconnecting", app.addr)).red().bold(),
    };
    let mut spans = vec![conn];
    if app.paused {
        spans.push(Span::raw("  PAUSED").bold());
    }
    if app.editing_filter || !app.filter.is_empty() {
        spans.push(Span::raw(format!("  filter: {}{}", app.filter, if app.editing_filter { "▏" } else { "" })));
    }
    spans.push(Span::raw("  q quit  Tab pane  ↑↓ select  s sort  p pause  / filter  ? help").dark_gray());
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn help(f: &mut Frame, area: Rect) {
    let lines = [
        "q          quit; Esc clears an active filter first, then quits",
        "Tab        next pane (causes, ports, peers, owners, recent)",
        "↑/↓, k/j   select",
        "s          sort causes: rate, count, name",
        "p          pause / resume",
        "/          filter ports, peers, owners and samples by port,",
        "           address or owner (Enter keeps it, Esc clears it)",
        "?          this help (any key closes it)",
    ];
    // As wide as its longest line (never clipped); wrapped on a narrower screen.
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u16 + 2;
    let w = widest.min(area.width);
    let h = (lines.len() as u16 + 2 + u16::from(w < widest) * 2).min(area.height);
    let r = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    f.render_widget(Clear, r);
    let text = Paragraph::new(lines.map(Line::from).to_vec()).wrap(ratatui::widgets::Wrap { trim: false });
    f.render_widget(text.block(block(" keys ", true)), r);
}

/// Draws the whole screen.
pub fn render(f: &mut Frame, app: &App) {
    let area = f.area();
    let [head, middle, explain, bottom, foot] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Min(9),
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(area);
    header(f, head, app);
    let [left, right] = Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    causes(f, left, app);
    let [ports, peers, owners] = Layout::vertical([Constraint::Fill(1); 3]).areas(right);
    let ports_rows = app.ports().into_iter().map(|p| (p.port.to_string(), p.count)).collect();
    // Refusals are keyed by the port that refused: the far end's.
    let refusal =
        app.selected_cause().is_some_and(|c| c.cause == "refused" || (c.view == "wire_in" && c.cause == "refusal"));
    let ports_title = if refusal { " top ports (that refused) " } else { " top ports " };
    keyed(f, ports, ports_title, ports_rows, app.pane == Pane::Ports, app.selected[1]);
    let shown = app.peers();
    let with_netns = model::several_netns(shown.iter().map(|p| p.netns));
    let peer_rows = shown.into_iter().map(|p| (p.label(with_netns), p.count)).collect();
    let peers_title = if app.hosts.is_some() { " hosts " } else { " top peers " };
    keyed(f, peers, peers_title, peer_rows, app.pane == Pane::Peers, app.selected[2]);
    let owner_rows = app.owners().into_iter().map(|o| (o.owner.clone(), o.count)).collect();
    keyed(f, owners, " by owner ", owner_rows, app.pane == Pane::Owners, app.selected[3]);
    let line = match (&app.snap, app.selected_cause()) {
        (None, _) => "waiting for the first snapshot…".to_string(),
        (Some(_), None) => "no resets yet".to_string(),
        (Some(_), Some(c)) => format!("{}/{}: {}", c.view, c.cause, names::explain(&c.view, &c.cause)),
    };
    f.render_widget(Paragraph::new(line).italic(), explain);
    recent(f, bottom, app);
    status(f, foot, app);
    if app.help {
        help(f, area);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend, crossterm::event::KeyCode};

    use super::*;
    use crate::{
        pipeline::model::{PeerCount, Recent},
        tui::fixtures::{app, key, snap},
    };

    fn screen(app: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>() + "\n").collect()
    }

    #[test]
    fn renders_at_80x24_with_rates_ports_explanation_and_process() {
        let mut a = app();
        key(&mut a, KeyCode::Down); // sent/closed_port
        let s = screen(&a, 80, 24);
        assert!(s.contains("sent               32      10.5/s"), "{s}");
        assert!(s.contains("closed_port          30    10.0   94%"), "{s}");
        assert!(s.contains("9999"), "{s}");
        assert!(s.contains("10.0.0.7"), "{s}");
        assert!(s.contains("a SYN came for a port nobody listens on"), "{s}");
        assert!(s.contains("127.0.0.1:8080 → 127.0.0.1:40000"), "{s}");
        assert!(s.contains("nginx[42]"), "{s}");
        assert!(s.contains("q quit"), "{s}");
    }

    #[test]
    fn renders_at_a_large_size() {
        let s = screen(&app(), 200, 60);
        assert_eq!(s.lines().count(), 60);
        assert!(s.contains("linger_abort") && s.contains("wire_out") && s.contains("recent resets"), "{s}");
    }

    #[test]
    fn the_footer_names_the_sort_and_the_selection_is_explained() {
        let mut a = app();
        key(&mut a, KeyCode::Down);
        key(&mut a, KeyCode::Down);
        key(&mut a, KeyCode::Char('s'));
        key(&mut a, KeyCode::Char('s'));
        let s = screen(&a, 80, 24);
        assert!(s.contains("sort: name"), "{s}");
        assert!(s.contains("sent/linger_abort: a process closed"), "{s}");
    }

    #[test]
    fn filter_by_port_and_selection_drive_the_side_panes() {
        let mut a = app();
        key(&mut a, KeyCode::Down);
        assert_eq!(a.selected_cause().unwrap().cause, "closed_port");
        key(&mut a, KeyCode::Char('/'));
        for c in "443".chars() {
            key(&mut a, KeyCode::Char(c));
        }
        key(&mut a, KeyCode::Enter);
        assert_eq!(a.ports().len(), 1);
        let s = screen(&a, 80, 24);
        assert!(s.contains("filter: 443") && s.contains("443") && !s.contains("9999"), "{s}");
        // Esc while editing clears the filter
        key(&mut a, KeyCode::Char('/'));
        key(&mut a, KeyCode::Esc);
        assert!(a.filter.is_empty());
        // after Enter, Esc clears the active filter before it quits
        key(&mut a, KeyCode::Char('/'));
        key(&mut a, KeyCode::Char('4'));
        key(&mut a, KeyCode::Enter);
        key(&mut a, KeyCode::Esc);
        assert!(a.filter.is_empty() && !a.quit);
        // a filter that matches no sample says so
        key(&mut a, KeyCode::Char('/'));
        for c in "7777".chars() {
            key(&mut a, KeyCode::Char(c));
        }
        assert!(screen(&a, 100, 30).contains("no recent sample matches \"7777\""), "{}", screen(&a, 100, 30));
        key(&mut a, KeyCode::Esc);
        // select the linger_abort row: the ports pane follows
        key(&mut a, KeyCode::Down);
        assert_eq!(a.selected_cause().unwrap().cause, "linger_abort");
        assert!(screen(&a, 80, 24).contains("8080"));
    }

    #[test]
    fn disconnected_state_is_shown_and_keeps_last_data() {
        let mut a = app();
        a.on_error("connection refused".into());
        let s = screen(&a, 80, 24);
        assert!(s.contains("is gone (connection refused); reconnecting"), "{s}");
        assert!(s.contains("closed_port"));
        a.on_snapshot(snap(13.0, 31, 2));
        assert!(screen(&a, 80, 24).contains("daemon 127.0.0.1:9477"));
    }

    #[test]
    fn pause_and_help_show() {
        let mut a = app();
        key(&mut a, KeyCode::Char('p'));
        assert!(screen(&a, 80, 24).contains("PAUSED"));
        key(&mut a, KeyCode::Char('?'));
        assert!(screen(&a, 80, 24).contains("this help"));
    }

    #[test]
    fn alerts_show_in_the_header() {
        let mut a = App::new("127.0.0.1:9477".into());
        let mut s = snap(1.0, 2, 0);
        s.alerts = vec![crate::pipeline::model::Alert {
            kind: "port_scan".into(),
            peer: Some("10.0.0.9".into()),
            port: None,
            since: "2026-12-02T10:00:00.000Z".into(),
            count: 25,
            rate: None,
        }];
        a.on_snapshot(s);
        assert!(screen(&a, 80, 24).contains("ALERT: port_scan 10.0.0.9"));
    }

    #[test]
    fn fleet_mode_ranks_hosts_and_names_them_in_place_of_peers() {
        use crate::pipeline::model::HostRate;
        let mut a = App::new("prometheus http://127.0.0.1:9090".into());
        let mut s = snap(1.0, 2, 0);
        s.peers = vec![PeerCount {
            view: "sent".into(),
            cause: "closed_port".into(),
            addr: "10.79.1.2:9477".into(),
            netns: None,
            count: 2,
        }];
        a.on_snapshot(s);
        a.hosts = Some(vec![
            HostRate { host: "10.79.1.2:9477".into(), rate: 25.0, total: 900 },
            HostRate { host: "10.79.2.2:9477".into(), rate: 0.5, total: 4000 },
        ]);
        let text = screen(&a, 120, 30);
        assert!(text.contains("fleet of 2 hosts"), "{text}");
        assert!(text.contains(" hosts by reset rate"), "{text}");
        let first = text.find("10.79.1.2:9477       25.0/s").expect(&text);
        let second = text.find("10.79.2.2:9477        0.5/s").expect(&text);
        assert!(first < second, "ranked by rate: {text}");
        assert!(text.contains(" hosts ─") || text.contains(" hosts "), "{text}");
        assert!(!text.contains("up 1s"), "no one uptime for a fleet: {text}");
    }

    #[test]
    fn origins_show_in_the_header_and_beside_recent_resets() {
        use crate::pipeline::model::{Evidence, OriginCount};
        let mut a = App::new("127.0.0.1:9477".into());
        let mut s = snap(1.0, 2, 0);
        let row = |origin: &str, count| OriginCount {
            view: "received".into(),
            cause: "refused".into(),
            origin: origin.into(),
            count,
        };
        s.origins = vec![row("peer", 1), row("middlebox", 1)];
        let mut got = Recent::example("10.0.0.1:80", "10.0.0.2:5000", 0, 6_000_000_000);
        (got.view, got.cause, got.pid, got.comm, got.owner) = ("received".into(), "refused".into(), None, None, None);
        got.origin = Some("middlebox".into());
        got.evidence = Some(Evidence { ttl: Some(64), peer_ttl: Some(63), ..Evidence::default() });
        s.recent = vec![got];
        a.on_snapshot(s);
        let text = screen(&a, 160, 30);
        assert!(text.contains("received from peer 1 middlebox 1"), "{text}");
        assert!(text.contains("middlebox ttl 64/63"), "{text}");
    }

    #[test]
    fn owners_pane_and_payloads_in_recent() {
        let mut a = App::new("127.0.0.1:9477".into());
        let mut s = snap(1.0, 2, 3);
        s.owners = vec![crate::pipeline::model::OwnerCount {
            view: "sent".into(),
            cause: "linger_abort".into(),
            owner: "nginx.service".into(),
            cgroup: Some(7),
            cgroup_path: Some("/system.slice/nginx.service".into()),
            count: 3,
        }];
        let mut wire = Recent::example("10.0.0.1:80", "10.0.0.2:5000", 0, 6_000_000_000);
        (wire.view, wire.cause, wire.pid, wire.comm, wire.owner) = ("wire_in".into(), "abort".into(), None, None, None);
        wire.payload = Some(crate::pipeline::payload::Payload::new(12, b"idle timeout"));
        let mut received = Recent::example("10.0.0.1:81", "10.0.0.2:5001", 0, 7_000_000_000);
        (received.view, received.cause, received.pid, received.comm) =
            ("received".into(), "peer_reset".into(), None, None);
        s.recent = vec![received, wire];
        a.on_snapshot(s);
        // select linger_abort (sort by rate is 0 everywhere: count decides, then name)
        while a.selected_cause().is_some_and(|c| c.cause != "linger_abort") {
            key(&mut a, KeyCode::Down);
        }
        let text = screen(&a, 100, 30);
        let line = |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap_or_default().to_string();
        assert!(text.contains("by owner") && line("nginx.service  ").trim_end_matches('│').ends_with(" 3"), "{text}");
        assert!(line("10.0.0.1:80 ").contains("\"idle timeout\""), "printable payload shown: {text}");
        assert!(line("10.0.0.1:81 ").contains("nginx.service"), "the owner when no process: {text}");
        for _ in 0..3 {
            key(&mut a, KeyCode::Tab);
        }
        assert_eq!(a.pane, Pane::Owners);
    }

    #[test]
    fn header_shows_uptime_dropped_samples_and_watched_interfaces() {
        let mut s = snap(3725.0, 2, 0);
        s.samples.dropped = 7;
        s.interfaces = vec![
            crate::pipeline::model::Interface::example("eth0", true),
            crate::pipeline::model::Interface::example("vb", false),
        ];
        let mut a = App::new("127.0.0.1:9477".into());
        a.on_snapshot(s);
        let screen = screen(&a, 120, 30);
        let top = screen.lines().next().unwrap_or_default();
        assert!(top.contains("up 1h02m") && top.contains("samples dropped 7"), "{top}");
        assert!(top.contains("watching eth0, vb (detached)"), "{top}");
        assert_eq!((uptime(12.0), uptime(247.0), uptime(90_000.0)), ("12s".into(), "4m07s".into(), "1d01h".into()));
    }

    #[test]
    fn a_long_ipv6_address_and_port_is_never_cut() {
        let mut s = snap(1.0, 2, 1);
        let long = Recent::example("[2001:db8:ffff:ffff:ffff:ffff:ffff:fff1]:8443", "[2001:db8::77]:47116", 42, 5);
        let mut back = long.clone();
        (back.view, back.cause, back.pid, back.comm) = ("received".into(), "close_with_unread_data".into(), None, None);
        s.recent = vec![long, back];
        let mut a = App::new("127.0.0.1:9477".into());
        a.on_snapshot(s);
        for w in [80, 100, 160] {
            let screen = screen(&a, w, 30);
            // sent: from this host; received: to it (the RST's own way)
            assert!(
                screen.contains("[2001:db8:ffff:ffff:ffff:ffff:ffff:fff1]:8443 → [2001:db8::77]:47116"),
                "{w}: {screen}"
            );
            assert!(
                screen.contains("[2001:db8::77]:47116 → [2001:db8:ffff:ffff:ffff:ffff:ffff:fff1]:8443"),
                "{w}: {screen}"
            );
            assert!(!screen.contains("[2001:db8::7…") && !screen.contains(":84…"), "{w}: {screen}");
        }
        // 160 columns: one line a sample, process included
        let wide = screen(&a, 160, 30);
        let line = wide.lines().find(|l| l.contains(":8443 → ")).unwrap_or_default();
        assert!(line.contains("linger_abort") && line.contains("nginx[42]"), "{wide}");
        // 60 columns: the addresses take two lines, still whole
        let narrow = screen(&a, 60, 30);
        assert!(narrow.contains("[2001:db8:ffff:ffff:ffff:ffff:ffff:fff1]:8443 →"), "{narrow}");
        assert!(narrow.contains("    [2001:db8::77]:47116"), "{narrow}");
        assert_eq!(
            (fit("close_with_unread_data", 8), fit("abc", 8), fit("abc", 0)),
            ("close_w…".into(), "abc".into(), String::new())
        );
    }

    #[test]
    fn namespaces_show_where_several_and_the_sorted_column_is_marked() {
        let mut s = snap(1.0, 2, 1);
        let mut one = Recent::example("127.0.0.1:8080", "127.0.0.1:40000", 42, 5);
        one.netns = Some(11);
        let mut two = one.clone();
        two.netns = Some(12);
        s.recent = vec![one, two];
        s.peers = ["11", "12"]
            .iter()
            .map(|n| PeerCount {
                view: "sent".into(),
                cause: "closed_port".into(),
                addr: "127.0.0.1".into(),
                netns: n.parse().ok(),
                count: 1,
            })
            .collect();
        s.netns = Some(11);
        let mut a = App::new("127.0.0.1:9477".into());
        a.on_snapshot(s);
        let text = screen(&a, 160, 40);
        assert!(text.contains("top ports (that refused)"), "received/refused is selected: {text}");
        key(&mut a, KeyCode::Down);
        let text = screen(&a, 160, 40);
        assert!(text.contains("127.0.0.1:8080 → 127.0.0.1:40000  netns 11"), "{text}");
        assert!(text.contains("127.0.0.1:8080 → 127.0.0.1:40000  netns 12"), "{text}");
        assert!(text.contains("127.0.0.1 (netns 12)"), "{text}");
        assert!(text.lines().next().unwrap_or_default().contains("netns 11 only"), "{text}");
        assert!(text.contains("rate/s▼") && !text.contains("count▼") && !text.contains("that refused"), "{text}");
        key(&mut a, KeyCode::Char('s'));
        assert!(screen(&a, 160, 40).contains("count▼"));
        key(&mut a, KeyCode::Char('s'));
        assert!(screen(&a, 160, 40).contains("cause▲"));
    }

    #[test]
    fn help_is_never_clipped() {
        let mut a = app();
        key(&mut a, KeyCode::Char('?'));
        for (w, h) in [(80, 24), (160, 40), (200, 50)] {
            let s = screen(&a, w, h);
            assert!(s.contains("then quits") && s.contains("any key closes it)"), "{w}x{h}: {s}");
        }
    }

    #[test]
    fn waiting_before_first_snapshot() {
        let a = App::new("127.0.0.1:9477".into());
        let s = screen(&a, 80, 24);
        assert!(s.contains("connecting to 127.0.0.1:9477") && s.contains("waiting for the first snapshot"), "{s}");
        assert!(s.contains("waiting for the daemon at 127.0.0.1:9477"), "no zeros drawn as readings: {s}");
        assert!(!s.contains("sent            0"), "{s}");
    }
}
