//! Draws the viewer: status and filter lines, the scatter (or the selection's
//! list, one transaction with its distributed trace as a waterfall, the
//! selection's merged profile, or the service map), the JVM panels on the
//! right, the endpoint table below, and the help overlay.

use jvmapm_analyzer::glob::Glob;
use jvmapm_analyzer::point::SpanId;
use jvmapm_analyzer::query::answers::{
    ChildSpan, PointRow, Profile, SpanInFull, SpanRecord, Trace, Transaction,
};
use jvmapm_analyzer::query::call_tree::CallTree;
use jvmapm_analyzer::query::profile::summary;
use jvmapm_contract::names::{self, metric};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap};
use ratatui::Frame;
use serde_json::Value;

use crate::app::{App, Screen};
use crate::profile_view::ProfileView;
use crate::scatter::{clock, plot_area, short_duration, ScatterWidget};
use crate::source::SourceError;

/// Width of the panels on the right.
const PANEL_WIDTH: u16 = 36;
/// Rows of the endpoint table, borders included.
const TABLE_HEIGHT: u16 = 9;

/// Where things go on a screen of `area`.
pub struct Areas {
    pub status: Rect,
    pub filter: Rect,
    /// The scatter's block, and the plot inside it.
    pub main: Rect,
    pub plot: Rect,
    pub panels: Rect,
    pub table: Rect,
}

pub fn areas(area: Rect) -> Areas {
    let [status, filter, middle, table] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(TABLE_HEIGHT),
    ])
    .areas(area);
    let panel_width = if area.width >= 80 { PANEL_WIDTH } else { 0 };
    let [main, panels] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(panel_width)]).areas(middle);
    let inner = Block::default().borders(Borders::ALL).inner(main);
    Areas {
        status,
        filter,
        main,
        plot: plot_area(inner),
        panels,
        table,
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let a = areas(frame.area());
    status_line(frame, app, a.status);
    filter_line(frame, app, a.filter);
    match app.screen {
        Screen::Scatter => scatter(frame, app, a.main),
        Screen::List => list(frame, app, a.main),
        Screen::Detail => detail(frame, app, a.main),
        Screen::Profile => area_profile(frame, app, a.main),
        Screen::ServiceMap => service_map(frame, app, a.main),
    }
    if a.panels.width > 0 {
        panels(frame, app, a.panels);
    }
    endpoints(frame, app, a.table);
    if app.help {
        help(frame, frame.area());
    }
}

