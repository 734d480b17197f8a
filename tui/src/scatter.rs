//! The XLog scatter: end time across, the measure (elapsed, CPU, SQL or
//! outgoing time) up, one braille dot per grid position.
//!
//! Points are counted into a grid at braille resolution (two dots across
//! and four down per terminal cell) as they arrive; drawing reads only the
//! grid, so a frame costs the same for ten thousand points or ten million.
//! A dot keeps its worst point (error over slow over normal), which gives the
//! colour of its cell. Values above the Y maximum land on the top row so an
//! outlier never disappears. Columns are whole buckets of absolute time, so
//! the live window slides by shifting columns, not by recounting.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Widget;

use crate::points::{Measure, Txn};

/// Bottom of the logarithmic Y axis: 0.1 ms.
const LOG_MIN_US: f64 = 100.0;
/// Width of the Y axis labels, in cells.
pub const Y_AXIS_WIDTH: u16 = 8;
/// Rows under the plot: GC pause marks, then time labels.
pub const X_AXIS_HEIGHT: u16 = 2;

/// How a value maps to a dot row (row 0 at the bottom).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YScale {
    pub max_us: u64,
    pub log: bool,
    pub rows: usize,
}

impl YScale {
    pub fn row(&self, value_us: u64) -> usize {
        let top = self.rows.saturating_sub(1);
        if value_us >= self.max_us {
            return top;
        }
        let fraction = if self.log {
            let v = (value_us as f64).max(LOG_MIN_US);
            (v / LOG_MIN_US).ln() / (self.max_us as f64 / LOG_MIN_US).ln()
        } else {
            value_us as f64 / self.max_us as f64
        };
        ((fraction * self.rows as f64) as usize).min(top)
    }

    /// The smallest value drawn in `row`, for axis labels.
    pub fn value_at(&self, row: usize) -> f64 {
        let fraction = row as f64 / self.rows.max(1) as f64;
        if self.log {
            LOG_MIN_US * (self.max_us as f64 / LOG_MIN_US).powf(fraction)
        } else {
            fraction * self.max_us as f64
        }
    }
}

/// Which time bucket a column shows: column `c` holds end times in
/// `[(first + c) * bucket_ms, (first + c + 1) * bucket_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    pub bucket_ms: u64,
    pub first: u64,
    pub cols: usize,
}

impl TimeScale {
    /// The columns of `cols` buckets that end with the bucket holding `to_ms`,
    /// for a window of about `window_ms`.
    pub fn ending_at(to_ms: u64, window_ms: u64, cols: usize) -> TimeScale {
        let cols = cols.max(1);
        let bucket_ms = (window_ms / cols as u64).max(1);
        let last = to_ms / bucket_ms;
        TimeScale {
            bucket_ms,
            first: (last + 1).saturating_sub(cols as u64),
            cols,
        }
    }

    pub fn from_ms(&self) -> u64 {
        self.first * self.bucket_ms
    }

    /// End of the window (exclusive).
    pub fn to_ms(&self) -> u64 {
        (self.first + self.cols as u64) * self.bucket_ms
    }

    pub fn col(&self, end_ms: u64) -> Option<usize> {
        let bucket = end_ms / self.bucket_ms;
        let col = bucket.checked_sub(self.first)?;
        (col < self.cols as u64).then_some(col as usize)
    }
}

/// The colour class of a point; a dot shows its worst.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    #[default]
    Empty,
    Normal,
    Slow,
    Error,
}

impl Class {
    pub fn color(self) -> Color {
        match self {
            Class::Error => Color::Red,
            Class::Slow => Color::Yellow,
            Class::Normal | Class::Empty => Color::Cyan,
        }
    }
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Dot {
    pub count: u32,
    pub worst: Class,
}

/// The count grid: `cols` x `rows` dots, column-major.
pub struct Grid {
    pub time: TimeScale,
    pub y: YScale,
    pub measure: Measure,
    /// Elapsed time from which a point is slow.
    pub slow_us: u64,
    dots: Vec<Dot>,
    total: u64,
}

impl Grid {
    pub fn new(time: TimeScale, y: YScale, measure: Measure, slow_us: u64) -> Grid {
        Grid {
            dots: vec![Dot::default(); time.cols * y.rows],
            time,
            y,
            measure,
            slow_us,
            total: 0,
        }
    }

