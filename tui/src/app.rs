//! The viewer's state and what keys and the mouse do to it, apart from any
//! terminal: tests drive it with events and read the state back.
//!
//! The state holds the transactions, the view (window, Y scale, measure,
//! filter), the count grid drawn from them, the selection and its list, the
//! open transaction, the merged profile of the selection, the service map
//! of the window (whose edges list their calls in the same list), and the
//! panels' data. What it needs from the source goes
//! into an outbox the run loop hands to the fetcher.

use std::collections::BTreeMap;

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use jvmapm_analyzer::meter::EndpointStats;
use jvmapm_analyzer::query::answers::{AreaProfile, EdgeCalls, PointRow, ServiceMap};
use jvmapm_analyzer::query::jvm::JvmView;
use jvmapm_analyzer::query::profile::Area;
use jvmapm_analyzer::store::instances::InstanceInfo;
use jvmapm_contract::names::resource;

use crate::fetcher::{Detail, Request, Update};
use crate::points::{CompiledFilter, Filter, Measure, Points};
use crate::profile_view::ProfileView;
use crate::scatter::{Grid, Selection, TimeScale, YScale};
use crate::source::SourceError;

/// Narrowest and widest window.
const MIN_WINDOW_MS: u64 = 10_000;
const MAX_WINDOW_MS: u64 = 7 * 24 * 3_600_000;
/// Lowest and highest Y maximum.
const MIN_Y_MAX_US: u64 = 1_000;
const MAX_Y_MAX_US: u64 = 3_600_000_000;

/// How the viewer starts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Width of the window.
    pub window_ms: u64,
    /// End of the window; `None` follows the present (live).
    pub to_ms: Option<u64>,
    /// Whether new points keep coming (a live server).
    pub live: bool,
    /// Elapsed time from which a point is drawn as slow.
    pub slow_ms: u64,
    /// Y maximum to start with.
    pub y_max_ms: u64,
    /// The service whose JVM the panels show first, when it has an
    /// instance (`jvmapm demo`: the shop, not the service it calls); else
    /// the instance seen most recently.
    pub panels_service: Option<String>,
}

/// What fills the screen besides the panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Scatter,
    List,
    Detail,
    /// The merged profile of the selection's transactions.
    Profile,
    /// The calls between services in the window, edge by edge.
    ServiceMap,
}

/// A line the operator is typing, and what it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    Service,
    Endpoint,
    MinMs,
    MaxMs,
}

impl Prompt {
    pub fn label(self) -> &'static str {
        match self {
            Prompt::Service => "service glob",
            Prompt::Endpoint => "endpoint glob",
            Prompt::MinMs => "elapsed at least (ms)",
            Prompt::MaxMs => "elapsed at most (ms)",
        }
    }
}

/// Plot cells, inclusive, from the plot's top left.
pub type CellBox = ((u16, u16), (u16, u16));

pub struct App {
    pub points: Points,
    filter: Filter,
    compiled: CompiledFilter,
    pub window_ms: u64,
    /// End of the window (exclusive), Unix ms.
    pub to_ms: u64,
    /// The window follows the present.
    pub following: bool,
    pub live: bool,
    pub y_max_us: u64,
    pub log_y: bool,
    pub measure: Measure,
    slow_us: u64,
    pub grid: Option<Grid>,
    /// Where the plot was last drawn, in terminal cells.
    pub plot: Rect,
    /// Mouse drag in progress: where it started and where it is, in plot cells.
    pub drag: Option<CellBox>,
    /// The box moved with keys (`v`).
    pub key_box: Option<CellBox>,
    pub selection: Option<Selection>,
    /// The selection's transactions, by end time (indexes into `points`).
    pub list: Vec<usize>,
    pub list_cursor: usize,
    pub detail: Option<Result<Box<Detail>, SourceError>>,
    /// Lines of the open transaction scrolled past.
    pub detail_scroll: u16,
    /// The area whose merged profile was asked for, and the answer once read.
    pub profiled: Option<Area>,
    pub area_profile: Option<Result<Box<AreaProfile>, SourceError>>,
    pub profile_view: ProfileView,
    /// The range whose service map was asked for, and the answer once read.
    pub mapped: Option<(u64, u64)>,
    pub service_map: Option<Result<Box<ServiceMap>, SourceError>>,
    /// The edge under the cursor of the service map.
    pub edge_cursor: usize,
    /// The edge (caller, callee) whose calls the list shows, instead of a
    /// selection.
    pub listed_edge: Option<(String, String)>,
    pub screen: Screen,
    pub help: bool,
    pub prompt: Option<(Prompt, String)>,
    pub stats: Vec<EndpointStats>,
    pub instances: Vec<InstanceInfo>,
    /// The instance whose JVM the panels show, by name.
    pub instance: Option<String>,
    /// The service whose instance the panels show first (see [`Config`]).
    panels_service: Option<String>,
    /// Whether the user picked the instance (`i`): then it stays.
    instance_picked: bool,
    pub jvm: JvmView,
    /// Transactions per second of everything loaded, by second.
    pub per_second: BTreeMap<u64, u32>,
    pub trouble: Option<SourceError>,
    pub progress: Option<String>,
    pub loaded_from: Option<u64>,
    pub quit: bool,
    /// Requests for the fetcher.
    pub outbox: Vec<Request>,
    /// The window the fetcher was last told of, and when.
    told: Option<(u64, u64, Option<String>)>,
    told_at_ms: u64,
}

