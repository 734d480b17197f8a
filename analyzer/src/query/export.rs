//! `jvmapm export`: prints stored points offline, one per line, as JSON lines
//! or CSV with the same fields as the query API. Reads a data directory
//! without locking or changing it, so it also works beside a running server.

use std::io::{self, Write};
use std::path::Path;

use crate::query::answers::PointRow;
use crate::query::{self, XlogFilter};
use crate::store::{Mode, Store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug)]
pub enum ExportError {
    Store(StoreError),
    Io(io::Error),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Store(e) => write!(f, "{e}"),
            ExportError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// Writes the points of `data_dir` ending in `[from_ms, to_ms]` to `out`;
/// returns how many were written.
pub fn export(
    data_dir: &Path,
    from_ms: u64,
    to_ms: u64,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let store = Store::open(data_dir, Mode::ReadOnly).map_err(ExportError::Store)?;
    let mut written = 0;
    let mut failure = None;
    if format == ExportFormat::Csv {
        writeln!(out, "{}", PointRow::FIELDS.join(",")).map_err(ExportError::Io)?;
    }
    query::for_each(&store, &XlogFilter::range(from_ms, to_ms), |p| {
        if failure.is_some() {
            return;
        }
        let row = PointRow::new(p, &store);
        let result = match format {
            ExportFormat::Jsonl => serde_json::to_writer(&mut *out, &row)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            ExportFormat::Csv => writeln!(out, "{}", row.csv()),
        };
        match result {
            Ok(()) => written += 1,
            Err(e) => failure = Some(e),
        }
    })
    .map_err(ExportError::Io)?;
    if let Some(e) = failure {
        return Err(ExportError::Io(e));
    }
    out.flush().map_err(ExportError::Io)?;
    Ok(written)
}
