//! Transaction profiles end to end, with no JVM: spans carrying the
//! `jvmapm.profile` attributes, as our agent or any OpenTelemetry sender
//! writes them, are sent over OTLP/HTTP to a real `jvmapm serve`; the
//! transaction API returns each one parsed, `/api/v1/profile` merges those
//! of an area of the XLog, and `jvmapm profile` prints them as folded
//! stacks, a call tree or an SVG flame graph, live and offline.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{attr, kv, now_ns, server_span, trace_request, Analyzer};
use jvmapm_analyzer::query::answers::{AreaProfile, Profile};
use jvmapm_analyzer::query::call_tree::CallTree;
use jvmapm_contract::names::span;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span, Status};
use prost::Message;
use serde_json::Value;

const SLOW_1: &str = "Thread.run;Shop.slow;Shop.compute:42;[running] 50\n\
                      Thread.run;Shop.slow;Thread.sleep;[sleeping] 20\n";
const SLOW_2: &str = "Thread.run;Shop.slow;Shop.compute:42;[running] 30\n\
                      Thread.run;Shop.slow;Db.query;[native] 10\n";

/// A span of `shop` numbered `n` that took `elapsed_ms`, with `profile`
/// as folded stacks (and its counts) when given.
fn span_of(n: u64, name: &str, elapsed_ms: u64, profile: Option<(&str, i64, i64)>) -> Span {
    let mut attributes = vec![kv("http.route", name.trim_start_matches("GET "))];
    if let Some((folded, samples, truncated)) = profile {
        attributes.extend([
            kv(span::PROFILE, folded),
            attr(span::PROFILE_SAMPLES, AnyValue::IntValue(samples)),
            attr(span::PROFILE_TRUNCATED, AnyValue::IntValue(truncated)),
            attr(span::PROFILE_DROPPED, AnyValue::IntValue(1)),
            attr(span::PROFILE_INTERVAL, AnyValue::IntValue(10_000)),
        ]);
    }
    server_span(n, name, now_ns(), elapsed_ms * 1000, attributes)
}

/// A server holding: two slow profiled transactions of `shop` (the second
/// failed), a slow one without a profile, a fast profiled one, and a slow
/// profiled one of another service.
fn analyzer_with_profiles(dir: &std::path::Path) -> Analyzer {
    let analyzer = Analyzer::start(dir, &[]);
    let mut failed = span_of(2, "GET /slow", 900, Some((SLOW_2, 45, 5)));
    failed.status = Some(Status {
        code: StatusCode::Error as i32,
        ..Status::default()
    });
    let shop = vec![
        span_of(1, "GET /slow", 800, Some((SLOW_1, 70, 0))),
        failed,
        span_of(3, "GET /slow", 700, None),
        span_of(
            4,
            "GET /fast",
            20,
            Some(("Thread.run;Shop.fast;[running] 3", 3, 0)),
        ),
    ];
    analyzer.post_traces(trace_request(vec![kv("service.name", "shop")], shop).encode_to_vec());
    let other = vec![span_of(
        5,
        "GET /slow",
        800,
        Some(("Other.run;[waiting] 9", 9, 0)),
    )];
    analyzer.post_traces(trace_request(vec![kv("service.name", "other")], other).encode_to_vec());
    analyzer
}

/// The profile of the transaction numbered `n` (see `server_span`).
fn transaction(analyzer: &Analyzer, n: u64) -> Value {
    let trace = format!("{}{:016x}", "5e".repeat(8), n);
    analyzer.get(&format!("/api/v1/transactions/{trace}/{:016x}", n + 1))
}

/// Folded lines as stack → count, duplicates added.
fn lines(folded: &str) -> HashMap<String, u64> {
    let mut sums = HashMap::new();
    for line in folded.lines().filter(|l| !l.trim().is_empty()) {
        let (stack, count) = line.trim().rsplit_once(' ').expect("a folded line");
        *sums.entry(stack.to_string()).or_insert(0) += count.parse::<u64>().unwrap();
    }
    sums
}

/// Where the transactions of `shop` that took 500 ms or more fall, as API parameters.
fn slow_shop_area() -> String {
    format!(
        "from={}&service=shop&endpoint=*slow*&min_ms=500",
        now_ns() / 1_000_000 - 600_000
    )
}

#[test]
fn a_transaction_returns_its_profile_parsed_or_null() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = analyzer_with_profiles(dir.path());

    let slow = transaction(&analyzer, 1);
    let profile: Profile = serde_json::from_value(slow["profile"].clone()).unwrap();
    assert_eq!(lines(&profile.tree.folded()), lines(SLOW_1));
    let path: Vec<String> = (profile.tree.hottest_path().iter())
        .map(|&id| profile.tree.node(id).frame.to_string())
        .collect();
    assert_eq!(
        path,
        [
            "",
            "Thread.run",
            "Shop.slow",
            "Shop.compute:42",
            "[running]"
        ]
    );
    assert_eq!(profile.tree.samples(), 70);
    assert_eq!(
        (profile.samples, profile.dropped, profile.truncated),
        (70, 1, 0)
    );
    assert_eq!(profile.interval_us, Some(10_000));
    assert_eq!(
        slow["attributes"][span::PROFILE],
        SLOW_1,
        "the raw attribute stays"
    );

    let unprofiled = transaction(&analyzer, 3);
    assert_eq!(unprofiled["profile"], Value::Null, "{unprofiled}");
    assert_eq!(unprofiled["endpoint"], slow["endpoint"]);
}

