//! A trace that a JVM with the agent begins and a service running another
//! SDK continues. The shop (the HttpService fixture with the agent, on JDK
//! 17 and on JDK 25 when found, under `-Xverify:all`) calls,
//! on each /checkout, a Python HTTP service traced with the official
//! OpenTelemetry Python SDK (`tests/interop/otel_python_server.py`). In the
//! analyzer the trace holds both services' spans with the right parents,
//! and the service map counts exactly the calls made. (Agent to agent is
//! tested in `agent_outgoing.rs`, and by the demo's service map.)

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::Command;

use common::{
    java_launchers, java_with_agent, launcher_version, now_ns, python_with_otel_sdk, spawn_piped,
    Analyzer, JvmTurn,
};
use serde_json::Value;

const CHECKOUTS: usize = 3;

/// Reads lines until "port N"; returns N.
fn port_from(lines: &mut impl BufRead, what: &str) -> u16 {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "{what} ended before it listened"
        );
        if let Some(port) = line.trim().strip_prefix("port ") {
            return port.parse().unwrap();
        }
    }
}

#[test]
fn a_jvm_trace_joins_a_python_sdk_service_and_the_map_counts_each_call() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/otel_python_server.py");
    let mut python = Command::new(python_with_otel_sdk());
    python
        .arg(script)
        .arg(analyzer.url("/v1/traces"))
        .arg("py-stock");
    let (mut stock, mut stock_out) = spawn_piped(&mut python);
    let stock_port = port_from(&mut stock_out, "the Python service");

    let from_ms = now_ns() / 1_000_000;
    let client = reqwest::blocking::Client::new();
    let mut shops = Vec::new();
    for launcher in java_launchers() {
        let service = format!("shop-{}", launcher_version(&launcher));
        let stock_url = format!("-Djvmapm.demo.stock=http://127.0.0.1:{stock_port}");
        let mut java = java_with_agent(
            &launcher,
            &format!(
                "service={service},endpoint=http://{},export_interval=200ms",
                analyzer.grpc
            ),
            &[&stock_url, "HttpService"],
        );
        let (mut shop, mut shop_out) = spawn_piped(&mut java);
        let shop_port = port_from(&mut shop_out, &service);
        for _ in 0..CHECKOUTS {
            let answer = client
                .get(format!("http://127.0.0.1:{shop_port}/checkout"))
                .send()
                .unwrap();
            assert_eq!(answer.status(), 200, "{service}: {:?}", answer.text());
        }
        let points = analyzer.points_of(&service, CHECKOUTS);
        drop(shop.stdin.take());
        let _ = shop.wait();
        assert_eq!(points.len(), CHECKOUTS, "{points:#?}");
        shops.push((service, points));
    }
    let stock_points = analyzer.points_of("py-stock", CHECKOUTS * shops.len());
    drop(stock.stdin.take());
    let _ = stock.wait();
    assert_eq!(
        stock_points.len(),
        CHECKOUTS * shops.len(),
        "{stock_points:#?}"
    );

    for point in shops.iter().flat_map(|(_, points)| points) {
        assert_eq!(point["http_count"], 1, "{point}");
        let trace = analyzer.get(&format!(
            "/api/v1/traces/{}?around={}",
            point["trace_id"].as_str().unwrap(),
            point["end_ms"]
        ));
        let spans = trace["spans"].as_array().unwrap();
        let by_kind = |service: &str, kind: &str| -> Vec<&Value> {
            spans
                .iter()
                .filter(|s| s["service"] == service && s["kind"] == kind)
                .collect()
        };
        // shop SERVER → shop CLIENT → py-stock SERVER, nothing else.
        let shop = point["service"].as_str().unwrap();
        let server = by_kind(shop, "SPAN_KIND_SERVER");
        let call = by_kind(shop, "SPAN_KIND_CLIENT");
        let callee = by_kind("py-stock", "SPAN_KIND_SERVER");
        assert_eq!(
            (server.len(), call.len(), callee.len(), spans.len()),
            (1, 1, 1, 3),
            "{trace:#}"
        );
        assert_eq!(server[0]["span_id"], point["span_id"]);
        assert_eq!(server[0]["parent_span_id"], "", "a root: {trace:#}");
        assert_eq!(call[0]["parent_span_id"], server[0]["span_id"]);
        assert_eq!(
            call[0]["attributes"]["url.full"],
            format!("http://127.0.0.1:{stock_port}/sql?n=")
        );
        assert_eq!(callee[0]["parent_span_id"], call[0]["span_id"], "{trace:#}");
        assert_eq!(callee[0]["parent_missing"], false);
        assert!(callee[0]["depth"].as_u64() > call[0]["depth"].as_u64());
    }

    let map = analyzer.get(&format!(
        "/api/v1/servicemap?from={from_ms}&to={}",
        now_ns() / 1_000_000 + 1_000
    ));
    let edges = map["edges"].as_array().unwrap();
    assert_eq!(edges.len(), shops.len(), "{map:#}");
    for (service, _) in &shops {
        let edge = edges
            .iter()
            .find(|e| e["caller"] == service.as_str())
            .unwrap_or_else(|| panic!("no edge from {service}: {map:#}"));
        assert_eq!(
            (
                &edge["callee"],
                &edge["callee_is_service"],
                &edge["calls"],
                &edge["errors"]
            ),
            (
                &Value::from("py-stock"),
                &Value::from(true),
                &Value::from(CHECKOUTS),
                &Value::from(0)
            ),
            "{map:#}"
        );
        assert!(edge["callee_p50_ms"].as_f64().is_some(), "{map:#}");
    }
}