    /// Counts `t` if it falls in the window and has the measure.
    pub fn add(&mut self, t: &Txn) {
        let (Some(col), Some(value)) = (self.time.col(t.end_ms), t.value_us(self.measure)) else {
            return;
        };
        let row = self.y.row(u64::from(value));
        let class = if t.error {
            Class::Error
        } else if u64::from(t.elapsed_us) >= self.slow_us {
            Class::Slow
        } else {
            Class::Normal
        };
        let dot = &mut self.dots[col * self.y.rows + row];
        dot.count = dot.count.saturating_add(1);
        dot.worst = dot.worst.max(class);
        self.total += 1;
    }

    /// Moves the window forward so its first column is bucket `first`;
    /// columns that stay keep their counts, new ones start empty. Returns
    /// false when it cannot (going back), and the caller recounts.
    pub fn slide_to(&mut self, first: u64) -> bool {
        let Some(shift) = first.checked_sub(self.time.first) else {
            return false;
        };
        let shift = (shift as usize).min(self.time.cols);
        let rows = self.y.rows;
        for col in 0..shift {
            self.total -= self.dots[col * rows..(col + 1) * rows]
                .iter()
                .map(|d| u64::from(d.count))
                .sum::<u64>();
        }
        self.dots.copy_within(shift * rows.., 0);
        let kept = self.dots.len() - shift * rows;
        self.dots[kept..].fill(Dot::default());
        self.time.first = first;
        true
    }

    pub fn dot(&self, col: usize, row: usize) -> Dot {
        self.dots[col * self.y.rows + row]
    }

    /// Points counted in the window.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// A selected area in data terms: end times and the dot rows of the Y scale
/// it was made on, so it means the same points however the view moves on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    pub from_ms: u64,
    pub to_ms: u64,
    pub y: YScale,
    pub measure: Measure,
    pub row_lo: usize,
    pub row_hi: usize,
}

impl Selection {
    /// The area of plot cells `cols` x `rows` (both inclusive, row 0 at the
    /// top as the terminal counts) of a plot drawn from `grid`.
    pub fn of_cells(grid: &Grid, cols: (u16, u16), rows: (u16, u16), plot_height: u16) -> Self {
        let (c0, c1) = (cols.0.min(cols.1) as u64, cols.0.max(cols.1) as u64);
        let (r0, r1) = (rows.0.min(rows.1), rows.0.max(rows.1));
        let bucket = grid.time.bucket_ms;
        Selection {
            from_ms: grid.time.from_ms() + c0 * 2 * bucket,
            to_ms: grid.time.from_ms() + (c1 + 1) * 2 * bucket,
            y: grid.y,
            measure: grid.measure,
            row_lo: usize::from(plot_height.saturating_sub(1 + r1)) * 4,
            row_hi: usize::from(plot_height.saturating_sub(r0)) * 4 - 1,
        }
    }

    /// The elapsed times, microseconds, the selection's rows span when Y
    /// measures elapsed time: `None` for no bound (the bottom row from
    /// zero, the top row to any height, any other measure).
    pub fn elapsed_bounds(&self) -> (Option<u64>, Option<u64>) {
        if self.measure != Measure::Elapsed {
            return (None, None);
        }
        let low = (self.row_lo > 0).then(|| self.y.value_at(self.row_lo) as u64);
        let high = (self.row_hi + 1 < self.y.rows).then(|| self.y.value_at(self.row_hi + 1) as u64);
        (low, high)
    }

    pub fn contains(&self, t: &Txn) -> bool {
        (self.from_ms..self.to_ms).contains(&t.end_ms)
            && t.value_us(self.measure)
                .is_some_and(|v| (self.row_lo..=self.row_hi).contains(&self.y.row(u64::from(v))))
    }
}

/// Braille dot bits by (column, row from the top) inside one cell.
const BRAILLE_BITS: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];

/// Draws a grid: the plot, the Y axis labels, GC pause marks and time labels.
pub struct ScatterWidget<'a> {
    pub grid: &'a Grid,
    /// Start times of GC pauses (Unix ms) to mark under the plot.
    pub gc_pauses: &'a [u64],
    /// Plot cells to highlight: columns and rows, inclusive, from the top left.
    pub highlight: Option<((u16, u16), (u16, u16))>,
}

/// The part of `area` the dots go in.
pub fn plot_area(area: Rect) -> Rect {
    Rect {
        x: area.x + Y_AXIS_WIDTH.min(area.width),
        y: area.y,
        width: area.width.saturating_sub(Y_AXIS_WIDTH),
        height: area.height.saturating_sub(X_AXIS_HEIGHT),
    }
}