fn status_line(frame: &mut Frame, app: &App, area: Rect) {
    let mode = if !app.live {
        Span::styled(
            " OFFLINE ",
            Style::default().bg(Color::Blue).fg(Color::White),
        )
    } else if app.following {
        Span::styled(" LIVE ", Style::default().bg(Color::Green).fg(Color::Black))
    } else {
        Span::styled(
            " PAUSED ",
            Style::default().bg(Color::Yellow).fg(Color::Black),
        )
    };
    let in_window = app.grid.as_ref().map_or(0, |g| g.total());
    let mut spans = vec![mode];
    // Trouble first: a long line is cut at the right edge.
    if let Some(trouble) = &app.trouble {
        spans.push(Span::styled(
            format!(" {trouble}; retrying "),
            Style::default().fg(Color::White).bg(Color::Red),
        ));
    }
    spans.push(Span::raw(format!(
        " {} ending {} UTC | {} points, {in_window} in view | y: {} {} up to {}",
        window_label(app.window_ms),
        clock(app.to_ms),
        app.points.len(),
        app.measure.label(),
        if app.log_y { "log" } else { "linear" },
        short_duration(app.y_max_us as f64),
    )));
    if let Some(progress) = &app.progress {
        spans.push(Span::styled(
            format!(" | {progress}"),
            Style::default().fg(Color::Cyan),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn window_label(ms: u64) -> String {
    match ms {
        ms if ms >= 86_400_000 && ms % 3_600_000 == 0 => format!("{}h window", ms / 3_600_000),
        ms if ms >= 120_000 => format!("{}m window", ms / 60_000),
        ms => format!("{}s window", ms / 1000),
    }
}

fn filter_line(frame: &mut Frame, app: &App, area: Rect) {
    let line = match &app.prompt {
        Some((prompt, text)) => Line::from(vec![
            Span::styled(
                format!("{}: ", prompt.label()),
                Style::default().fg(Color::Yellow),
            ),
            Span::raw(text.clone()),
            Span::styled("_", Style::default().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "  (Enter sets, empty clears, Esc cancels)",
                Style::default().fg(Color::Gray),
            ),
        ]),
        None => Line::from(vec![
            Span::styled("filter: ", Style::default().fg(Color::Gray)),
            Span::styled(app.filter().describe(), Style::default().fg(Color::Yellow)),
            Span::styled("   ? keys  q quit", Style::default().fg(Color::Gray)),
        ]),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn scatter(frame: &mut Frame, app: &App, area: Rect) {
    let title = if app.key_box.is_some() {
        " XLog | arrows move, shift+arrows or H/J/K/L resize, Enter lists, Esc cancels ".to_string()
    } else {
        format!(" XLog: {} ", app.measure.label())
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(grid) = &app.grid else {
        return;
    };
    let pauses: Vec<u64> = app.jvm.gc_pauses.iter().map(|p| p.start_ms).collect();
    let widget = ScatterWidget {
        grid,
        gc_pauses: &pauses,
        highlight: app.drag.or(app.key_box),
    };
    frame.render_widget(widget, inner);
}

fn list(frame: &mut Frame, app: &App, area: Rect) {
    let title = match (&app.selection, &app.listed_edge) {
        (Some(s), _) => format!(
            " {} transactions ending {}..{} | Enter opens, p profile, Esc back ",
            app.list.len(),
            clock(s.from_ms),
            clock(s.to_ms)
        ),
        (None, Some((caller, callee))) => format!(
            " {} transactions of {caller} calling {callee} | Enter opens, Esc back to the map ",
            app.list.len()
        ),
        (None, None) => " no selection ".to_string(),
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let rows_shown = usize::from(block.inner(area).height.saturating_sub(1)).max(1);
    let first = app.list_cursor.saturating_sub(rows_shown - 1);
    let rows = app
        .list
        .iter()
        .enumerate()
        .skip(first)
        .take(rows_shown)
        .map(|(i, &index)| {
            let t = &app.points.txns[index];
            let style = match (i == app.list_cursor, t.error) {
                (true, _) => Style::default().add_modifier(Modifier::REVERSED),
                (false, true) => Style::default().fg(Color::Red),
                (false, false) => Style::default(),
            };
            let ms =
                |us: Option<u32>| us.map_or("-".into(), |us| format!("{:.1}", f64::from(us) / 1e3));
            Row::new(vec![
                Cell::from(format!("{}.{:03}", clock(t.end_ms), t.end_ms % 1000)),
                Cell::from(ms(Some(t.elapsed_us))),
                Cell::from(ms(t.cpu_us())),
                Cell::from(ms(t.sql_us())),
                Cell::from(if t.status_code == 0 {
                    "-".to_string()
                } else {
                    t.status_code.to_string()
                }),
                Cell::from(app.points.endpoints.get(t.endpoint).to_string()),
                Cell::from(app.points.services.get(t.service.into()).to_string()),
            ])
            .style(style)
        });
    let header = Row::new([
        "end (UTC)",
        "elapsed ms",
        "cpu ms",
        "sql ms",
        "status",
        "endpoint",
        "service",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Min(12),
        Constraint::Length(14),
    ];
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

/// The narrowest detail screen that shows a profiled transaction's calls
/// in a column of their own beside its profile.
const CALLS_BESIDE_WIDTH: u16 = 110;

fn detail(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" transaction | Up/Down scroll, Esc back ");
    let (lines, calls) = match &app.detail {
        None => (vec![Line::from("reading...")], Vec::new()),
        Some(Err(why)) => (
            vec![Line::styled(
                why.to_string(),
                Style::default().fg(Color::Red),
            )],
            Vec::new(),
        ),
        Some(Ok(d)) => {
            let beside = d.transaction.profile.is_some() && area.width >= CALLS_BESIDE_WIDTH;
            let calls = if beside {
                calls_lines(&d.transaction)
            } else {
                Vec::new()
            };
            let lines = detail_lines(
                &d.transaction,
                d.stuck_stack.as_deref(),
                Some(&d.trace),
                !calls.is_empty(),
            );
            (lines, calls)
        }
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let main = if calls.is_empty() {
        inner
    } else {
        // The profile says where the time went, the calls beside it what
        // the transaction did meanwhile, in time order.
        let [main, side] =
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
                .spacing(1)
                .areas(inner);
        // Scrolled with the rest, but never out of sight.
        let last = calls.len().saturating_sub(usize::from(side.height)) as u16;
        frame.render_widget(
            Paragraph::new(calls).scroll((app.detail_scroll.min(last), 0)),
            side,
        );
        main
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll, 0)),
        main,
    );
}

/// One transaction as lines: its point, its distributed trace, attributes,
/// the calls inside it (steps, SQL, outgoing) unless `calls_beside` (then
/// [`calls_lines`] draws them in a column of their own), stack, profile.
pub fn detail_lines(
    transaction: &Transaction,
    stuck_stack: Option<&str>,
    trace: Option<&Result<Trace, SourceError>>,
    calls_beside: bool,
) -> Vec<Line<'static>> {
    let full = match &transaction.span {
        SpanRecord::Read(full) => Some(full.as_ref()),
        SpanRecord::Unreadable { .. } => None,
    };
    let mut lines = point_lines(&transaction.point, full.map(|f| f.span.name.as_str()));
    if let SpanRecord::Unreadable { detail_error } = &transaction.span {
        lines.push(Line::styled(
            detail_error.clone(),
            Style::default().fg(Color::Red),
        ));
    }
    match trace {
        Some(Ok(trace)) => lines.extend(trace_lines(trace, transaction.point.span_id)),
        Some(Err(why)) => lines.push(Line::styled(
            format!("distributed trace: {why}"),
            Style::default().fg(Color::Red),
        )),
        None => {}
    }
    lines.push(heading("attributes"));
    if let Some(full) = full {
        // A parsed profile is drawn as its tree below, not as its text.
        let drawn_below = |key: &str| transaction.profile.is_some() && key == names::span::PROFILE;
        lines.extend(attribute_lines(
            full.span.attributes.iter().filter(|(k, _)| !drawn_below(k)),
        ));
        if !calls_beside {
            lines.extend(calls_lines(transaction));
        }
    }
    // The stuck stack first: a few lines that say where it hung, where the
    // profile's tree runs long.
    if let Some(stack) = stuck_stack {
        lines.push(heading("stack when it was reported stuck"));
        lines.extend(stack.lines().map(|l| Line::from(format!("  {l}"))));
    }
    if let Some(profile) = &transaction.profile {
        lines.push(heading(&profile_heading(profile)));
        let view = ProfileView::hottest(&profile.tree);
        lines.extend(profile_lines(&profile.tree, &view, None));
    }
    if let Some(full) = full {
        lines.push(heading("resource"));
        lines.extend(attribute_lines(&full.resource));
    }
    lines
}

/// Width of a waterfall's bars, in cells.
const BAR_CELLS: u64 = 30;
/// Deepest indentation of a waterfall's names.
const MAX_INDENT: usize = 12;

/// A distributed trace as a waterfall: every span, under its parent, with
/// its service, start after the trace's first span, duration and a bar on
/// the trace's time; failed spans red, `current` (the transaction open) bold.
pub fn trace_lines(trace: &Trace, current: SpanId) -> Vec<Line<'static>> {
    let first = trace.spans.iter().map(|s| s.start_time_unix_nano).min();
    let last = trace.spans.iter().map(|s| s.end_time_unix_nano).max();
    let (Some(first), Some(last)) = (first, last) else {
        return vec![heading("distributed trace: no span found")];
    };
    let services: std::collections::BTreeSet<&str> =
        trace.spans.iter().map(|s| &*s.service).collect();
    let mut text = format!(
        "distributed trace: {} spans, {} services, {:.1} ms",
        trace.spans.len(),
        services.len(),
        last.saturating_sub(first) as f64 / 1e6
    );
    if trace.truncated > 0 {
        text.push_str(&format!(", {} more not shown", trace.truncated));
    }
    if trace.unreadable > 0 {
        text.push_str(&format!(", {} unreadable", trace.unreadable));
    }
    let mut lines = vec![heading(&text)];
    let total = last.saturating_sub(first).max(1);
    let cells = |ns: u64| ns.saturating_mul(BAR_CELLS) / total;
    lines.extend(trace.spans.iter().map(|span| {
        let offset = span.start_time_unix_nano.saturating_sub(first);
        let duration = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        let lead = cells(offset).min(BAR_CELLS - 1);
        let length = cells(duration).clamp(1, BAR_CELLS - lead);
        let bar = format!(
            "{}{}{}",
            " ".repeat(lead as usize),
            "█".repeat(length as usize),
            " ".repeat((BAR_CELLS - lead - length) as usize)
        );
        let what = what_it_did(&span.attributes, &span.name);
        let kind = span.kind.trim_start_matches("SPAN_KIND_").to_lowercase();
        let missing = if span.parent_missing {
            "  (parent not found)"
        } else {
            ""
        };
        let mut style = Style::default();
        if span.error {
            style = style.fg(Color::Red);
        }
        if span.span_id == current {
            style = style.add_modifier(Modifier::BOLD);
        }
        Line::styled(
            format!(
                "  +{:>8.1} ms {:>8.1} ms |{bar}| {}{}: {kind} {what}{}{missing}",
                offset as f64 / 1e6,
                duration as f64 / 1e6,
                "  ".repeat(span.depth.min(MAX_INDENT)),
                span.service,
                if span.error { " ERROR" } else { "" },
            ),
            style,
        )
    }));
    lines
}

/// What a transaction's profile holds, as the heading of its tree.
fn profile_heading(profile: &Profile) -> String {
    let mut text = format!("profile: {} samples", profile.tree.samples());
    if let Some(us) = profile.interval_us {
        text.push_str(&format!(", one every {}", short_duration(us as f64)));
    }
    if profile.dropped > 0 {
        text.push_str(&format!(", {} not taken", profile.dropped));
    }
    if profile.truncated > 0 {
        text.push_str(&format!(
            ", {} left out by the size bound",
            profile.truncated
        ));
    }
    text
}

/// The rows `view` shows of `tree`: each frame's share of the samples and
/// its count, indented under its caller, marked open or closed when it has
/// callees; thread states in blue, the row at `cursor` reversed.
fn profile_lines(tree: &CallTree, view: &ProfileView, cursor: Option<usize>) -> Vec<Line<'static>> {
    view.rows(tree)
        .into_iter()
        .enumerate()
        .map(|(row, (id, depth))| {
            let node = tree.node(id);
            let marker = match (tree.children(id).is_empty(), view.is_open(id)) {
                (true, _) => "  ",
                (false, true) => "▾ ",
                (false, false) => "▸ ",
            };
            let style = match (Some(row) == cursor, node.frame.starts_with('[')) {
                (true, _) => Style::default().add_modifier(Modifier::REVERSED),
                (false, true) => Style::default().fg(Color::Blue),
                (false, false) => Style::default(),
            };
            Line::styled(
                format!(
                    "{:5.1}% {:>7}  {}{marker}{}",
                    tree.share(id) * 100.0,
                    node.total_samples,
                    "  ".repeat(depth - 1),
                    node.frame
                ),
                style,
            )
        })
        .collect()
}

/// The merged profile of the selection, the row under the cursor in view.
fn area_profile(frame: &mut Frame, app: &App, area: Rect) {
    let title = match &app.profiled {
        Some(a) => format!(
            " profile of the transactions ending {}..{} | arrows move, Right/Left open/close, Esc back ",
            clock(a.from_ms),
            clock(a.to_ms)
        ),
        None => " profile ".to_string(),
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let (lines, cursor) = match &app.area_profile {
        None => (vec![Line::from("reading...")], 0),
        Some(Err(why)) => (
            vec![Line::styled(
                why.to_string(),
                Style::default().fg(Color::Red),
            )],
            0,
        ),
        Some(Ok(answer)) if answer.profile.tree.is_empty() => (
            vec![
                Line::from(summary(answer)),
                Line::from("none of these transactions carries a profile (jvmapm.profile)"),
            ],
            0,
        ),
        Some(Ok(answer)) => {
            let cursor = app.profile_view.cursor;
            let mut lines = vec![heading(&summary(answer))];
            lines.extend(profile_lines(
                &answer.profile.tree,
                &app.profile_view,
                Some(cursor),
            ));
            (lines, cursor + 1)
        }
    };
    let shown = usize::from(block.inner(area).height).max(1);
    let scroll = cursor.saturating_sub(shown - 1) as u16;
    frame.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), area);
}

/// "inside it (N)" over a transaction's children, with the steps the agent
/// counted past its bound but did not send.
/// The calls inside a transaction (steps, SQL, outgoing) in time order,
/// under their heading; none when it has none or its span is unreadable.
pub fn calls_lines(transaction: &Transaction) -> Vec<Line<'static>> {
    let SpanRecord::Read(full) = &transaction.span else {
        return Vec::new();
    };
    if full.children.is_empty() {
        return Vec::new();
    }
    let start = full.span.start_time_unix_nano;
    let mut lines = vec![heading(&inside_heading(full))];
    lines.extend(full.children.iter().map(|c| child_line(c, start)));
    lines
}

fn inside_heading(full: &SpanInFull) -> String {
    let count = full.children.len();
    match full
        .span
        .attributes
        .get(names::span::STEPS_TRUNCATED)
        .and_then(Value::as_u64)
    {
        Some(more) => format!("inside it ({count}, and {more} more steps not kept)"),
        None => format!("inside it ({count})"),
    }
}

fn heading(text: &str) -> Line<'static> {
    Line::styled(
        text.to_string(),
        Style::default().add_modifier(Modifier::BOLD),
    )
}

/// The point's measures and ids, under the span's name when it was read.
fn point_lines(point: &PointRow, span_name: Option<&str>) -> Vec<Line<'static>> {
    let status = point
        .status_code
        .map_or("-".to_string(), |code| code.to_string());
    vec![
        Line::from(format!(
            "{}  {}  {:.1} ms  status {status}  {}",
            span_name.unwrap_or(&point.endpoint),
            point.service,
            point.elapsed_us as f64 / 1e3,
            if point.error { "ERROR" } else { "ok" },
        )),
        Line::from(format!(
            "trace {}  span {}  instance {}",
            point.trace_id, point.span_id, point.instance,
        )),
    ]
}

fn attribute_lines<'a>(
    attributes: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> Vec<Line<'static>> {
    attributes
        .into_iter()
        .map(|(k, v)| Line::from(format!("  {k} = {}", text_of(v))))
        .collect()
}

