//! Frame time of `jvmapm xlog` with 10 thousand, 1 million and 10 million
//! points in the window, beside ratatui's stock `Chart` scatter on the same
//! points, plus what a view change (recounting the grid) costs and the
//! memory the points take. Drawing goes to ratatui's TestBackend at 200 x 50
//! cells, the whole screen (scatter, panels, table), so the terminal's own
//! speed is left out.
//!
//! Usage: cargo run --release -p jvmapm-bench --bin xlog-frame [-- COUNTS...]
//! (default counts 10000 1000000 10000000)

use std::time::Instant;

use jvmapm_analyzer::point::{SpanId, TraceId};
use jvmapm_analyzer::query::answers::PointRow;
use jvmapm_tui::app::{App, Config};
use jvmapm_tui::ui;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType};
use ratatui::Terminal;

const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;
const FRAMES: usize = 50;
const WINDOW_MS: u64 = 5 * 60_000;
const END_MS: u64 = 1_800_000_000_000;
const SPREAD_MS: u64 = WINDOW_MS / 100 * 99;

/// Rows `from..to` of `count`: a deterministic spread of response times,
/// mostly fast, a slow tail, 1% errors.
fn rows(from: usize, to: usize, count: usize) -> Vec<PointRow> {
    let mut rng = jvmapm_contract::random::Rng::seeded(0x9E37_79B9_7F4A_7C15 ^ from as u64);
    let mut next = move || rng.next_u64();
    (from..to)
        .map(|i| {
            let r = next();
            let elapsed_us = match r % 100 {
                0 => 2_000_000 + r % 6_000_000,
                1..=9 => 200_000 + r % 800_000,
                _ => 1_000 + r % 150_000,
            };
            PointRow {
                // Inside the window's whole buckets: its last 99%.
                end_ms: END_MS - SPREAD_MS + (i as u64 * SPREAD_MS) / count as u64,
                elapsed_us,
                service: "shop".into(),
                instance: "shop-1".into(),
                endpoint: format!("/api/{}", r % 40).into(),
                status_code: Some(200),
                error: r % 100 == 50,
                trace_id: TraceId::from((i as u128 + 1).to_be_bytes()),
                span_id: SpanId::from((i as u64 + 1).to_be_bytes()),
                cpu_us: Some(elapsed_us / 3),
                sql_count: None,
                sql_us: None,
                http_count: None,
                http_us: None,
            }
        })
        .collect()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Resident and peak memory of this process, in MB.
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![10_000, 1_000_000, 10_000_000]
    } else {
        counts
    };
    println!("screen {WIDTH}x{HEIGHT} cells, median of {FRAMES} frames");
    for count in counts {
        let (rss_before, _) = memory_mb();
        let config = Config {
            window_ms: WINDOW_MS,
            to_ms: Some(END_MS),
            live: false,
            slow_ms: 3_000,
            y_max_ms: 2_000,
            panels_service: None,
        };
        let mut app = App::new(&config, END_MS);
        // Fed in pages, as the fetcher does, so the rows do not stay around.
        let mut ingest_s = 0.0;
        for from in (0..count).step_by(100_000) {
            let page = rows(from, (from + 100_000).min(count), count);
            let started = Instant::now();
            app.add_points(&page);
            ingest_s += started.elapsed().as_secs_f64();
        }
        let (rss_after, peak) = memory_mb();
        let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
        let areas = ui::areas(terminal.get_frame().area());
        let started = Instant::now();
        app.tick(END_MS, areas.plot);
        let recount_ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(app.grid.as_ref().unwrap().total(), count as u64);
        let frames: Vec<f64> = (0..FRAMES)
            .map(|_| {
                let started = Instant::now();
                terminal.draw(|f| ui::draw(f, &app)).unwrap();
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let frame_ms = median(frames);
        print!(
            "{count:>9} points: frame {frame_ms:7.3} ms | recount on a view change {recount_ms:8.1} ms | \
             ingest {:5.1} M points/s | points {:6.0} MB ({:.0} B each), peak RSS {peak:6.0} MB",
            count as f64 / ingest_s / 1e6,
            rss_after - rss_before,
            (rss_after - rss_before) * 1_048_576.0 / count as f64,
        );
        println!(" | stock ratatui Chart {:8.1} ms", stock_chart_ms(&app));
    }
}

/// ratatui's own scatter (braille `Chart`) over the same points, one frame
/// of the same size.
fn stock_chart_ms(app: &App) -> f64 {
    let points: Vec<(f64, f64)> = app
        .points
        .txns
        .iter()
        .map(|t| (t.end_ms as f64, f64::from(t.elapsed_us) / 1e3))
        .collect();
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    let frames: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            terminal
                .draw(|f| {
                    let dataset = Dataset::default()
                        .marker(Marker::Braille)
                        .graph_type(GraphType::Scatter)
                        .style(Color::Cyan)
                        .data(&points);
                    let chart = Chart::new(vec![dataset])
                        .x_axis(
                            Axis::default().bounds([(END_MS - WINDOW_MS) as f64, END_MS as f64]),
                        )
                        .y_axis(Axis::default().bounds([0.0, 2_000.0]));
                    f.render_widget(chart, f.area());
                })
                .unwrap();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(frames)
}
