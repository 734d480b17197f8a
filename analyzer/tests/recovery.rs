//! Crash recovery of the store as a property: whatever prefix of its files a
//! crash leaves (a cut at any byte), opening the data directory succeeds and
//! yields exactly the whole, intact points before the cut, each with a
//! readable transaction detail; a damaged record anywhere costs that record
//! alone, and a damaged or cut string table costs names, never points.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jvmapm_analyzer::ingest::xlog;
use jvmapm_analyzer::meter::Meter;
use jvmapm_analyzer::point::{Format, Point};

/// Bytes before the first point record, and of one record, in new files.
const HEADER: usize = Format::CURRENT.header().len();
const RECORD_SIZE: usize = Format::CURRENT.record_size();
use jvmapm_analyzer::query::transaction;
use jvmapm_analyzer::query::{self, XlogFilter};
use jvmapm_analyzer::store::instances::Instances;
use jvmapm_analyzer::store::writer::{self, Shared, Work};
use jvmapm_analyzer::store::{Mode, Store};
use jvmapm_contract::clock::unix_ms;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn request(first: u64, count: u64) -> ExportTraceServiceRequest {
    let end = unix_ms() * 1_000_000;
    let spans = (first..first + count)
        .map(|n| Span {
            trace_id: [&[0x5a; 8][..], &n.to_be_bytes()].concat(),
            span_id: (n + 1).to_be_bytes().to_vec(),
            // A new endpoint name now and then, so the string table grows too.
            name: format!("GET /r{}", n / 3),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: end - 1_000_000,
            end_time_unix_nano: end,
            attributes: vec![kv("url.path", &"p".repeat((n % 40) as usize))],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &format!("svc{}", first % 2))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Writes 6 batches of 5 points through the real writer.
fn write_store(dir: &Path) {
    write_batches(dir, 0..6);
}

/// Writes batches of 5 points (the batch numbers number the points).
fn write_batches(dir: &Path, batches: std::ops::Range<u64>) {
    let store = Arc::new(Store::open(dir, Mode::Write).unwrap());
    let (handle, thread) = writer::spawn(
        Shared {
            store: store.clone(),
            meter: Arc::new(Mutex::new(Meter::new(unix_ms()))),
            instances: Arc::new(Instances::load(dir.join("instances.json"))),
        },
        16,
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for batch in batches {
        let work = Work::Traces(xlog::build(request(batch * 5, 5).encode_to_vec().into()).unwrap());
        runtime.block_on(handle.submit(work)).unwrap();
    }
    drop(handle);
    thread.join().unwrap();
}

fn segment_file(dir: &Path, ext: &str) -> PathBuf {
    fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("segments")).unwrap();
    fs::copy(from.join("strings.log"), to.join("strings.log")).unwrap();
    for entry in fs::read_dir(from.join("segments")).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, to.join("segments").join(path.file_name().unwrap())).unwrap();
    }
}

/// Opens a damaged copy and returns the seqs it holds, checking every detail.
fn recovered_seqs(dir: &Path) -> Vec<u64> {
    let store = Store::open(dir, Mode::Write).expect("a damaged store still opens");
    let mut points = Vec::new();
    query::for_each(&store, &XlogFilter::range(0, u64::MAX / 2), |p| {
        points.push(p.clone())
    })
    .unwrap();
    for p in &points {
        let detail =
            transaction::find(&store, p.trace_id.into(), p.span_id.into(), Some(p.end_ms)).unwrap();
        assert!(detail.is_some(), "point {} has its detail", p.seq);
    }
    points.iter().map(|p| p.seq).collect()
}

#[test]
fn any_cut_of_the_points_file_keeps_exactly_the_whole_records_before_it() {
    let original = tempfile::tempdir().unwrap();
    write_store(original.path());
    let len = fs::metadata(segment_file(original.path(), "points"))
        .unwrap()
        .len();
    assert_eq!(len, (HEADER + 30 * RECORD_SIZE) as u64);
    for cut in (0..=len).step_by(37) {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(original.path(), copy.path());
        OpenOptions::new()
            .write(true)
            .open(segment_file(copy.path(), "points"))
            .unwrap()
            .set_len(cut)
            .unwrap();
        // A cut inside the header leaves a new, empty file.
        let whole = cut.saturating_sub(HEADER as u64) / RECORD_SIZE as u64;
        assert_eq!(
            recovered_seqs(copy.path()),
            (1..=whole).collect::<Vec<_>>(),
            "cut at {cut}"
        );
    }
}

#[test]
fn any_cut_of_the_details_drops_only_points_that_lost_what_they_refer_to() {
    let original = tempfile::tempdir().unwrap();
    write_store(original.path());
    for ext in ["details"] {
        let path_of = |dir: &Path| {
            if ext == "strings" {
                dir.join("strings.log")
            } else {
                segment_file(dir, ext)
            }
        };
        let len = fs::metadata(path_of(original.path())).unwrap().len();
        let mut previous = 0;
        for cut in (0..=len).step_by(23).chain([len]) {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(original.path(), copy.path());
            OpenOptions::new()
                .write(true)
                .open(path_of(copy.path()))
                .unwrap()
                .set_len(cut)
                .unwrap();
            let seqs = recovered_seqs(copy.path());
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "a prefix, {ext} cut at {cut}"
            );
            assert!(
                seqs.len() >= previous,
                "a longer file keeps at least as much"
            );
            previous = seqs.len();
        }
        assert_eq!(previous, 30, "the whole {ext} file keeps everything");
    }
}