#[test]
fn an_area_profile_is_the_sum_of_its_transactions_and_leaves_out_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = analyzer_with_profiles(dir.path());
    let area = |extra: &str| -> AreaProfile {
        let answer = analyzer.get(&format!("/api/v1/profile?{}{extra}", slow_shop_area()));
        serde_json::from_value(answer).unwrap()
    };

    let slow = area("");
    assert_eq!(
        (slow.transactions, slow.read, slow.with_profile),
        (3, 3, 2),
        "the fast one and the other service's are outside"
    );
    let mut sum = CallTree::default();
    for n in [1, 2] {
        let profile: Profile =
            serde_json::from_value(transaction(&analyzer, n)["profile"].clone()).unwrap();
        sum.merge(&profile.tree);
    }
    assert_eq!(slow.profile.tree, sum);
    assert_eq!(
        lines(&slow.profile.tree.folded()),
        lines(&format!("{SLOW_1}{SLOW_2}"))
    );
    let shop = &slow.profile;
    assert_eq!(
        (shop.samples, shop.dropped, shop.truncated, shop.interval_us),
        (115, 2, 5, Some(10_000))
    );

    let failed = area("&errors=true");
    assert_eq!(lines(&failed.profile.tree.folded()), lines(SLOW_2));
    let first = area("&limit=1");
    assert_eq!((first.transactions, first.read), (3, 1));
    let everything = area("&service=&endpoint=&min_ms=");
    assert_eq!(everything.with_profile, 4, "unfiltered, all four profiles");
}

/// `jvmapm profile` with `args`: its standard output, asserting success.
fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jvmapm"))
        .arg("profile")
        .args(args)
        .output()
        .expect("jvmapm runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The CLI's arguments for [`slow_shop_area`].
fn slow_shop_args(from: &str) -> Vec<&str> {
    vec![
        "--from",
        from,
        "--service",
        "shop",
        "--endpoint",
        "*slow*",
        "--min-ms",
        "500",
    ]
}

#[test]
fn the_cli_prints_the_merged_folded_stacks_live_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = analyzer_with_profiles(dir.path());
    let from = (now_ns() / 1_000_000 - 600_000).to_string();
    let server = analyzer.url("");
    let expected = lines(&format!("{SLOW_1}{SLOW_2}"));

    let mut live = vec!["--server", &server, "--format", "folded"];
    live.extend(slow_shop_args(&from));
    assert_eq!(lines(&cli(&live)), expected);

    let data = dir.path().to_str().unwrap();
    let mut offline = vec!["--data", data, "--format", "folded"];
    offline.extend(slow_shop_args(&from));
    assert_eq!(lines(&cli(&offline)), expected, "read in place");

    let mut tree = vec!["--server", &server, "--errors"];
    tree.extend(slow_shop_args(&from));
    let text = cli(&tree);
    assert!(
        text.starts_with("40 samples from 1 transactions with a profile (1 read of 1 in the area)"),
        "{text}"
    );
    assert!(
        text.contains("\n 75.00%        30      Shop.compute:42\n"),
        "{text}"
    );
}

#[test]
fn the_cli_draws_a_flame_graph_as_well_formed_svg() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = analyzer_with_profiles(dir.path());
    let from = (now_ns() / 1_000_000 - 600_000).to_string();
    let server = analyzer.url("");
    let mut args = vec!["--server", &server, "--format", "svg"];
    args.extend(slow_shop_args(&from));
    let svg = cli(&args);
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert_well_formed(&svg);
    // A rectangle a node of the merged tree, and one for all samples.
    let nodes = CallTree::parse(&format!("{SLOW_1}{SLOW_2}")).len();
    assert_eq!(svg.matches("<rect ").count(), nodes);
    for frame in ["Shop.compute:42", "[sleeping]", "Db.query"] {
        assert!(svg.contains(&format!("<title>{frame} (")), "{frame}: {svg}");
    }
}

/// Fails unless `xml` is well-formed as far as an SVG of ours goes: tags
/// nest and close, attribute values are quoted, `&` only starts an entity.
fn assert_well_formed(xml: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        for (at, _) in text.match_indices('&') {
            let entity = &text[at..text[at..].find(';').map_or(text.len(), |e| at + e + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "a bare & in {text:?}"
            );
        }
        let end = start + rest[start..].find('>').expect("a tag closes");
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "a < inside the tag {tag:?}");
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in {tag:?}"
        );
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "</{name}> closes another tag");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().expect("a tag name"));
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "never closed: {open:?}");
    assert!(rest.trim().is_empty(), "text after the root: {rest:?}");
}