impl App {
    pub fn new(config: &Config, now_ms: u64) -> App {
        let points = Points::default();
        let filter = Filter::default();
        let compiled = CompiledFilter::new(&filter, &points);
        App {
            points,
            filter,
            compiled,
            window_ms: config.window_ms.clamp(MIN_WINDOW_MS, MAX_WINDOW_MS),
            to_ms: config.to_ms.unwrap_or(now_ms),
            following: config.live && config.to_ms.is_none(),
            live: config.live,
            y_max_us: (config.y_max_ms * 1000).clamp(MIN_Y_MAX_US, MAX_Y_MAX_US),
            log_y: false,
            measure: Measure::Elapsed,
            slow_us: config.slow_ms * 1000,
            panels_service: config.panels_service.clone(),
            instance_picked: false,
            grid: None,
            plot: Rect::default(),
            drag: None,
            key_box: None,
            selection: None,
            list: Vec::new(),
            list_cursor: 0,
            detail: None,
            detail_scroll: 0,
            profiled: None,
            area_profile: None,
            profile_view: ProfileView::default(),
            mapped: None,
            service_map: None,
            edge_cursor: 0,
            listed_edge: None,
            screen: Screen::Scatter,
            help: false,
            prompt: None,
            stats: Vec::new(),
            instances: Vec::new(),
            instance: None,
            jvm: JvmView::default(),
            per_second: BTreeMap::new(),
            trouble: None,
            progress: None,
            loaded_from: None,
            quit: false,
            outbox: Vec::new(),
            told: None,
            told_at_ms: 0,
        }
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    pub fn from_ms(&self) -> u64 {
        self.to_ms.saturating_sub(self.window_ms)
    }

    /// Takes in what the fetcher found.
    pub fn update(&mut self, update: Update) {
        match update {
            Update::Points(rows) => self.add_points(&rows),
            Update::LoadedFrom(ms) => {
                self.loaded_from = Some(ms);
                self.progress = None;
            }
            Update::Stats(rows) => self.stats = rows,
            Update::Instances(rows) => {
                self.instances = rows;
                self.choose_instance(false);
            }
            Update::Jvm(data) => self.jvm = data,
            Update::Detail(detail) => self.detail = Some(detail),
            Update::Profile(answer) => {
                self.profile_view = match &answer {
                    Ok(answer) => ProfileView::hottest(&answer.profile.tree),
                    Err(_) => ProfileView::default(),
                };
                self.area_profile = Some(answer);
            }
            Update::ServiceMap(answer) => self.service_map = Some(answer),
            Update::EdgeCalls(Ok(calls)) => self.list_edge_calls(&calls),
            Update::EdgeCalls(Err(why)) => {
                self.progress = Some(format!("cannot list the calls: {why}"));
            }
            Update::Trouble(why) => self.trouble = why,
            Update::Progress(what) => self.progress = Some(what),
        }
    }

    pub fn add_points(&mut self, rows: &[PointRow]) {
        for row in rows {
            let txn = *self.points.push(row);
            *self.per_second.entry(txn.end_ms / 1000).or_default() += 1;
            if let Some(grid) = &mut self.grid {
                if self.compiled.accepts(&txn, &self.points) {
                    grid.add(&txn);
                }
            }
        }
    }

    /// Moves a following window to `now_ms`, keeps the grid matching the
    /// plot, and tells the fetcher about the window when it changed (at most
    /// once a second while following).
    pub fn tick(&mut self, now_ms: u64, plot: Rect) {
        if self.following {
            self.to_ms = now_ms;
        }
        self.plot = plot;
        self.fit_grid();
        let window = (self.from_ms(), self.to_ms, self.instance.clone());
        let moved = self.told.as_ref().is_none_or(|told| {
            told.0 != window.0 && (!self.following || now_ms >= self.told_at_ms + 1000)
                || told.2 != window.2
        });
        if moved {
            self.told = Some(window.clone());
            self.told_at_ms = now_ms;
            self.outbox.push(Request::Window {
                from_ms: window.0,
                to_ms: window.1,
                instance: window.2,
            });
        }
    }

    /// The grid the current view needs: slid forward when only time moved
    /// on, recounted when anything else changed.
    fn fit_grid(&mut self) {
        let time = TimeScale::ending_at(self.to_ms, self.window_ms, self.plot.width as usize * 2);
        let y = YScale {
            max_us: self.y_max_us,
            log: self.log_y,
            rows: self.plot.height as usize * 4,
        };
        if let Some(grid) = &mut self.grid {
            let same_shape = grid.time.bucket_ms == time.bucket_ms
                && grid.time.cols == time.cols
                && grid.y == y
                && grid.measure == self.measure;
            if same_shape && (grid.time.first == time.first || grid.slide_to(time.first)) {
                return;
            }
        }
        self.recount(time, y);
    }

    fn recount(&mut self, time: TimeScale, y: YScale) {
        let mut grid = Grid::new(time, y, self.measure, self.slow_us);
        let (from, to) = (time.from_ms(), time.to_ms());
        for t in &self.points.txns {
            if (from..to).contains(&t.end_ms) && self.compiled.accepts(t, &self.points) {
                grid.add(t);
            }
        }
        self.grid = Some(grid);
    }

    fn invalidate(&mut self) {
        self.grid = None;
    }

    fn set_filter(&mut self, filter: Filter) {
        self.compiled = CompiledFilter::new(&filter, &self.points);
        self.filter = filter;
        self.invalidate();
        if self.selection.is_some() {
            self.fill_list();
        }
        self.choose_instance(false);
    }

    /// Keeps the chosen instance if it still passes the service filter,
    /// else takes the most recently seen one that does (`next`: the one
    /// after); until the user picks one with `i`, an instance of the
    /// preferred service wins as soon as it shows.
    fn choose_instance(&mut self, next: bool) {
        let glob = self
            .filter
            .service
            .as_deref()
            .map(jvmapm_analyzer::glob::Glob::new);
        let mut candidates: Vec<&InstanceInfo> = self
            .instances
            .iter()
            .filter(|i| glob.as_ref().is_none_or(|g| g.matches(&i.service)))
            .collect();
        candidates.sort_by(|a, b| {
            b.last_seen_ms
                .cmp(&a.last_seen_ms)
                .then(a.instance.cmp(&b.instance))
        });
        let current = candidates
            .iter()
            .position(|i| Some(&i.instance) == self.instance.as_ref());
        let preferred = candidates
            .iter()
            .find(|i| Some(&*i.service) == self.panels_service.as_deref());
        self.instance_picked |= next;
        let chosen = match (current, next) {
            (Some(i), true) => candidates.get((i + 1) % candidates.len()),
            // The preferred service may show up after another one.
            (_, false) if preferred.is_some() && !self.instance_picked => preferred,
            (Some(i), false) => candidates.get(i),
            (None, _) => candidates.first(),
        };
        let chosen = chosen.map(|i| i.instance.clone());
        if chosen != self.instance {
            self.instance = chosen;
            self.jvm = JvmView::default();
        }
    }

    /// The chosen instance as the panels name it (see [`instance_label`]).
    pub fn instance_label(&self) -> Option<String> {
        let id = self.instance.as_ref()?;
        let row = self.instances.iter().find(|i| &i.instance == id);
        Some(row.map_or_else(|| id.clone(), instance_label))
    }

    /// Lists the selection's transactions that pass the filter, by end time.
    fn fill_list(&mut self) {
        let Some(selection) = self.selection else {
            return;
        };
        let mut list: Vec<usize> = self
            .points
            .txns
            .iter()
            .enumerate()
            .filter(|(_, t)| selection.contains(t) && self.compiled.accepts(t, &self.points))
            .map(|(i, _)| i)
            .collect();
        list.sort_by_key(|&i| self.points.txns[i].end_ms);
        self.list = list;
        self.list_cursor = 0;
    }

    fn select(&mut self, cells: CellBox) {
        let Some(grid) = &self.grid else {
            return;
        };
        self.selection = Some(Selection::of_cells(
            grid,
            cells.0,
            cells.1,
            self.plot.height,
        ));
        self.fill_list();
        self.screen = Screen::List;
    }

    pub fn handle(&mut self, event: &Event) {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.key(key),
            Event::Mouse(mouse) => self.mouse(mouse),
            Event::Resize(..) => self.invalidate(),
            _ => {}
        }
    }