/// A span inside the transaction: when it started after the transaction,
/// how long it took, and its SQL (or name); red when it failed.
fn child_line(child: &ChildSpan, transaction_start: u64) -> Line<'static> {
    let span = match &child.span {
        SpanRecord::Read(span) => span,
        SpanRecord::Unreadable { detail_error } => {
            return Line::styled(
                format!("  span {}: {detail_error}", child.span_id),
                Style::default().fg(Color::Red),
            )
        }
    };
    let begin = span.start_time_unix_nano;
    let what = what_it_did(&span.attributes, &span.name);
    let failed = span.status.as_ref().is_some_and(|s| s.code == 2);
    let style = if failed {
        Style::default().fg(Color::Red)
    } else {
        Style::default()
    };
    Line::styled(
        format!(
            "  +{:>8.1} ms {:>8.1} ms  {what}",
            begin.saturating_sub(transaction_start) as f64 / 1e6,
            span.end_time_unix_nano.saturating_sub(begin) as f64 / 1e6
        ),
        style,
    )
}

/// What a span inside a transaction did, in a few words: its statement,
/// else the URL it called, else its name.
fn what_it_did<'a>(attributes: &'a serde_json::Map<String, Value>, name: &'a str) -> &'a str {
    [names::span::DB_QUERY_TEXT, names::span::URL_FULL]
        .iter()
        .find_map(|key| attributes.get(*key).and_then(Value::as_str))
        .unwrap_or(name)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The service map of the window: one row an edge, caller to callee, with
/// its calls, errors (red when any), the CLIENT spans' percentiles and the
/// callee's own median time.
fn service_map(frame: &mut Frame, app: &App, area: Rect) {
    let range = app.mapped.map_or(String::new(), |(from, to)| {
        format!(" {}..{}", clock(from), clock(to))
    });
    let title = format!(" service map{range} | Enter lists an edge's calls, Esc back ");
    let block = Block::default().borders(Borders::ALL).title(title);
    let map = match &app.service_map {
        None => {
            frame.render_widget(Paragraph::new("reading...").block(block), area);
            return;
        }
        Some(Err(why)) => {
            let why = Line::styled(why.to_string(), Style::default().fg(Color::Red));
            frame.render_widget(Paragraph::new(why).block(block), area);
            return;
        }
        Some(Ok(map)) => map,
    };
    let mut summary = format!(
        "{} edges, calls from {} of {} transactions read",
        map.edges.len(),
        map.read,
        map.transactions
    );
    if map.unresolved > 0 {
        summary.push_str(&format!(", {} calls with no callee", map.unresolved));
    }
    let [summary_area, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(block.inner(area));
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(summary), summary_area);
    let ms = |v: f64| format!("{v:.1}");
    let rows_shown = usize::from(table_area.height.saturating_sub(1)).max(1);
    let first = app.edge_cursor.saturating_sub(rows_shown - 1);
    let rows = map
        .edges
        .iter()
        .enumerate()
        .skip(first)
        .take(rows_shown)
        .map(|(i, e)| {
            let errors = Cell::from(e.errors.to_string());
            let errors = if e.errors > 0 {
                errors.style(Style::default().fg(Color::Red))
            } else {
                errors
            };
            let callee = if e.callee_is_service {
                e.callee.to_string()
            } else {
                format!("{} (addr)", e.callee)
            };
            let row = Row::new(vec![
                Cell::from(e.caller.to_string()),
                Cell::from(callee),
                Cell::from(e.calls.to_string()),
                errors,
                Cell::from(ms(e.p50_ms)),
                Cell::from(ms(e.p95_ms)),
                Cell::from(ms(e.p99_ms)),
                Cell::from(e.callee_p50_ms.map_or("-".to_string(), ms)),
            ]);
            if i == app.edge_cursor {
                row.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        });
    let header = Row::new([
        "caller",
        "callee",
        "calls",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "callee ms",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Fill(2),
        Constraint::Fill(3),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(9),
    ];
    frame.render_widget(Table::new(rows, widths).header(header), table_area);
}

fn panels(frame: &mut Frame, app: &App, area: Rect) {
    let [tps, active, heap, finalizer] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Min(3),
        Constraint::Length(5),
    ])
    .areas(area);
    tps_panel(frame, app, tps);
    active_panel(frame, app, active);
    heap_panel(frame, app, heap);
    finalizer_panel(frame, app, finalizer);
}

/// Transactions per second over the last seconds of the window.
fn tps_panel(frame: &mut Frame, app: &App, tps: Rect) {
    let width = u64::from(tps.width.saturating_sub(2)).max(1);
    let last = app.to_ms / 1000;
    let counts: Vec<u64> = (last.saturating_sub(width - 1)..=last)
        .map(|s| u64::from(app.per_second.get(&s).copied().unwrap_or(0)))
        .collect();
    let now = counts.last().copied().unwrap_or(0);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" TPS {now} "));
    frame.render_widget(
        Sparkline::default()
            .block(block)
            .data(&counts)
            .style(Style::default().fg(Color::Cyan)),
        tps,
    );
}