impl Widget for ScatterWidget<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let plot = plot_area(area);
        let grid = self.grid;
        let cols = (plot.width as usize).min(grid.time.cols / 2);
        let rows = (plot.height as usize).min(grid.y.rows / 4);
        for cy in 0..rows {
            for cx in 0..cols {
                let mut bits = 0u8;
                let mut worst = Class::Empty;
                for (dx, column_bits) in BRAILLE_BITS.iter().enumerate() {
                    for (dy, bit) in column_bits.iter().enumerate() {
                        let row = grid.y.rows - 1 - (cy * 4 + dy);
                        let dot = grid.dot(cx * 2 + dx, row);
                        if dot.count > 0 {
                            bits |= bit;
                            worst = worst.max(dot.worst);
                        }
                    }
                }
                let cell = &mut buf[(plot.x + cx as u16, plot.y + cy as u16)];
                if bits != 0 {
                    let symbol = char::from_u32(0x2800 + u32::from(bits)).expect("braille");
                    cell.set_char(symbol).set_fg(worst.color());
                }
            }
        }
        if let Some(((c0, c1), (r0, r1))) = self.highlight {
            for cy in r0.min(r1)..=r0.max(r1).min(plot.height.saturating_sub(1)) {
                for cx in c0.min(c1)..=c0.max(c1).min(plot.width.saturating_sub(1)) {
                    buf[(plot.x + cx, plot.y + cy)].set_bg(Color::DarkGray);
                }
            }
        }
        self.axes(area, plot, buf);
    }
}

impl ScatterWidget<'_> {
    fn axes(&self, area: Rect, plot: Rect, buf: &mut Buffer) {
        let grid = self.grid;
        let label_style = Style::default().fg(Color::Gray);
        if plot.height > 0 {
            for cy in [0, plot.height / 2, plot.height - 1] {
                let row = (usize::from(plot.height - cy)) * 4;
                let value = if cy == 0 {
                    grid.y.max_us as f64
                } else {
                    grid.y.value_at(row.saturating_sub(4))
                };
                let label = format!("{:>7}", short_duration(value));
                buf.set_stringn(
                    area.x,
                    plot.y + cy,
                    label,
                    Y_AXIS_WIDTH as usize - 1,
                    label_style,
                );
            }
        }
        let marks_y = plot.y + plot.height;
        let labels_y = marks_y + 1;
        if area.height >= plot.height + X_AXIS_HEIGHT && plot.width > 0 {
            let cell_ms = grid.time.bucket_ms * 2;
            for &start in self.gc_pauses {
                if let Some(col) = grid.time.col(start) {
                    let cx = (col / 2) as u16;
                    if cx < plot.width {
                        buf[(plot.x + cx, marks_y)]
                            .set_char('▲')
                            .set_fg(Color::Magenta);
                    }
                }
            }
            let from = grid.time.from_ms();
            let last = from + cell_ms * u64::from(plot.width);
            let left = clock(from);
            let right = clock(last);
            buf.set_string(plot.x, labels_y, &left, label_style);
            let right_x = (plot.x + plot.width).saturating_sub(right.len() as u16);
            if right_x > plot.x + left.len() as u16 {
                buf.set_string(right_x, labels_y, &right, label_style);
            }
        }
    }
}

/// `12.5s`, `340ms`, `0.8ms`, for axis labels.
pub fn short_duration(us: f64) -> String {
    if us >= 10_000_000.0 {
        format!("{:.0}s", us / 1e6)
    } else if us >= 1_000_000.0 {
        format!("{:.1}s", us / 1e6)
    } else if us >= 10_000.0 {
        format!("{:.0}ms", us / 1e3)
    } else {
        format!("{:.1}ms", us / 1e3)
    }
}

