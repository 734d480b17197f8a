//! The terminal XLog viewer of jvmapm (`jvmapm xlog`): the scatter of every
//! transaction, live from `jvmapm serve` or offline from a data directory,
//! with the JVM's health beside it.

pub mod app;
pub mod fetcher;
pub mod points;
pub mod profile_view;
pub mod scatter;
pub mod source;
mod terminal;
pub mod ui;

use std::path::PathBuf;
use std::time::Duration;

use crossterm::event;
use jvmapm_contract::clock::unix_ms;

use app::{App, Config};
use fetcher::{Fetcher, Follow};
use source::{Live, Offline, Source};

/// Where the viewer reads from.
pub enum Origin {
    /// A running analyzer's query API, e.g. `http://127.0.0.1:4318`.
    Server { url: String, token: Option<String> },
    /// A data directory written by `jvmapm serve`.
    Data(PathBuf),
}

/// Runs the viewer until the operator quits; the terminal is restored on
/// every way out.
pub fn run(origin: Origin, config: Config) -> Result<(), String> {
    let (source, config): (Box<dyn Source>, Config) = match origin {
        Origin::Server { url, token } => {
            let live = config.to_ms.is_none();
            let source = Live::new(&url, token).map_err(|e| e.to_string())?;
            (Box::new(source), Config { live, ..config })
        }
        Origin::Data(dir) => {
            let offline = Offline::open(&dir).map_err(|e| e.to_string())?;
            let to_ms = config
                .to_ms
                .or_else(|| offline.latest_end_ms().map(|ms| ms + 1));
            let config = Config {
                live: false,
                to_ms,
                ..config
            };
            (Box::new(offline), config)
        }
    };
    let fetcher = Fetcher::start(source, Follow { live: config.live });
    let mut guard =
        terminal::Guard::enter().map_err(|e| format!("cannot take the terminal over: {e}"))?;
    let mut app = App::new(&config, unix_ms());
    let failed = |e: std::io::Error| format!("terminal: {e}");
    while !app.quit && !terminal::stop_requested() {
        while let Ok(update) = fetcher.updates.try_recv() {
            app.update(update);
        }
        let size = guard.terminal.size().map_err(failed)?;
        let areas = ui::areas(ratatui::layout::Rect::new(0, 0, size.width, size.height));
        app.tick(unix_ms(), areas.plot);
        for request in app.outbox.drain(..) {
            if fetcher.requests.send(request).is_err() {
                return Err("the fetcher thread stopped".into());
            }
        }
        guard
            .terminal
            .draw(|frame| ui::draw(frame, &app))
            .map_err(failed)?;
        if event::poll(Duration::from_millis(100)).map_err(failed)? {
            loop {
                app.handle(&event::read().map_err(failed)?);
                if !event::poll(Duration::ZERO).map_err(failed)? {
                    break;
                }
            }
        }
    }
    Ok(())
}
