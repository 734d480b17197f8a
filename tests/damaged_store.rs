//! Damage is not a crash: a few damaged bytes in the middle of `strings.log`
//! or of a `.points` file cost the damaged records alone. After a restart of
//! the real `jvmapm serve`, every undamaged acknowledged point is there with
//! its own names, new names never take the ids of lost ones, the server logs
//! each damaged file with the byte offset, and `jvmapm export` names what it
//! skipped on stderr and exits with status 3.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{kv, now_ns, server_span, trace_request, Analyzer};
use jvmapm_analyzer::point::Format;
use prost::Message;
use serde_json::Value;

const SERVICES: [&str; 3] = ["ledger", "billing", "shipping"];

/// 40 points of `service`, numbered from `first`, on 8 endpoints of their own.
fn export(service: &str, first: u64) -> Vec<u8> {
    let spans = (first..first + 40)
        .map(|n| {
            server_span(
                n,
                &format!("GET /{service}/{}", n % 8),
                now_ns(),
                1000,
                vec![],
            )
        })
        .collect();
    trace_request(vec![kv("service.name", service)], spans).encode_to_vec()
}

/// Span id → (service, endpoint) of every point the server answers with.
fn named_points(analyzer: &Analyzer) -> BTreeMap<String, (String, String)> {
    analyzer
        .points()
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap().to_string();
            (text("span_id"), (text("service"), text("endpoint")))
        })
        .collect()
}

fn points_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "points"))
        .unwrap()
}

/// The names of `strings.log` with the offset of their record's payload
/// (`[0xFF][id: u32][name]` in frames of `[len][crc][payload]`).
fn name_records(bytes: &[u8]) -> Vec<(usize, String)> {
    let mut records = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let payload = &bytes[at + 8..at + 8 + len];
        assert_eq!(payload[0], 0xFF, "a name record at {at}");
        records.push((at + 8, String::from_utf8_lossy(&payload[5..]).into_owned()));
        at += 8 + len;
    }
    records
}

/// `jvmapm export` of `dir`: exit code, stdout, stderr.
fn export_cli(dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jvmapm"))
        .args(["export", "--data", dir.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn damaged_names_and_points_cost_only_themselves_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    for (i, service) in SERVICES.iter().enumerate() {
        analyzer.post_traces(export(service, i as u64 * 100));
    }
    let before = named_points(&analyzer);
    assert_eq!(before.len(), 120);
    analyzer.stop();
    let (code, _, err) = export_cli(dir.path());
    assert_eq!(code, Some(0), "an intact store exports in silence: {err}");

    // 4 flipped bytes in the middle of strings.log: inside the name of one endpoint.
    let strings = dir.path().join("strings.log");
    let mut bytes = std::fs::read(&strings).unwrap();
    let records = name_records(&bytes);
    let (payload_at, lost_name) = records
        .iter()
        .find(|(_, name)| name == "GET /billing/3")
        .cloned()
        .unwrap();
    assert!(
        payload_at > 100 && payload_at + 100 < bytes.len(),
        "in the middle"
    );
    for b in &mut bytes[payload_at + 5..payload_at + 9] {
        *b ^= 0xA5;
    }
    std::fs::write(&strings, &bytes).unwrap();

    // 8 flipped bytes in a point record in the middle of the .points file.
    let points = points_file(dir.path());
    let mut bytes = std::fs::read(&points).unwrap();
    let damaged_span = format!("{:016x}", 120 + 1);
    let (header, size) = (
        Format::CURRENT.header().len(),
        Format::CURRENT.record_size(),
    );
    let record = bytes[header..]
        .chunks_exact(size)
        .position(|r| {
            format!("{:016x}", u64::from_be_bytes(r[40..48].try_into().unwrap())) == damaged_span
        })
        .unwrap();
    assert!(record > 0 && record < 119, "a record in the middle");
    let at = header + record * size;
    for b in &mut bytes[at + 60..at + 68] {
        *b ^= 0x3C;
    }
    std::fs::write(&points, &bytes).unwrap();

    let analyzer = Analyzer::start(dir.path(), &[]);
    let mut logged = [
        analyzer.wait_for_log("damaged records skipped"),
        analyzer.wait_for_log("damaged records skipped"),
    ];
    logged.sort_by_key(|line| !line.contains("strings.log"));
    assert!(
        logged[0].contains("strings.log")
            && logged[0].contains(&format!("at_byte={}", payload_at - 8)),
        "{logged:?}"
    );
    assert!(
        logged[1].contains(".points") && logged[1].contains(&format!("at_byte={at}")),
        "{logged:?}"
    );

    // Every other point, each with its own names; the lost name has a placeholder.
    let check = |after: &BTreeMap<String, (String, String)>| {
        let mut placeholders = 0;
        for (span, (service, endpoint)) in &before {
            if *span == damaged_span {
                assert!(!after.contains_key(span), "the damaged point is skipped");
                continue;
            }
            let (got_service, got_endpoint) = &after[span];
            assert_eq!(got_service, service, "span {span}");
            if *endpoint == lost_name {
                assert!(
                    got_endpoint.starts_with("<damaged name #"),
                    "{got_endpoint}"
                );
                placeholders += 1;
            } else {
                assert_eq!(got_endpoint, endpoint, "span {span}");
            }
        }
        assert!(placeholders >= 4, "the points of the lost name are kept");
    };
    let after = named_points(&analyzer);
    assert_eq!(after.len(), 119);
    check(&after);

    // New names get new ids: no old point takes one of them.
    analyzer.post_traces(export("returns", 1000));
    let after = named_points(&analyzer);
    assert_eq!(after.len(), 159);
    check(&after);
    assert!(after
        .values()
        .filter(|(service, _)| service == "returns")
        .all(|(_, endpoint)| endpoint.starts_with("GET /returns/")));
    analyzer.stop();

    // And so after a second restart.
    let analyzer = Analyzer::start(dir.path(), &[]);
    check(&named_points(&analyzer));
    analyzer.stop();

    // export prints every other point and says what it skipped.
    let (code, out, err) = export_cli(dir.path());
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(out.lines().count(), 159);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().any(|r| r["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("<damaged name #")));
    assert!(err.contains("2 damaged records skipped"), "{err}");
    assert!(
        err.contains(&format!("strings.log at byte {}", payload_at - 8)),
        "{err}"
    );
    assert!(err.contains(&format!(".points at byte {at}")), "{err}");
}

#[test]
fn a_torn_tail_of_the_string_table_is_cut_and_its_ids_stay_taken() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    analyzer.post_traces(export("ledger", 0));
    let before = named_points(&analyzer);
    analyzer.stop();

    // Half of the last name's record is gone.
    let strings = dir.path().join("strings.log");
    let len = std::fs::metadata(&strings).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&strings)
        .unwrap();
    file.set_len(len - 6).unwrap();

    let analyzer = Analyzer::start(dir.path(), &[]);
    let line = analyzer.wait_for_log("torn tail");
    assert!(line.contains("strings.log"), "{line}");
    analyzer.post_traces(export("billing", 100));
    analyzer.stop();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let after = named_points(&analyzer);
    assert_eq!(after.len(), 80);
    for (span, (service, endpoint)) in &before {
        let (got_service, got_endpoint) = &after[span];
        assert_eq!(got_service, service);
        assert!(
            got_endpoint == endpoint || got_endpoint.starts_with("<damaged name #"),
            "{got_endpoint} for {endpoint}"
        );
    }
}