/// `HH:MM:SS` UTC of a Unix time in milliseconds.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::tests::row;
    use crate::points::Points;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    /// A 20 x 10 cell scatter (40 x 40 dots after the axes) over 40 s of
    /// 1 s buckets ending at 40 s, Y up to 1 s.
    fn grid() -> Grid {
        let area = Rect::new(0, 0, 20 + Y_AXIS_WIDTH, 10 + X_AXIS_HEIGHT);
        let plot = plot_area(area);
        let time = TimeScale::ending_at(39_999, 40_000, plot.width as usize * 2);
        let y = YScale {
            max_us: 1_000_000,
            log: false,
            rows: plot.height as usize * 4,
        };
        Grid::new(time, y, Measure::Elapsed, 800_000)
    }

    fn draw(grid: &Grid, gc: &[u64]) -> Buffer {
        let mut terminal = Terminal::new(TestBackend::new(28, 12)).unwrap();
        terminal
            .draw(|f| {
                let widget = ScatterWidget {
                    grid,
                    gc_pauses: gc,
                    highlight: None,
                };
                f.render_widget(widget, f.area());
            })
            .unwrap();
        terminal.backend().buffer().clone()
    }

    #[test]
    fn an_error_point_colours_its_cell_red_over_a_normal_point() {
        let mut points = Points::default();
        let mut grid = grid();
        // Same second, 100 ms and 110 ms: the same cell (rows of 25 ms dots).
        grid.add(points.push(&row(20_100, 100, "/a", false)));
        grid.add(points.push(&row(20_200, 110, "/a", true)));
        // Another cell, normal only.
        grid.add(points.push(&row(5_000, 500, "/a", false)));
        let buf = draw(&grid, &[]);
        let cell_of = |end_ms: u64, us: u64| {
            let plot = plot_area(buf.area);
            let cx = grid.time.col(end_ms).unwrap() as u16 / 2;
            let cy = (grid.y.rows - 1 - grid.y.row(us)) as u16 / 4;
            buf[(plot.x + cx, plot.y + cy)].clone()
        };
        let shared = cell_of(20_100, 100_000);
        assert_ne!(shared.symbol(), " ");
        assert_eq!(shared.fg, Color::Red);
        assert_eq!(cell_of(5_000, 500_000).fg, Color::Cyan);
        assert_eq!(grid.total(), 3);
    }

    #[test]
    fn a_point_above_the_y_maximum_is_drawn_on_the_top_row() {
        let mut points = Points::default();
        let mut grid = grid();
        grid.add(points.push(&row(10_000, 900_000, "/slow", false)));
        let buf = draw(&grid, &[]);
        let plot = plot_area(buf.area);
        let top: String = (0..plot.width)
            .map(|x| buf[(plot.x + x, plot.y)].symbol().to_string())
            .collect();
        assert!(
            top.contains(|c: char| ('\u{2801}'..='\u{28ff}').contains(&c)),
            "{top:?}"
        );
        let cx = grid.time.col(10_000).unwrap() as u16 / 2;
        assert_eq!(buf[(plot.x + cx, plot.y)].fg, Color::Yellow, "slow");
    }

    #[test]
    fn gc_pauses_are_marked_under_the_plot() {
        let grid = grid();
        let buf = draw(&grid, &[30_500]);
        let plot = plot_area(buf.area);
        let cx = grid.time.col(30_500).unwrap() as u16 / 2;
        assert_eq!(buf[(plot.x + cx, plot.y + plot.height)].symbol(), "▲");
    }

    #[test]
    fn sliding_keeps_the_columns_that_stay() {
        let mut points = Points::default();
        let mut grid = grid();
        grid.add(points.push(&row(1_000, 10, "/a", false)));
        grid.add(points.push(&row(30_000, 10, "/a", false)));
        assert!(grid.slide_to(grid.time.first + 10));
        assert_eq!(grid.total(), 1, "the point 1 s in left the window");
        let col = grid.time.col(30_000).unwrap();
        assert_eq!(grid.dot(col, grid.y.row(10_000)).count, 1);
        assert!(!grid.slide_to(grid.time.first - 1));
    }

    #[test]
    fn a_selection_holds_exactly_the_points_drawn_inside_it() {
        let mut points = Points::default();
        let mut grid = grid();
        for (end, ms) in [(10_000, 100), (10_500, 240), (12_000, 600), (30_000, 100)] {
            grid.add(points.push(&row(end, ms, "/a", false)));
        }
        // Columns of 2 s: cells 5..=6 are 10 s to 14 s. Rows of 100 ms per
        // cell from the top: cells 7..=8 are 100 ms to 300 ms.
        let sel = Selection::of_cells(&grid, (5, 6), (7, 8), 10);
        let inside: Vec<u64> = points
            .txns
            .iter()
            .filter(|t| sel.contains(t))
            .map(|t| t.end_ms)
            .collect();
        assert_eq!(inside, [10_000, 10_500]);
    }
}
