//! Which exposition format a scraper gets: OpenMetrics when its `Accept`
//! header asks for it, the Prometheus text format 0.0.4 otherwise — the
//! negotiation node_exporter does.
//!
//! prometheus-client encodes OpenMetrics only, so the text format is made
//! from its output. The two differ in three ways for the counters and
//! gauges we export: a counter family's `# HELP`/`# TYPE` name the sample
//! (`rstwatch_resets_total`), not the family (`rstwatch_resets`); there is no
//! `# UNIT` and no `# EOF`. Samples and label escaping are the same.

use std::fmt::Write as _;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// From the request's `Accept` header (absent: the text format).
    #[must_use]
    pub fn negotiate(accept: Option<&str>) -> Self {
        let asks = accept.is_some_and(|a| {
            a.split(',').any(|m| {
                let mut parts = m.split(';').map(str::trim);
                let q_zero = m.split(';').any(|p| p.trim().replace(' ', "") == "q=0");
                parts.next().is_some_and(|t| t.eq_ignore_ascii_case("application/openmetrics-text")) && !q_zero
            })
        });
        if asks { Self::OpenMetrics } else { Self::Text }
    }

    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS,
            Self::Text => TEXT,
        }
    }
}

/// The Prometheus text format 0.0.4 of an OpenMetrics exposition (counters and gauges).
#[must_use]
pub fn to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{family}_total"), "counter"),
                "gauge" => (family.to_string(), "gauge"),
                _ => (family.to_string(), "untyped"),
            };
            if let Some(h) = help.take() {
                let text = h.strip_prefix(family).map_or(h, str::trim_start);
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain; version=0.0.4")), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        // Prometheus 2.x's own scrape Accept header
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text; q=0")), Format::Text);
    }

    #[test]
    fn counters_are_named_by_their_samples_without_eof() {
        let om = "# HELP rstwatch_resets TCP resets.\n# TYPE rstwatch_resets counter\nrstwatch_resets_total{view=\"sent\"} 3\n\
# HELP rstwatch_keys Keys.\n# TYPE rstwatch_keys gauge\nrstwatch_keys{map=\"ports\"} 1\n# EOF\n";
        assert_eq!(
            to_text(om),
            "# HELP rstwatch_resets_total TCP resets.\n# TYPE rstwatch_resets_total counter\nrstwatch_resets_total{view=\"sent\"} 3\n\
# HELP rstwatch_keys Keys.\n# TYPE rstwatch_keys gauge\nrstwatch_keys{map=\"ports\"} 1\n"
        );
    }
}