/// Transactions of the chosen instance running now, by age.
fn active_panel(frame: &mut Frame, app: &App, active: Rect) {
    let instance = app
        .instance_label()
        .unwrap_or_else(|| "no instance".to_string());
    let by_age = app.latest(metric::TRANSACTIONS_ACTIVE);
    let lines: Vec<Line> = [
        (metric::AGES[0], Color::Cyan),
        (metric::AGES[1], Color::Yellow),
        (metric::AGES[2], Color::Red),
    ]
    .iter()
    .map(|(age, color)| {
        let n = by_age
            .iter()
            .filter(|(attrs, _)| attrs == &format!("{}={age}", metric::AGE))
            .map(|(_, v)| *v)
            .sum::<f64>() as u64;
        let bar = "█".repeat((n as usize).min(usize::from(active.width.saturating_sub(14))));
        Line::from(vec![
            Span::raw(format!("{age:>5} {n:>5} ")),
            Span::styled(bar, Style::default().fg(*color)),
        ])
    })
    .collect();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" active: {instance} "));
    frame.render_widget(Paragraph::new(lines).block(block), active);
}

/// The chosen instance's heap pools, used of their limit.
fn heap_panel(frame: &mut Frame, app: &App, heap: Rect) {
    let limits = app.latest(metric::MEMORY_LIMIT);
    let heap_type = format!("{}={}", metric::MEMORY_TYPE, metric::MEMORY_TYPE_HEAP);
    let pool_name = format!("{}=", metric::MEMORY_POOL_NAME);
    let mut pools: Vec<Line> = app
        .latest(metric::MEMORY_USED)
        .into_iter()
        .filter(|(attrs, _)| attrs.contains(&heap_type))
        .map(|(attrs, used)| {
            let name = attrs
                .split(',')
                .find_map(|kv| kv.strip_prefix(pool_name.as_str()))
                .unwrap_or("?")
                .to_string();
            let limit = limits.iter().find(|(a, _)| *a == attrs).map(|(_, v)| *v);
            let mb = |b: f64| b / 1_048_576.0;
            Line::from(match limit {
                Some(limit) if limit > 0.0 => {
                    format!("{name:<17.17} {:>5.0}/{:.0} MB", mb(used), mb(limit))
                }
                _ => format!("{name:<17.17} {:>5.0} MB", mb(used)),
            })
        })
        .collect();
    if pools.is_empty() {
        pools.push(Line::styled(
            "no heap data yet",
            Style::default().fg(Color::Gray),
        ));
    }
    frame.render_widget(
        Paragraph::new(pools).block(Block::default().borders(Borders::ALL).title(" heap used ")),
        heap,
    );
}