    fn key(&mut self, key: &KeyEvent) {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return;
        }
        if self.prompt.is_some() {
            self.prompt_key(key);
            return;
        }
        if self.help {
            self.help = false;
            return;
        }
        match self.screen {
            Screen::ServiceMap => self.service_map_key(key),
            Screen::Detail => self.detail_key(key),
            Screen::Profile => self.profile_key(key),
            Screen::List => self.list_key(key),
            Screen::Scatter if self.key_box.is_some() => self.box_key(key),
            Screen::Scatter => self.scatter_key(key),
        }
    }

    /// Keys that work on every screen; true when `key` was one.
    fn common_key(&mut self, key: &KeyEvent) -> bool {
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('s') => self.prompt = Some((Prompt::Service, String::new())),
            KeyCode::Char('/') => self.prompt = Some((Prompt::Endpoint, String::new())),
            KeyCode::Char('>') => self.prompt = Some((Prompt::MinMs, String::new())),
            KeyCode::Char('<') => self.prompt = Some((Prompt::MaxMs, String::new())),
            KeyCode::Char('e') => {
                let filter = Filter {
                    errors_only: !self.filter.errors_only,
                    ..self.filter.clone()
                };
                self.set_filter(filter);
            }
            KeyCode::Char('c') => self.set_filter(Filter::default()),
            KeyCode::Char('i') => self.choose_instance(true),
            KeyCode::Char('g') => self.open_service_map(),
            _ => return false,
        }
        true
    }

    fn scatter_key(&mut self, key: &KeyEvent) {
        if self.common_key(key) {
            return;
        }
        match key.code {
            KeyCode::Esc => self.quit = true,
            KeyCode::Left => self.pan(-1),
            KeyCode::Right => self.pan(1),
            KeyCode::Char('+') | KeyCode::Char('=') => self.zoom(false),
            KeyCode::Char('-') => self.zoom(true),
            KeyCode::Up => self.set_y_max(self.y_max_us.saturating_mul(2)),
            KeyCode::Down => self.set_y_max(self.y_max_us / 2),
            KeyCode::Char('l') => {
                self.log_y = !self.log_y;
                self.invalidate();
            }
            KeyCode::Char('m') => {
                self.measure = self.measure.next();
                self.invalidate();
            }
            KeyCode::Char('p') | KeyCode::Char(' ') if self.live => {
                self.following = !self.following;
            }
            KeyCode::Char('v') => {
                let (w, h) = (self.plot.width.max(1), self.plot.height.max(1));
                let (cx, cy) = (w / 2, h / 2);
                self.key_box = Some((
                    (cx.saturating_sub(4), cx + 3),
                    (cy.saturating_sub(2), cy + 1),
                ));
            }
            KeyCode::Char('a') | KeyCode::Enter => {
                let cells = (
                    (0, self.plot.width.saturating_sub(1)),
                    (0, self.plot.height.saturating_sub(1)),
                );
                self.select(cells);
            }
            _ => {}
        }
    }

    /// Moves the window by a quarter of its width; going back stops following.
    fn pan(&mut self, direction: i64) {
        let step = self.window_ms / 4;
        if direction < 0 {
            self.to_ms = self.to_ms.saturating_sub(step);
            self.following = false;
        } else {
            self.to_ms += step;
        }
    }

    fn zoom(&mut self, wider: bool) {
        self.window_ms = if wider {
            self.window_ms.saturating_mul(2)
        } else {
            self.window_ms / 2
        }
        .clamp(MIN_WINDOW_MS, MAX_WINDOW_MS);
        self.invalidate();
    }

    fn set_y_max(&mut self, us: u64) {
        self.y_max_us = us.clamp(MIN_Y_MAX_US, MAX_Y_MAX_US);
        self.invalidate();
    }

    fn box_key(&mut self, key: &KeyEvent) {
        let Some(((c0, c1), (r0, r1))) = self.key_box else {
            return;
        };
        let (w, h) = (
            self.plot.width.saturating_sub(1),
            self.plot.height.saturating_sub(1),
        );
        let resize = key.modifiers.contains(KeyModifiers::SHIFT);
        let moved = match (key.code, resize) {
            (KeyCode::Left, false) if c0 > 0 => ((c0 - 1, c1 - 1), (r0, r1)),
            (KeyCode::Right, false) if c1 < w => ((c0 + 1, c1 + 1), (r0, r1)),
            (KeyCode::Up, false) if r0 > 0 => ((c0, c1), (r0 - 1, r1 - 1)),
            (KeyCode::Down, false) if r1 < h => ((c0, c1), (r0 + 1, r1 + 1)),
            (KeyCode::Left, true) | (KeyCode::Char('H'), _) if c1 > c0 => ((c0, c1 - 1), (r0, r1)),
            (KeyCode::Right, true) | (KeyCode::Char('L'), _) if c1 < w => ((c0, c1 + 1), (r0, r1)),
            (KeyCode::Up, true) | (KeyCode::Char('K'), _) if r1 > r0 => ((c0, c1), (r0, r1 - 1)),
            (KeyCode::Down, true) | (KeyCode::Char('J'), _) if r1 < h => ((c0, c1), (r0, r1 + 1)),
            (KeyCode::Enter, _) => {
                self.key_box = None;
                self.select(((c0, c1), (r0, r1)));
                return;
            }
            (KeyCode::Esc, _) => {
                self.key_box = None;
                return;
            }
            _ => ((c0, c1), (r0, r1)),
        };
        self.key_box = Some(moved);
    }

    fn list_key(&mut self, key: &KeyEvent) {
        if self.common_key(key) {
            return;
        }
        let last = self.list.len().saturating_sub(1);
        let page = usize::from(self.plot.height.max(2)) - 1;
        match key.code {
            KeyCode::Esc | KeyCode::Backspace if self.listed_edge.take().is_some() => {
                self.screen = Screen::ServiceMap;
            }
            KeyCode::Esc | KeyCode::Backspace => {
                self.screen = Screen::Scatter;
                self.selection = None;
            }
            KeyCode::Up => self.list_cursor = self.list_cursor.saturating_sub(1),
            KeyCode::Down => self.list_cursor = (self.list_cursor + 1).min(last),
            KeyCode::PageUp => self.list_cursor = self.list_cursor.saturating_sub(page),
            KeyCode::PageDown => self.list_cursor = (self.list_cursor + page).min(last),
            KeyCode::Home => self.list_cursor = 0,
            KeyCode::End => self.list_cursor = last,
            KeyCode::Enter => self.open(),
            KeyCode::Char('p') => self.profile_selection(),
            _ => {}
        }
    }

    /// The selection as an area the query API takes: its time, the elapsed
    /// rows it spans rounded out to whole milliseconds (when Y measures
    /// elapsed time), within the filter.
    pub fn selected_area(&self) -> Option<Area> {
        let selection = self.selection?;
        let (low_us, high_us) = selection.elapsed_bounds();
        let low_ms = low_us.map(|us| us / 1000).filter(|&ms| ms > 0);
        let high_ms = high_us.map(|us| us.div_ceil(1000));
        let filter = &self.filter;
        Some(Area {
            from_ms: selection.from_ms,
            to_ms: selection.to_ms.saturating_sub(1),
            service: filter.service.clone(),
            endpoint: filter.endpoint.clone(),
            min_ms: low_ms.max(filter.min_ms),
            max_ms: match (high_ms, filter.max_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            errors: filter.errors_only,
        })
    }

    /// Asks for the merged profile of the selection's transactions.
    fn profile_selection(&mut self) {
        let Some(area) = self.selected_area() else {
            return;
        };
        self.area_profile = None;
        self.profiled = Some(area.clone());
        self.screen = Screen::Profile;
        self.outbox.push(Request::Profile(area));
    }

    fn profile_key(&mut self, key: &KeyEvent) {
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc | KeyCode::Backspace => self.screen = Screen::List,
            code => {
                if let Some(Ok(answer)) = &self.area_profile {
                    let page = usize::from(self.plot.height.max(2)) - 1;
                    self.profile_view.key(&answer.profile.tree, code, page);
                }
            }
        }
    }

    /// Asks for the service map of the window in view.
    fn open_service_map(&mut self) {
        let range = (self.from_ms(), self.to_ms);
        self.service_map = None;
        self.mapped = Some(range);
        self.edge_cursor = 0;
        self.screen = Screen::ServiceMap;
        self.outbox.push(Request::ServiceMap {
            from_ms: range.0,
            to_ms: range.1,
        });
    }

    fn service_map_key(&mut self, key: &KeyEvent) {
        let edges = match &self.service_map {
            Some(Ok(map)) => map.edges.len(),
            _ => 0,
        };
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('g') => self.open_service_map(),
            KeyCode::Esc | KeyCode::Backspace => self.screen = Screen::Scatter,
            KeyCode::Up => self.edge_cursor = self.edge_cursor.saturating_sub(1),
            KeyCode::Down => self.edge_cursor = (self.edge_cursor + 1).min(edges.saturating_sub(1)),
            KeyCode::Enter => self.ask_edge_calls(),
            _ => {}
        }
    }

    /// Asks for the transactions that made the calls of the edge under the
    /// cursor.
    fn ask_edge_calls(&mut self) {
        let (Some(Ok(map)), Some((from_ms, to_ms))) = (&self.service_map, self.mapped) else {
            return;
        };
        let Some(edge) = map.edges.get(self.edge_cursor) else {
            return;
        };
        self.listed_edge = Some((edge.caller.to_string(), edge.callee.to_string()));
        self.progress = Some(format!(
            "reading the calls {} -> {}",
            edge.caller, edge.callee
        ));
        self.outbox.push(Request::EdgeCalls {
            from_ms,
            to_ms,
            caller: edge.caller.to_string(),
            callee: edge.callee.to_string(),
        });
    }

    /// Lists the loaded transactions among those that made an edge's
    /// calls, by end time.
    fn list_edge_calls(&mut self, calls: &EdgeCalls) {
        if self.screen != Screen::ServiceMap || self.listed_edge.is_none() {
            return;
        }
        let wanted: std::collections::HashSet<_> = calls
            .points
            .iter()
            .map(|p| (p.trace_id, p.span_id))
            .collect();
        let mut list: Vec<usize> = (0..self.points.txns.len())
            .filter(|&i| {
                let t = &self.points.txns[i];
                wanted.contains(&(t.trace_id, t.span_id))
            })
            .collect();
        list.sort_by_key(|&i| self.points.txns[i].end_ms);
        list.dedup_by_key(|&mut i| (self.points.txns[i].trace_id, self.points.txns[i].span_id));
        self.list = list;
        self.list_cursor = 0;
        self.selection = None;
        self.progress = None;
        self.screen = Screen::List;
    }

    /// Asks for the transaction under the list cursor in full.
    fn open(&mut self) {
        let Some(&index) = self.list.get(self.list_cursor) else {
            return;
        };
        let t = self.points.txns[index];
        self.detail = None;
        self.detail_scroll = 0;
        self.screen = Screen::Detail;
        self.outbox.push(Request::Detail {
            trace_id: t.trace_id,
            span_id: t.span_id,
            end_ms: t.end_ms,
            instance: self.points.instances.get(t.instance.into()).to_string(),
        });
    }

    fn detail_key(&mut self, key: &KeyEvent) {
        if self.common_key(key) {
            return;
        }
        match key.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Enter => self.screen = Screen::List,
            KeyCode::Up => self.detail_scroll = self.detail_scroll.saturating_sub(1),
            KeyCode::Down => self.detail_scroll = self.detail_scroll.saturating_add(1),
            KeyCode::PageUp => self.detail_scroll = self.detail_scroll.saturating_sub(10),
            KeyCode::PageDown => self.detail_scroll = self.detail_scroll.saturating_add(10),
            _ => {}
        }
    }

    fn prompt_key(&mut self, key: &KeyEvent) {
        let Some((prompt, text)) = &mut self.prompt else {
            return;
        };
        match key.code {
            KeyCode::Char(c) => text.push(c),
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Esc => self.prompt = None,
            KeyCode::Enter => {
                let (prompt, text) = (*prompt, text.trim().to_string());
                self.prompt = None;
                let value = (!text.is_empty()).then_some(text);
                let number = |v: &Option<String>| v.as_deref().and_then(|t| t.parse::<u64>().ok());
                let mut filter = self.filter.clone();
                match prompt {
                    Prompt::Service => filter.service = value,
                    Prompt::Endpoint => filter.endpoint = value,
                    Prompt::MinMs => filter.min_ms = number(&value),
                    Prompt::MaxMs => filter.max_ms = number(&value),
                }
                self.set_filter(filter);
            }
            _ => {}
        }
    }

    fn mouse(&mut self, mouse: &MouseEvent) {
        if self.screen != Screen::Scatter || self.help || self.prompt.is_some() {
            return;
        }
        let plot = self.plot;
        let inside = |x: u16, y: u16| {
            x >= plot.x && y >= plot.y && x < plot.x + plot.width && y < plot.y + plot.height
        };
        let cell = (
            mouse
                .column
                .clamp(plot.x, (plot.x + plot.width).saturating_sub(1))
                - plot.x,
            mouse
                .row
                .clamp(plot.y, (plot.y + plot.height).saturating_sub(1))
                - plot.y,
        );
        match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) if inside(mouse.column, mouse.row) => {
                self.drag = Some(((cell.0, cell.0), (cell.1, cell.1)));
            }
            MouseEventKind::Drag(MouseButton::Left) => {
                if let Some(((c0, _), (r0, _))) = self.drag {
                    self.drag = Some(((c0, cell.0), (r0, cell.1)));
                }
            }
            MouseEventKind::Up(MouseButton::Left) => {
                if let Some(((c0, c1), (r0, r1))) = self.drag.take() {
                    self.select(((c0.min(c1), c0.max(c1)), (r0.min(r1), r0.max(r1))));
                }
            }
            _ => {}
        }
    }

    /// The latest value of each series whose name is `name`, by its
    /// attributes (`k=v,...`).
    pub fn latest(&self, name: &str) -> Vec<(String, f64)> {
        self.jvm
            .series
            .iter()
            .filter_map(|(key, values)| {
                let attrs = match key.strip_prefix(name)? {
                    "" => "",
                    rest => rest.strip_prefix('{')?.strip_suffix('}')?,
                };
                Some((attrs.to_string(), values.last()?.1))
            })
            .collect()
    }
}