/// The names of the points of `dir`, by seq: (service, endpoint).
fn names(dir: &Path) -> Vec<(u64, String, String)> {
    let store = Store::open(dir, Mode::Write).expect("a damaged store still opens");
    let mut names = Vec::new();
    query::for_each(&store, &XlogFilter::range(0, u64::MAX / 2), |p| {
        let name = |id| store.strings.get(id).to_string();
        names.push((p.seq, name(p.service), name(p.endpoint)))
    })
    .unwrap();
    names
}

#[test]
fn any_cut_of_the_strings_keeps_every_point_and_the_names_before_it() {
    let original = tempfile::tempdir().unwrap();
    write_store(original.path());
    let all = names(original.path());
    assert_eq!(all.len(), 30);
    let len = fs::metadata(original.path().join("strings.log"))
        .unwrap()
        .len();
    for cut in (0..=len).step_by(23).chain([len]) {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(original.path(), copy.path());
        OpenOptions::new()
            .write(true)
            .open(copy.path().join("strings.log"))
            .unwrap()
            .set_len(cut)
            .unwrap();
        assert_eq!(
            recovered_seqs(copy.path()),
            (1..=30).collect::<Vec<_>>(),
            "strings cut at {cut}"
        );
        for (got, want) in names(copy.path()).iter().zip(&all) {
            for (got, want) in [(&got.1, &want.1), (&got.2, &want.2)] {
                assert!(
                    got == want || got.starts_with("<damaged name #"),
                    "strings cut at {cut}: {got} for {want}"
                );
            }
        }
    }
}

// Before damaged records were skipped, one ended the recovered prefix.
#[test]
fn a_damaged_record_costs_that_record_alone() {
    let original = tempfile::tempdir().unwrap();
    write_store(original.path());
    for damaged in [0u64, 7, 29] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(original.path(), copy.path());
        let path = segment_file(copy.path(), "points");
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER + (damaged as usize) * RECORD_SIZE + 20] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert_eq!(
            recovered_seqs(copy.path()),
            (1..=30).filter(|&s| s != damaged + 1).collect::<Vec<_>>()
        );
        // Still so after the repair.
        assert_eq!(recovered_seqs(copy.path()).len(), 29);
    }
}

#[test]
fn any_damaged_byte_of_the_strings_costs_at_most_the_names_it_hit() {
    let original = tempfile::tempdir().unwrap();
    write_store(original.path());
    let all = names(original.path());
    let len = fs::metadata(original.path().join("strings.log"))
        .unwrap()
        .len() as usize;
    for at in (0..len).step_by(5) {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(original.path(), copy.path());
        let path = copy.path().join("strings.log");
        let mut bytes = fs::read(&path).unwrap();
        bytes[at] ^= 0x5a;
        fs::write(&path, bytes).unwrap();
        // New names after the damage must not take the ids of lost ones.
        write_batches(copy.path(), 20..22);
        let got = names(copy.path());
        assert_eq!(got.len(), 40, "strings damaged at {at}");
        let mut lost = std::collections::BTreeSet::new();
        for (got, want) in got.iter().zip(&all) {
            for (got, want) in [(&got.1, &want.1), (&got.2, &want.2)] {
                if got != want {
                    assert!(
                        got.starts_with("<damaged name #"),
                        "damaged at {at}: {got} for {want}"
                    );
                    lost.insert(want.clone());
                }
            }
        }
        assert!(lost.len() <= 1, "damaged at {at}: lost {lost:?}");
    }
}

/// A data directory written before outgoing calls were kept: its points
/// files are of the first format (104-byte records, no header). It opens,
/// every point reads back with its detail, and points arriving for the same
/// hour are appended in its format.
#[test]
fn a_points_file_of_the_first_format_opens_and_is_appended_to_in_it() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let path = segment_file(dir.path(), "points");
    let current = fs::read(&path).unwrap();
    let mut old = Vec::new();
    for rec in current[HEADER..].chunks_exact(RECORD_SIZE) {
        let point = Point::decode(Format::CURRENT, rec).unwrap();
        assert!(point.lineage.is_some(), "the current format keeps lineage");
        point.encode(Format::V1, &mut old);
    }
    fs::write(&path, &old).unwrap();

    assert_eq!(recovered_seqs(dir.path()), (1..=30).collect::<Vec<_>>());
    let store = Store::open(dir.path(), Mode::ReadOnly).unwrap();
    let seg = store.segments_in(0, u64::MAX / 2).pop().unwrap();
    assert_eq!(seg.format, Format::V1);
    assert!(seg
        .read_points(0, 30)
        .unwrap()
        .iter()
        .all(|p| p.lineage.is_none()));
    drop(store);

    write_batches(dir.path(), 6..8);
    assert_eq!(recovered_seqs(dir.path()), (1..=40).collect::<Vec<_>>());
    let len = fs::metadata(&path).unwrap().len();
    assert_eq!(len % 104, 0, "still the first format: {len} bytes");
}