/// Objects waiting for finalization, over time.
fn finalizer_panel(frame: &mut Frame, app: &App, finalizer: Rect) {
    let pending: Vec<u64> = app
        .jvm
        .series
        .get(metric::FINALIZER_PENDING)
        .map(|values| values.iter().map(|(_, v)| *v as u64).collect())
        .unwrap_or_default();
    let shown = &pending[pending
        .len()
        .saturating_sub(usize::from(finalizer.width.saturating_sub(2)))..];
    let title = match pending.last() {
        Some(n) => format!(" Finalizer pending {n} "),
        None => " Finalizer pending: no data ".to_string(),
    };
    frame.render_widget(
        Sparkline::default()
            .block(Block::default().borders(Borders::ALL).title(title))
            .data(shown)
            .style(Style::default().fg(Color::Magenta)),
        finalizer,
    );
}

fn endpoints(frame: &mut Frame, app: &App, area: Rect) {
    let service = app.filter().service.as_deref().map(Glob::new);
    let endpoint = app.filter().endpoint.as_deref().map(Glob::new);
    let mut rows: Vec<_> = app
        .stats
        .iter()
        .filter(|r| service.as_ref().is_none_or(|g| g.matches(&r.service)))
        .filter(|r| endpoint.as_ref().is_none_or(|g| g.matches(&r.endpoint)))
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.endpoint.cmp(&b.endpoint)));
    let ms = |v: f64| format!("{v:.1}");
    let table_rows = rows.iter().map(|r| {
        let style = if r.errors > 0 {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        Row::new(vec![
            r.endpoint.clone(),
            r.service.clone(),
            r.count.to_string(),
            r.errors.to_string(),
            ms(r.p50_ms),
            ms(r.p95_ms),
            ms(r.p99_ms),
            ms(r.max_ms),
        ])
        .style(style)
    });
    let header = Row::new([
        "endpoint", "service", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Min(16),
        Constraint::Length(14),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" endpoints in the window (by count) ");
    frame.render_widget(
        Table::new(table_rows, widths).header(header).block(block),
        area,
    );
}

/// Every key, for the `?` overlay.
pub const KEYS: &[(&str, &str)] = &[
    (
        "Left / Right",
        "move the window back / forward by a quarter",
    ),
    ("+ / -", "narrow / widen the window"),
    ("Up / Down", "double / halve the Y maximum"),
    ("l", "linear / logarithmic Y"),
    ("m", "Y measure: elapsed, cpu, sql, outgoing time"),
    ("p or Space", "pause / resume following (live)"),
    ("mouse drag", "select an area and list its transactions"),
    (
        "v",
        "select with keys: arrows move, shift+arrows or H/J/K/L resize",
    ),
    ("a or Enter", "list every transaction in view"),
    (
        "Enter (list)",
        "open the transaction and its distributed trace",
    ),
    (
        "p (list)",
        "profile: where the listed transactions spent their time",
    ),
    ("Right / Left", "open / close a frame of a profile"),
    ("g", "service map: calls between services in the window"),
    (
        "Enter (map)",
        "list the transactions that made an edge's calls",
    ),
    (
        "Esc",
        "back (list, transaction, map); quit from the scatter",
    ),
    ("s", "service glob filter"),
    ("/", "endpoint glob filter"),
    ("> / <", "elapsed at least / at most (ms)"),
    ("e", "errors only on / off"),
    ("c", "clear all filters"),
    ("i", "next instance for the JVM panels"),
    ("?", "this help (any key closes it)"),
    ("q or Ctrl-C", "quit"),
];

fn help(frame: &mut Frame, area: Rect) {
    let width = 72.min(area.width);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<14}"), Style::default().fg(Color::Yellow)),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Config;
    use crate::fetcher::Update;
    use crate::source::{Printable, Source, SourceError};
    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use jvmapm_analyzer::point::{SpanId, TraceId};
    use jvmapm_analyzer::query::answers::{
        AreaProfile, EdgeCalls, InstanceList, Profile, ServiceMap, Stats, Trace, XlogPage,
    };
    use jvmapm_analyzer::query::call_tree::CallTree;
    use jvmapm_analyzer::query::jvm::JvmView;
    use jvmapm_analyzer::query::profile::Area;
    use jvmapm_analyzer::store::instances::InstanceInfo;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use serde_json::json;

    /// A transaction as the API sends it: `fields` over a read span of
    /// `GET /orders` with no children.
    fn transaction(fields: Value) -> Transaction {
        let mut json = json!({
            "end_ms": 2_000, "elapsed_us": 12_500, "service": "shop", "instance": "shop-1",
            "endpoint": "/orders", "status_code": 200, "error": false,
            "trace_id": "ab".repeat(16), "span_id": "cd".repeat(8),
            "cpu_us": null, "sql_count": null, "sql_us": null,
            "name": "GET /orders", "kind": "SPAN_KIND_SERVER", "parent_span_id": "",
            "start_time_unix_nano": 1_000_000_000u64, "end_time_unix_nano": 1_012_500_000u64,
            "status": null, "attributes": {}, "events": [],
            "resource": {}, "scope": null, "children": [],
        });
        let (Value::Object(base), Value::Object(fields)) = (&mut json, fields) else {
            panic!("objects");
        };
        base.extend(fields);
        if base.contains_key("detail_error") {
            for span_field in ["name", "kind", "parent_span_id", "resource", "children"] {
                base.remove(span_field);
            }
        }
        serde_json::from_value(json).unwrap()
    }

    fn text(lines: Vec<Line>) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn a_transaction_shows_its_attributes_sql_and_stack() {
        let detail = transaction(json!({
            "attributes": {"http.route": "/orders", "jvmapm.stuck": true},
            "children": [{
                "name": "SELECT", "kind": "SPAN_KIND_CLIENT", "span_id": "ef".repeat(8),
                "parent_span_id": "cd".repeat(8), "start_time_unix_nano": 1_002_000_000u64,
                "end_time_unix_nano": 1_005_500_000u64, "status": null, "events": [],
                "attributes": {"db.query.text": "SELECT * FROM orders WHERE id = ?"}
            }, {
                "span_id": "01".repeat(8), "detail_error": "its segment is past retention"
            }],
            "resource": {"host.name": "vm"}
        }));
        let text = text(detail_lines(
            &detail,
            Some("at Shop.load(Shop.java:12)"),
            None,
            false,
        ));
        let has = |needle: &str| text.iter().any(|l| l.contains(needle));
        assert!(
            has("GET /orders  shop  12.5 ms  status 200  ok"),
            "{text:#?}"
        );
        assert!(has("http.route = /orders"));
        assert!(has("inside it (2)"));
        assert!(
            has("+     2.0 ms      3.5 ms  SELECT * FROM orders WHERE id = ?"),
            "{text:#?}"
        );
        assert!(has("0101010101010101: its segment is past retention"));
        assert!(has("stack when it was reported stuck"));
        assert!(has("  at Shop.load(Shop.java:12)"));
        assert!(has("host.name = vm"));
    }

    #[test]
    fn a_profiled_transaction_shows_its_tree_with_the_hottest_path_open() {
        let folded = "Thread.run;Shop.slow;Shop.compute;[running] 7\n\
                      Thread.run;Shop.slow;Db.query;[native] 2\n\
                      Thread.run;Shop.slow;Db.query;Db.parse;[running] 1\n";
        let mut detail = transaction(json!({"attributes": {names::span::PROFILE: folded}}));
        detail.profile = Some(Box::new(Profile {
            tree: CallTree::parse(folded),
            samples: 10,
            dropped: 0,
            truncated: 3,
            interval_us: Some(10_000),
        }));
        let lines = text(detail_lines(&detail, None, None, false));
        let at = lines
            .iter()
            .position(|l| l.starts_with("profile:"))
            .unwrap();
        assert_eq!(
            lines[at..at + 6],
            [
                "profile: 10 samples, one every 10ms, 3 left out by the size bound",
                "100.0%      10  ▾ Thread.run",
                "100.0%      10    ▾ Shop.slow",
                " 70.0%       7      ▾ Shop.compute",
                " 70.0%       7          [running]",
                " 30.0%       3      ▸ Db.query",
            ]
        );
        assert!(
            !lines.iter().any(|l| l.contains(names::span::PROFILE)),
            "the raw folded text is not shown: {lines:#?}"
        );
    }

    #[test]
    fn a_wide_screen_shows_a_profiled_transactions_calls_beside_its_profile() {
        let folded = "Thread.run;Shop.slow;Shop.compute;[running] 7\n";
        let mut transaction = transaction(json!({
            "attributes": {names::span::PROFILE: folded},
            "children": [{
                "name": "SELECT", "kind": "SPAN_KIND_CLIENT", "span_id": "ef".repeat(8),
                "parent_span_id": "cd".repeat(8), "start_time_unix_nano": 1_002_000_000u64,
                "end_time_unix_nano": 1_005_500_000u64, "status": null, "events": [],
                "attributes": {"db.query.text": "SELECT stock FROM items"}
            }],
        }));
        transaction.profile = Some(Box::new(Profile {
            tree: CallTree::parse(folded),
            samples: 7,
            dropped: 0,
            truncated: 0,
            interval_us: Some(10_000),
        }));
        let mut app = offline_app();
        app.screen = Screen::Detail;
        app.detail = Some(Ok(Box::new(crate::fetcher::Detail {
            transaction,
            stuck_stack: None,
            trace: Err(SourceError::Client("not asked".into())),
        })));
        let row_of = |lines: &[String], needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in {lines:#?}"))
        };

        let wide = screen_of(&app, 160, 40);
        let calls = row_of(&wide, "inside it (1)");
        assert!(
            wide[calls].find("inside it").unwrap() > 60,
            "in the right column: {wide:#?}"
        );
        assert!(
            row_of(&wide, "SELECT stock FROM items") == calls + 1,
            "{wide:#?}"
        );
        assert!(
            row_of(&wide, "profile: 7 samples") > calls,
            "the profile starts lower, on the left: {wide:#?}"
        );

        let narrow = screen_of(&app, 120, 40);
        let calls = row_of(&narrow, "inside it (1)");
        assert!(
            narrow[calls].find("inside it").unwrap() < 5,
            "one column: {narrow:#?}"
        );
        assert!(row_of(&narrow, "profile: 7 samples") > calls, "{narrow:#?}");
    }

    #[test]
    fn the_profile_screen_shows_what_was_read_and_the_tree() {
        let mut app = offline_app();
        app.screen = Screen::Profile;
        app.profiled = Some(Area {
            from_ms: 10_000,
            to_ms: 20_000,
            ..Area::default()
        });
        assert!(screen(&app).iter().any(|l| l.contains("reading...")));
        let tree = CallTree::parse("Shop.run;[sleeping] 3\nShop.run;[running] 1\n");
        app.update(Update::Profile(Ok(Box::new(AreaProfile {
            profile: Profile {
                tree,
                samples: 4,
                ..Profile::default()
            },
            transactions: 5,
            read: 5,
            with_profile: 2,
        }))));
        let lines = screen(&app);
        let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
        assert!(
            has("4 samples from 2 transactions with a profile (5 read of 5 in the area)"),
            "{lines:#?}"
        );
        assert!(has("100.0%       4  ▾ Shop.run"), "{lines:#?}");
        assert!(has(" 75.0%       3      [sleeping]"), "{lines:#?}");
        assert!(
            has("profile of the transactions ending 00:00:10..00:00:20"),
            "{lines:#?}"
        );

        app.update(Update::Profile(Ok(Box::default())));
        assert!(screen(&app)
            .iter()
            .any(|l| l.contains("none of these transactions carries a profile")));
    }

    /// Steps (hooked methods called inside the transaction) are listed with
    /// its SQL in the order they started, each by its method and elapsed
    /// time; the steps past the agent's bound are said in the heading.
    #[test]
    fn steps_show_beside_sql_in_time_order_with_their_elapsed_time() {
        let child = |name: &str, kind: &str, id: &str, start_ms: u64, end_ms: u64, attributes| {
            json!({
                "name": name, "kind": kind, "span_id": id.repeat(8),
                "parent_span_id": "cd".repeat(8),
                "start_time_unix_nano": 1_000_000_000 + start_ms * 1_000_000,
                "end_time_unix_nano": 1_000_000_000 + end_ms * 1_000_000,
                "status": null, "events": [], "attributes": attributes,
            })
        };
        let step = json!({"code.namespace": "com.acme.Orders", "code.function": "price"});
        let detail = transaction(json!({
            "end_time_unix_nano": 1_100_000_000u64,
            "attributes": {"jvmapm.steps.truncated": 44},
            "children": [
                child("com.acme.Orders.price", "SPAN_KIND_INTERNAL", "01", 1, 31, step.clone()),
                child("SELECT", "SPAN_KIND_CLIENT", "02", 32, 40,
                    json!({"db.query.text": "SELECT 1"})),
                child("com.acme.Orders.price", "SPAN_KIND_INTERNAL", "03", 41, 72, step),
            ],
        }));
        let text = text(detail_lines(&detail, None, None, false));
        let inside = text
            .iter()
            .position(|l| l == "inside it (3, and 44 more steps not kept)")
            .unwrap_or_else(|| panic!("{text:#?}"));
        assert_eq!(
            text[inside + 1..inside + 4],
            [
                "  +     1.0 ms     30.0 ms  com.acme.Orders.price",
                "  +    32.0 ms      8.0 ms  SELECT 1",
                "  +    41.0 ms     31.0 ms  com.acme.Orders.price",
            ]
        );
    }

    #[test]
    fn a_trace_is_a_waterfall_across_services_with_failures_marked() {
        let span = |id: &str,
                    parent: Option<usize>,
                    depth,
                    service: &str,
                    name: &str,
                    times: (u64, u64),
                    error,
                    extra: Value| {
            let mut json = json!({
                "span_id": id.repeat(8), "parent_span_id": "", "parent": parent, "depth": depth,
                "parent_missing": false, "service": service, "instance": "i", "name": name,
                "kind": "SPAN_KIND_SERVER", "start_time_unix_nano": times.0,
                "end_time_unix_nano": times.1, "error": error, "endpoint": null, "attributes": {},
            });
            let (Value::Object(base), Value::Object(extra)) = (&mut json, extra) else {
                panic!("objects");
            };
            base.extend(extra);
            serde_json::from_value(json).unwrap()
        };
        let trace = Trace {
            trace_id: TraceId::from([1; 16]),
            from_ms: 0,
            to_ms: 1,
            spans: vec![
                span(
                    "cd",
                    None,
                    0,
                    "shop",
                    "GET /checkout",
                    (0, 100_000_000),
                    false,
                    json!({}),
                ),
                span(
                    "01",
                    Some(0),
                    1,
                    "shop",
                    "GET",
                    (10_000_000, 60_000_000),
                    false,
                    json!({"kind": "SPAN_KIND_CLIENT", "attributes": {"url.full": "http://stock/items"}}),
                ),
                span(
                    "02",
                    Some(1),
                    2,
                    "stock",
                    "GET /items",
                    (20_000_000, 50_000_000),
                    false,
                    json!({}),
                ),
                span(
                    "03",
                    Some(0),
                    1,
                    "shop",
                    "GET",
                    (70_000_000, 75_000_000),
                    true,
                    json!({"kind": "SPAN_KIND_CLIENT", "attributes": {"url.full": "http://127.0.0.1:9/"}}),
                ),
                span(
                    "04",
                    None,
                    0,
                    "stock",
                    "SELECT",
                    (30_000_000, 40_000_000),
                    false,
                    json!({"parent_missing": true, "parent_span_id": "05".repeat(8)}),
                ),
            ],
            truncated: 0,
            unreadable: 1,
        };
        let lines = trace_lines(&trace, SpanId::from([0xcd; 8]));
        let text = text(lines.clone());
        assert_eq!(
            text,
            [
                "distributed trace: 5 spans, 2 services, 100.0 ms, 1 unreadable",
                "  +     0.0 ms    100.0 ms |██████████████████████████████| shop: server GET /checkout",
                "  +    10.0 ms     50.0 ms |   ███████████████            |   shop: client http://stock/items",
                "  +    20.0 ms     30.0 ms |      █████████               |     stock: server GET /items",
                "  +    70.0 ms      5.0 ms |                     █        |   shop: client http://127.0.0.1:9/ ERROR",
                "  +    30.0 ms     10.0 ms |         ███                  | stock: server SELECT  (parent not found)",
            ]
        );
        assert_eq!(lines[4].style.fg, Some(Color::Red), "the failed call");
        assert!(
            lines[1].style.add_modifier.contains(Modifier::BOLD),
            "the open one"
        );
    }

    #[test]
    fn the_service_map_lists_edges_with_errors_in_red() {
        let mut app = offline_app();
        app.mapped = Some((0, 60_000));
        app.screen = Screen::ServiceMap;
        assert!(screen(&app).iter().any(|l| l.contains("reading...")));
        let edge = |callee: &str, is_service, errors| {
            serde_json::from_value(json!({
                "caller": "shop", "callee": callee, "callee_is_service": is_service, "calls": 4,
                "errors": errors, "p50_ms": 12.0, "p95_ms": 30.5, "p99_ms": 41.0,
                "callee_p50_ms": if is_service { json!(9.0) } else { json!(null) },
            }))
            .unwrap()
        };
        app.update(Update::ServiceMap(Ok(Box::new(ServiceMap {
            from_ms: 0,
            to_ms: 60_000,
            edges: vec![edge("stock", true, 0), edge("127.0.0.1:9", false, 4)],
            transactions: 10,
            read: 10,
            unresolved: 2,
        }))));
        let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
        terminal.draw(|frame| draw(frame, &app)).unwrap();
        let buffer = terminal.backend().buffer();
        let lines: Vec<String> = (0..30)
            .map(|y| (0..120).map(|x| buffer[(x, y)].symbol()).collect())
            .collect();
        let has = |needle: &str| lines.iter().position(|l| l.contains(needle));
        assert!(
            has("2 edges, calls from 10 of 10 transactions read, 2 calls with no callee").is_some(),
            "{lines:#?}"
        );
        let stock = has("stock").unwrap();
        assert!(
            lines[stock].contains("12.0") && lines[stock].contains("9.0"),
            "{lines:#?}"
        );
        let closed = has("127.0.0.1:9 (addr)").unwrap_or_else(|| panic!("{lines:#?}"));
        let red = (0..120u16).any(|x| {
            buffer[(x, closed as u16)].fg == Color::Red
                && buffer[(x, closed as u16)].symbol() == "4"
        });
        assert!(red, "errors in red: {lines:#?}");
    }

    /// The screen of `app` on a 120 x 30 terminal, line by line.
    fn screen(app: &App) -> Vec<String> {
        screen_of(app, 120, 30)
    }

    /// The screen of `app` on a terminal of `width` x `height`.
    fn screen_of(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect()
            })
            .collect()
    }

    /// A viewer of a past minute (offline), with nothing loaded yet.
    fn offline_app() -> App {
        let config = Config {
            window_ms: 60_000,
            to_ms: Some(60_000),
            live: false,
            slow_ms: 800,
            y_max_ms: 1_000,
            panels_service: None,
        };
        App::new(&config, 60_000)
    }

    #[test]
    fn the_panels_name_an_instance_by_service_host_and_pid() {
        let mut app = offline_app();
        let hex_id = "f444e8abf2e375e57ba9795da1c0ffee";
        let instance = |id: &str, last_seen_ms, attributes: &[(&str, &str)]| InstanceInfo {
            service: "orders".into(),
            instance: id.into(),
            first_seen_ms: 0,
            last_seen_ms,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        app.update(Update::Instances(vec![
            instance(
                hex_id,
                2,
                &[("host.name", "web-01"), ("process.pid", "4242")],
            ),
            instance("orders-7", 1, &[]),
        ]));
        let has = |app: &App, needle: &str| screen(app).iter().any(|l| l.contains(needle));
        assert!(
            has(&app, "active: orders@web-01:4242"),
            "{:#?}",
            screen(&app)
        );
        assert!(!has(&app, "f444e8ab"), "no id where the label is");
        app.handle(&Event::Key(KeyEvent::new(
            KeyCode::Char('i'),
            KeyModifiers::NONE,
        )));
        assert!(
            has(&app, "active: orders-7 "),
            "no host and pid: the id; {:#?}",
            screen(&app)
        );
        assert_eq!(app.instance.as_deref(), Some("orders-7"), "asked by id");

        // The transaction in full keeps the whole id.
        let detail = transaction(json!({"instance": hex_id}));
        let text = text(detail_lines(&detail, None, None, false));
        assert!(
            text[1].ends_with(&format!("instance {hex_id}")),
            "{text:#?}"
        );
    }

    /// A source that answers with hostile names, as a forged export makes them.
    struct Hostile;

    const HOSTILE: &str = "shop\u{1b}]2;owned\u{7}\u{1b}[2J";

    impl Source for Hostile {
        fn describe(&self) -> String {
            "hostile".into()
        }
        fn xlog(&mut self, _: u64, _: u64, _: u64) -> Result<XlogPage, SourceError> {
            let point = transaction(json!({
                "end_ms": 30_000, "elapsed_us": 25_000, "service": HOSTILE,
                "instance": HOSTILE, "endpoint": format!("/pay{HOSTILE}"),
            }))
            .point;
            Ok(XlogPage {
                points: vec![point],
                cursor: 1,
            })
        }
        fn stats(&mut self, _: u64, _: u64) -> Result<Stats, SourceError> {
            Err(SourceError::Refused {
                url: "http://hostile".into(),
                status: "400 Bad Request".into(),
                reason: format!("bad answer {HOSTILE}"),
            })
        }
        fn instances(&mut self) -> Result<InstanceList, SourceError> {
            Ok(InstanceList::default())
        }
        fn jvm(&mut self, _: &str, _: u64, _: u64) -> Result<JvmView, SourceError> {
            Ok(JvmView::default())
        }
        fn transaction(
            &mut self,
            _: TraceId,
            _: SpanId,
            _: u64,
        ) -> Result<Transaction, SourceError> {
            Ok(transaction(json!({
                "name": HOSTILE,
                "attributes": {HOSTILE: HOSTILE},
                "resource": {HOSTILE: [HOSTILE]},
            })))
        }
        fn profile(&mut self, _: &Area, _: usize) -> Result<AreaProfile, SourceError> {
            Ok(AreaProfile {
                profile: Profile {
                    tree: CallTree::parse(&format!("Main.run;{HOSTILE} 3\n")),
                    ..Profile::default()
                },
                ..AreaProfile::default()
            })
        }
        fn trace(&mut self, trace_id: TraceId, _: u64) -> Result<Trace, SourceError> {
            let span = json!({
                "span_id": "cd".repeat(8), "parent_span_id": "", "parent": null, "depth": 0,
                "parent_missing": false, "service": HOSTILE, "instance": HOSTILE,
                "name": HOSTILE, "kind": HOSTILE, "start_time_unix_nano": 1_000,
                "end_time_unix_nano": 2_000, "error": true, "endpoint": HOSTILE,
                "attributes": {"url.full": HOSTILE},
            });
            Ok(Trace {
                trace_id,
                from_ms: 0,
                to_ms: 1,
                spans: vec![serde_json::from_value(span).unwrap()],
                truncated: 0,
                unreadable: 0,
            })
        }
        fn service_map(&mut self, from_ms: u64, to_ms: u64) -> Result<ServiceMap, SourceError> {
            let edge = json!({
                "caller": HOSTILE, "callee": HOSTILE, "callee_is_service": true, "calls": 3,
                "errors": 1, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "callee_p50_ms": null,
            });
            Ok(ServiceMap {
                from_ms,
                to_ms,
                edges: vec![serde_json::from_value(edge).unwrap()],
                ..ServiceMap::default()
            })
        }
        fn edge_calls(
            &mut self,
            from_ms: u64,
            to_ms: u64,
            _: &str,
            _: &str,
        ) -> Result<EdgeCalls, SourceError> {
            Ok(EdgeCalls {
                points: self.xlog(from_ms, to_ms, 0)?.points,
                truncated: 0,
            })
        }
    }

    /// Regression: a span whose service name held `ESC]2;...BEL ESC[2J`
    /// retitled and cleared the terminal running `jvmapm xlog`.
    #[test]
    fn escape_sequences_from_the_wire_never_reach_the_terminal() {
        let mut source = Printable(Box::new(Hostile));
        let rows = source.xlog(0, 60_000, 0).unwrap().points;
        let mut app = offline_app();
        app.update(Update::Points(rows));
        app.update(Update::Trouble(source.stats(0, 1).err()));
        let lines = screen(&app);
        let text = lines.join("\n");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{lines:#?}"
        );
        assert!(text.contains("shop\u{FFFD}]2;owned"), "{lines:#?}");
        let detail = source
            .transaction(TraceId::from([1; 16]), SpanId::from([2; 8]), 30_000)
            .unwrap();
        let trace = source.trace(TraceId::from([1; 16]), 30_000);
        for line in detail_lines(&detail, None, Some(&trace), false) {
            assert!(!line.to_string().chars().any(char::is_control), "{line}");
        }
        app.update(Update::ServiceMap(
            source.service_map(0, 60_000).map(Box::new),
        ));
        app.screen = Screen::ServiceMap;
        let map = screen(&app).join("\n");
        assert!(!map.contains('\u{1b}') && !map.contains('\u{7}'), "{map}");
        assert!(map.contains("shop\u{FFFD}]2;owned"), "{map}");
        let calls = source.edge_calls(0, 60_000, "a", "b").unwrap();
        assert!(calls.points.iter().all(|p| !p.service.contains('\u{1b}')));
        let profile = source.profile(&Area::default(), 1).unwrap().profile;
        assert_eq!(profile.tree.samples(), 3);
        let folded = profile.tree.folded();
        assert!(!folded.trim_end().contains(char::is_control), "{folded}");
    }

    #[test]
    fn a_transaction_without_an_http_status_shows_a_dash() {
        let detail = transaction(json!({
            "endpoint": "POST /pay", "elapsed_us": 25_000, "status_code": null, "error": true,
            "detail_error": "damaged span record",
        }));
        let lines = text(detail_lines(&detail, None, None, false));
        assert_eq!(lines[0], "POST /pay  shop  25.0 ms  status -  ERROR");
        assert_eq!(lines[2], "damaged span record");
    }
}