/// An instance as operators know a JVM, `service@host:pid`; its id (often
/// 32 hex digits) when it did not report both host and pid.
pub fn instance_label(instance: &InstanceInfo) -> String {
    let attribute = |key: &str| instance.attributes.get(key).filter(|v| !v.is_empty());
    match (
        attribute(resource::HOST_NAME),
        attribute(resource::PROCESS_PID),
    ) {
        (Some(host), Some(pid)) => format!("{}@{host}:{pid}", instance.service),
        _ => instance.instance.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::tests::row;

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// The end times of the transactions listed, in list order.
    fn listed_ends(app: &App) -> Vec<u64> {
        app.list
            .iter()
            .map(|&i| app.points.txns[i].end_ms)
            .collect()
    }

    #[test]
    fn the_panels_show_the_preferred_service_first_then_the_latest_seen() {
        let instance = |service: &str, id: &str, last_seen_ms| InstanceInfo {
            service: service.into(),
            instance: id.into(),
            first_seen_ms: 0,
            last_seen_ms,
            attributes: Default::default(),
        };
        let instances = vec![
            instance("demo-stock", "stock-1", 9_000),
            instance("demo-shop", "shop-1", 5_000),
        ];
        let mut plain = app();
        plain.update(Update::Instances(instances.clone()));
        assert_eq!(plain.instance.as_deref(), Some("stock-1"), "latest seen");

        let mut preferring = App::new(
            &Config {
                panels_service: Some("demo-shop".into()),
                ..config()
            },
            40_000,
        );
        preferring.update(Update::Instances(instances[..1].to_vec()));
        assert_eq!(
            preferring.instance.as_deref(),
            Some("stock-1"),
            "the only one"
        );
        preferring.update(Update::Instances(instances.clone()));
        assert_eq!(
            preferring.instance.as_deref(),
            Some("shop-1"),
            "once it shows"
        );
        preferring.handle(&key(KeyCode::Char('i')));
        assert_eq!(preferring.instance.as_deref(), Some("stock-1"), "i cycles");
        preferring.update(Update::Instances(instances));
        assert_eq!(
            preferring.instance.as_deref(),
            Some("stock-1"),
            "what i picks stays"
        );
    }

    fn config() -> Config {
        Config {
            window_ms: 40_000,
            to_ms: Some(40_000),
            live: false,
            slow_ms: 800,
            y_max_ms: 1_000,
            panels_service: None,
        }
    }

    fn app() -> App {
        let mut app = App::new(&config(), 40_000);
        app.add_points(&[
            row(10_000, 100, "/a", false),
            row(10_500, 240, "/b", true),
            row(30_000, 600, "/a", false),
        ]);
        app.tick(40_000, Rect::new(8, 0, 20, 10));
        app
    }

    #[test]
    fn points_are_counted_into_the_grid_when_they_arrive_and_when_it_is_recounted() {
        let mut app = app();
        assert_eq!(app.grid.as_ref().unwrap().total(), 3);
        app.add_points(&[row(39_000, 5, "/c", false)]);
        assert_eq!(app.grid.as_ref().unwrap().total(), 4);
        app.handle(&key(KeyCode::Char('e')));
        app.tick(40_000, app.plot);
        assert_eq!(app.grid.as_ref().unwrap().total(), 1, "errors only");
        assert_eq!(app.filter().describe(), "errors only");
    }

    #[test]
    fn typing_a_glob_filters_by_endpoint() {
        let mut app = app();
        app.handle(&key(KeyCode::Char('/')));
        for c in "/a".chars() {
            app.handle(&key(KeyCode::Char(c)));
        }
        app.handle(&key(KeyCode::Enter));
        app.tick(40_000, app.plot);
        assert_eq!(app.grid.as_ref().unwrap().total(), 2);
        assert_eq!(app.filter().describe(), "endpoint=/a");
    }

    #[test]
    fn a_mouse_drag_lists_the_points_inside_and_enter_asks_for_one() {
        let mut app = app();
        let mouse = |kind, column, row| {
            Event::Mouse(MouseEvent {
                kind,
                column,
                row,
                modifiers: KeyModifiers::NONE,
            })
        };
        // The window's 1 s buckets start at 1 s (the last one holds 40 s):
        // plot cells 4..=5 across are 9 s to 13 s, 7..=8 down 100 to 300 ms.
        app.handle(&mouse(MouseEventKind::Down(MouseButton::Left), 8 + 4, 7));
        app.handle(&mouse(MouseEventKind::Drag(MouseButton::Left), 8 + 5, 8));
        app.handle(&mouse(MouseEventKind::Up(MouseButton::Left), 8 + 5, 8));
        assert_eq!(app.screen, Screen::List);
        let ends = listed_ends(&app);
        assert_eq!(ends, [10_000, 10_500]);
        app.handle(&key(KeyCode::Down));
        app.handle(&key(KeyCode::Enter));
        assert_eq!(app.screen, Screen::Detail);
        match app.outbox.last() {
            Some(Request::Detail { end_ms, .. }) => assert_eq!(*end_ms, 10_500),
            _ => panic!("no detail request"),
        }
        app.handle(&key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::List);
    }

    #[test]
    fn p_over_a_selection_asks_for_the_profile_of_its_area_and_shows_it_hottest_first() {
        use jvmapm_analyzer::query::answers::Profile;
        use jvmapm_analyzer::query::call_tree::CallTree;
        let mut app = app();
        app.handle(&key(KeyCode::Char('e')));
        // Plot cells 4..=5 across are 9 s to 13 s, 7..=8 down 100 to 300 ms.
        app.tick(40_000, app.plot);
        app.select(((4, 5), (7, 8)));
        app.handle(&key(KeyCode::Char('p')));
        assert_eq!(app.screen, Screen::Profile);
        let expected = Area {
            from_ms: 9_000,
            to_ms: 12_999,
            min_ms: Some(100),
            max_ms: Some(300),
            errors: true,
            ..Area::default()
        };
        match app.outbox.last() {
            Some(Request::Profile(area)) => assert_eq!(area, &expected),
            _ => panic!("no profile request"),
        }
        let tree = CallTree::parse("main;io;[native] 1\nmain;work;[running] 3\n");
        app.update(Update::Profile(Ok(Box::new(AreaProfile {
            profile: Profile {
                tree: tree.clone(),
                ..Profile::default()
            },
            ..AreaProfile::default()
        }))));
        let frames = |app: &App| -> Vec<String> {
            let rows = app.profile_view.rows(&tree);
            rows.iter()
                .map(|&(id, _)| tree.node(id).frame.to_string())
                .collect()
        };
        assert_eq!(frames(&app), ["main", "work", "[running]", "io"]);
        app.handle(&key(KeyCode::End));
        app.handle(&key(KeyCode::Right));
        assert_eq!(
            frames(&app),
            ["main", "work", "[running]", "io", "[native]"]
        );
        app.handle(&key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::List);
    }

    #[test]
    fn g_shows_the_service_map_and_enter_lists_the_calls_of_an_edge() {
        use jvmapm_analyzer::query::answers::ServiceMap;
        let mut app = app();
        app.handle(&key(KeyCode::Char('g')));
        assert_eq!(app.screen, Screen::ServiceMap);
        assert!(matches!(
            app.outbox.last(),
            Some(Request::ServiceMap {
                from_ms: 0,
                to_ms: 40_000
            })
        ));
        let edge = |callee: &str| {
            serde_json::from_value(serde_json::json!({
                "caller": "orders", "callee": callee, "callee_is_service": true, "calls": 2,
                "errors": 0, "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0, "callee_p50_ms": null,
            }))
            .unwrap()
        };
        app.update(Update::ServiceMap(Ok(Box::new(ServiceMap {
            edges: vec![edge("stock"), edge("billing")],
            ..ServiceMap::default()
        }))));
        app.handle(&key(KeyCode::Down));
        app.handle(&key(KeyCode::Down));
        assert_eq!(app.edge_cursor, 1, "stays on the last edge");
        app.handle(&key(KeyCode::Enter));
        match app.outbox.last() {
            Some(Request::EdgeCalls { caller, callee, .. }) => {
                assert_eq!((caller.as_str(), callee.as_str()), ("orders", "billing"))
            }
            _ => panic!("no request for the calls"),
        }
        // The server names two of the loaded transactions and one not loaded.
        let calls = EdgeCalls {
            points: vec![
                row(30_000, 600, "/a", false),
                row(10_000, 100, "/a", false),
                row(5_000, 1, "/gone", false),
            ],
            truncated: 0,
        };
        app.update(Update::EdgeCalls(Ok(calls)));
        assert_eq!(app.screen, Screen::List);
        let ends = listed_ends(&app);
        assert_eq!(ends, [10_000, 30_000]);
        app.handle(&key(KeyCode::Enter));
        assert_eq!(app.screen, Screen::Detail);
        app.handle(&key(KeyCode::Esc));
        app.handle(&key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::ServiceMap, "back to the map");
        app.handle(&key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::Scatter);
    }

    #[test]
    fn the_key_box_selects_like_the_mouse() {
        let mut app = app();
        app.handle(&key(KeyCode::Char('v')));
        assert!(app.key_box.is_some());
        app.handle(&key(KeyCode::Char('L')));
        app.handle(&key(KeyCode::Enter));
        assert_eq!(app.screen, Screen::List);
        assert!(app.key_box.is_none());
    }

    #[test]
    fn view_keys_change_window_scale_and_measure() {
        let mut app = app();
        app.handle(&key(KeyCode::Char('-')));
        assert_eq!(app.window_ms, 80_000);
        app.handle(&key(KeyCode::Char('+')));
        app.handle(&key(KeyCode::Char('+')));
        assert_eq!(app.window_ms, 20_000);
        app.handle(&key(KeyCode::Up));
        assert_eq!(app.y_max_us, 2_000_000);
        app.handle(&key(KeyCode::Char('l')));
        app.handle(&key(KeyCode::Char('m')));
        app.tick(40_000, app.plot);
        let grid = app.grid.as_ref().unwrap();
        assert!(grid.y.log);
        assert_eq!(grid.measure, Measure::Cpu);
        app.handle(&key(KeyCode::Left));
        assert_eq!(app.to_ms, 35_000);
        app.handle(&key(KeyCode::Char('?')));
        assert!(app.help);
        app.handle(&key(KeyCode::Char('x')));
        assert!(!app.help, "any key closes the help");
        app.handle(&key(KeyCode::Char('q')));
        assert!(app.quit);
    }

    #[test]
    fn a_live_window_follows_the_present_until_paused() {
        let config = Config {
            window_ms: 40_000,
            to_ms: None,
            live: true,
            slow_ms: 800,
            y_max_ms: 1_000,
            panels_service: None,
        };
        let mut app = App::new(&config, 40_000);
        app.tick(40_000, Rect::new(8, 0, 20, 10));
        app.add_points(&[row(39_000, 5, "/a", false)]);
        app.tick(60_000, app.plot);
        assert_eq!(app.to_ms, 60_000);
        assert_eq!(app.grid.as_ref().unwrap().total(), 1, "slid, still inside");
        app.tick(90_000, app.plot);
        assert_eq!(app.grid.as_ref().unwrap().total(), 0, "slid out");
        app.handle(&key(KeyCode::Char('p')));
        app.tick(95_000, app.plot);
        assert_eq!(app.to_ms, 90_000, "paused");
        let windows = app
            .outbox
            .iter()
            .filter(|r| matches!(r, Request::Window { .. }))
            .count();
        assert!(windows >= 2, "the fetcher hears of the moving window");
    }
}
