//! The store keeps what it acknowledged: SIGKILL right after acknowledged
//! exports loses nothing, a file cut in the middle of a record is cut back to
//! the last whole record on restart (with one log line), and `jvmapm export`
//! prints what is stored.

mod common;

use std::collections::BTreeSet;
use std::fs::OpenOptions;

use common::{jvmapm, kv, now_ns, server_span, trace_request, Analyzer, SERVE_ON_FREE_PORTS};
use prost::Message;

/// `count` SERVER spans numbered from `first`, ending now; span ids are the numbers.
fn export(first: u64, count: u64) -> Vec<u8> {
    export_ending(first, count, now_ns())
}

fn export_ending(first: u64, count: u64, end: u64) -> Vec<u8> {
    let spans = (first..first + count)
        .map(|n| {
            server_span(
                n,
                &format!("GET /r{}", n % 7),
                end,
                (n % 50 + 1) * 1000,
                vec![],
            )
        })
        .collect();
    trace_request(vec![kv("service.name", "ledger")], spans).encode_to_vec()
}

fn span_ids(analyzer: &Analyzer) -> BTreeSet<String> {
    analyzer
        .points()
        .iter()
        .map(|p| p["span_id"].as_str().unwrap().to_string())
        .collect()
}

fn expected_ids(range: std::ops::Range<u64>) -> BTreeSet<String> {
    range.map(|n| format!("{:016x}", n + 1)).collect()
}

#[test]
fn acknowledged_points_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    for batch in 0..20 {
        analyzer.post_traces(export(batch * 100, 100));
    }
    analyzer.kill();
    let analyzer = Analyzer::start(dir.path(), &[]);
    assert_eq!(span_ids(&analyzer), expected_ids(0..2000));
    // And it goes on storing after the restart.
    analyzer.post_traces(export(2000, 10));
    assert_eq!(span_ids(&analyzer).len(), 2010);
}

#[test]
fn a_record_cut_in_the_middle_is_recovered_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    analyzer.post_traces(export(0, 10));
    analyzer.stop();

    // A crash in the middle of writing the last point: half a record on disk.
    let points = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "points"))
        .unwrap();
    let file = OpenOptions::new().write(true).open(&points).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - 50).unwrap();

    let analyzer = Analyzer::start(dir.path(), &[]);
    let line = analyzer.wait_for_log("torn tail");
    assert!(line.contains(".points"), "{line}");
    assert_eq!(span_ids(&analyzer), expected_ids(0..9));
    analyzer.post_traces(export(100, 5));
    analyzer.stop();

    // The repaired file holds whole records only: a second restart sees all of them.
    let analyzer = Analyzer::start(dir.path(), &[]);
    let mut expected = expected_ids(0..9);
    expected.extend(expected_ids(100..105));
    assert_eq!(span_ids(&analyzer), expected);
}

#[test]
fn data_older_than_the_retention_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &["--retention", "1h"]);
    analyzer.post_traces(export_ending(0, 5, now_ns() - 3 * 3_600_000_000_000));
    analyzer.post_traces(export(5, 5));
    assert_eq!(span_ids(&analyzer).len(), 10);
    let segments = || {
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count()
    };
    assert_eq!(segments(), 8, "two hours of four files");
    analyzer.stop();
    // Expiry runs at start and every minute after.
    let analyzer = Analyzer::start(dir.path(), &["--retention", "1h"]);
    analyzer.wait_for_log("removed segment past retention");
    assert_eq!(span_ids(&analyzer), expected_ids(5..10));
    assert_eq!(segments(), 4);
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Analyzer::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let (ok, _, err) = jvmapm(&[&SERVE_ON_FREE_PORTS[..], &["--data", data]].concat());
    assert!(!ok);
    assert!(err.contains("in use by another jvmapm serve"), "{err}");
}

#[test]
fn export_prints_stored_points_as_jsonl_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    analyzer.post_traces(export(0, 25));
    let data = dir.path().to_str().unwrap();

    // Beside the running server, without disturbing it.
    let (ok, out, err) = jvmapm(&["export", "--data", data, "--format", "jsonl"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 25);
    assert_eq!(rows[0]["service"], "ledger");
    // These spans carry no HTTP status: null, not 0.
    assert!(rows.iter().all(|r| r["status_code"].is_null()), "{out}");
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r["span_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, expected_ids(0..25));

    let (ok, out, _) = jvmapm(&["export", "--data", data, "--format", "csv"]);
    assert!(ok);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "end_ms,elapsed_us,service,instance,endpoint,status_code,error,trace_id,span_id,cpu_us,sql_count,sql_us,http_count,http_us"
    );
    let csv_rows: Vec<&str> = lines.collect();
    assert_eq!(csv_rows.len(), 25);
    assert!(
        csv_rows.iter().all(|r| r.split(',').nth(5) == Some("")),
        "an empty status_code field: {out}"
    );

    // A time range that holds nothing.
    let (ok, out, _) = jvmapm(&["export", "--data", data, "--from", "0", "--to", "1000"]);
    assert!(ok);
    assert!(out.is_empty());

    let (ok, _, err) = jvmapm(&["export", "--data", "/nonexistent/jvmapm-data"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/jvmapm-data"), "{err}");
}
