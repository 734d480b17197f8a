//! Outgoing HTTP calls and trace propagation, end to end: two JVMs with the
//! agent (JDK 17 and every newer JDK found, under `-Xverify:all`) export to
//! a real `jvmapm serve`. A front service on Debian's embedded Tomcat 10
//! calls a back service (the JDK HTTP server, which runs its own SQL) once
//! through each client library, once from an executor's thread (the
//! transaction's call too), once to the
//! back's failing endpoint and once to a closed port. The tests compare the
//! spans the analyzer received with the headers the back service answered
//! it received.

mod common;

use std::collections::BTreeMap;

use common::fixture::{self, exporting_to, Fixture};
use common::{
    java_launchers, java_with_agent, launcher_version, outgoing_fixtures, Analyzer, JvmTurn,
};
use serde_json::Value;

/// What the back service received on one call, as the front reported it.
#[derive(Debug)]
struct Received {
    status: String,
    traceparent: String,
    tracestate: String,
}

/// "NAME STATUS TRACEPARENT TRACESTATE" lines by name.
fn received(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, Received> {
    lines
        .into_iter()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 4, "{line:?}");
            (
                parts[0].to_string(),
                Received {
                    status: parts[1].to_string(),
                    traceparent: parts[2].to_string(),
                    tracestate: parts[3].to_string(),
                },
            )
        })
        .collect()
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The libraries the front calls the back through, each once a request.
const LIBRARIES: [&str; 6] = [
    "urlconnection",
    "jdk-send",
    "jdk-async",
    "apache4",
    "apache5",
    "okhttp",
];

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn calls_through_every_client_are_children_that_the_callee_continues() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let classpath = outgoing_fixtures();
    for launcher in java_launchers() {
        let version = launcher_version(&launcher);
        let (front_service, back_service) = (format!("front-{version}"), format!("back-{version}"));
        let options = |service: &str| exporting_to(&analyzer, service);
        let back = fixture::back_service(&launcher, &options(&back_service));
        let back_port = back.port;
        let closed = closed_port();
        let front = Fixture::start(java_with_agent(
            &launcher,
            &options(&front_service),
            &[
                "-cp",
                &classpath,
                "OutgoingFront",
                &back_port.to_string(),
                &closed.to_string(),
            ],
        ));

        // Outside any transaction: no span, and no header leaks.
        let outside = received(
            front
                .said
                .iter()
                .filter_map(|l| l.strip_prefix("outside ").map(String::from)),
        );
        assert_eq!(outside.len(), LIBRARIES.len(), "{outside:?}");
        for (library, got) in &outside {
            assert_eq!(
                (got.status.as_str(), got.traceparent.as_str()),
                ("200", "-"),
                "{library} outside a transaction"
            );
        }

        let body = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}/call", front.port))
            .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
            .header("tracestate", "vendor=opaque")
            .send()
            .unwrap()
            .text()
            .unwrap();
        let calls = received(body.lines().map(String::from));
        let front_stderr = front.stop();
        let back_stderr = back.stop();
        for stderr in [&front_stderr, &back_stderr] {
            assert!(!stderr.contains("as it was"), "{version}: {stderr}");
        }

        // The front's transaction continues the caller's trace and counts
        // the calls made in it: every library, the executor's, /fail, the
        // closed port.
        let points = analyzer.points_of(&front_service, 1);
        assert_eq!(points.len(), 1, "{points:#?}\n{front_stderr}");
        let point = &points[0];
        assert_eq!(point["trace_id"], TRACE);
        let transaction = analyzer.detail(point);
        assert_eq!(transaction["parent_span_id"], CALLER_SPAN);
        let made_in_it = LIBRARIES.len() as u64 + 3;
        let attributes = &transaction["attributes"];
        assert_eq!(
            attributes["jvmapm.http.count"].as_u64(),
            Some(made_in_it),
            "{version}: {transaction:#}"
        );
        let http_us = attributes["jvmapm.http.time"].as_u64().unwrap();
        assert!(
            http_us > 0 && http_us <= point["elapsed_us"].as_u64().unwrap(),
            "{transaction:#}"
        );

        // One CLIENT span per call (layers inside a library make none of
        // their own), each a child of the transaction.
        let clients: BTreeMap<String, &Value> = transaction["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["kind"] == "SPAN_KIND_CLIENT"
                    && c["attributes"]["http.request.method"].is_string()
            })
            .inspect(|c| assert_eq!(c["parent_span_id"], point["span_id"], "{c}"))
            .map(|c| (c["span_id"].as_str().unwrap().to_string(), c))
            .collect();
        assert_eq!(
            clients.len() as u64,
            made_in_it,
            "{version}: {transaction:#}"
        );

        let back_points = analyzer.points_of(&back_service, 2 * LIBRARIES.len() + 2);
        let back_url = format!("http://127.0.0.1:{back_port}");
        for library in LIBRARIES {
            let got = &calls[library];
            assert_eq!(got.status, "200", "{library}: {got:?}");
            assert_eq!(got.tracestate, "vendor=opaque", "{library}: passed on");
            // The back received the CLIENT span as the parent it names.
            let parts: Vec<&str> = got.traceparent.split('-').collect();
            assert_eq!(parts.len(), 4, "{library}: {got:?}");
            assert_eq!(
                (parts[0], parts[1], parts[3]),
                ("00", TRACE, "01"),
                "{library}"
            );
            let span = clients.get(parts[2]).unwrap_or_else(|| {
                panic!(
                    "{version} {library}: no CLIENT span {}: {clients:#?}",
                    parts[2]
                )
            });
            let attributes = &span["attributes"];
            let method = if library == "urlconnection" {
                "POST"
            } else {
                "GET"
            };
            assert_eq!(span["name"], method, "{library}");
            assert_eq!(attributes["http.request.method"], method, "{library}");
            // No credentials, no query values (the fixture sends both).
            let url = match library {
                "urlconnection" => format!("{back_url}/echo?user=&n="),
                "okhttp" => format!("{back_url}/echo?q="),
                _ => format!("{back_url}/echo"),
            };
            assert_eq!(attributes["url.full"], url.as_str(), "{library}: {span}");
            assert_eq!(attributes["server.address"], "127.0.0.1", "{library}");
            assert_eq!(
                attributes["server.port"].as_u64(),
                Some(u64::from(back_port))
            );
            assert_eq!(attributes["http.response.status_code"].as_u64(), Some(200));
            assert!(
                span["status"].is_null() && attributes["error.type"].is_null(),
                "{span}"
            );

            // Its callee's SERVER span, in the back's JVM, is its child in
            // the same trace, and the back's SQL is the callee's child.
            let callee: Vec<Value> = back_points
                .iter()
                .filter(|p| p["trace_id"] == TRACE)
                .map(|p| analyzer.detail(p))
                .filter(|d| d["parent_span_id"] == parts[2])
                .collect();
            assert_eq!(callee.len(), 1, "{version} {library}: {back_points:#?}");
            let sql: Vec<&Value> = callee[0]["children"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["attributes"]["db.query.text"].is_string())
                .collect();
            assert!(!sql.is_empty(), "{library}: {:#}", callee[0]);
        }

        // A 500 and a refused connection are failed CLIENT spans.
        let failed = |what: &str| -> Vec<&&Value> {
            clients
                .values()
                .filter(|c| {
                    c["status"]["code"] == 2
                        && c["attributes"]["url.full"]
                            .as_str()
                            .unwrap_or("")
                            .contains(what)
                })
                .collect()
        };
        let fail = failed("/fail");
        assert_eq!(fail.len(), 1, "{clients:#?}");
        assert_eq!(fail[0]["attributes"]["error.type"], "500");
        assert_eq!(
            fail[0]["attributes"]["http.response.status_code"].as_u64(),
            Some(500)
        );
        assert_eq!(calls["fail"].status, "500");
        let refused = failed(&format!(":{closed}/"));
        assert_eq!(refused.len(), 1, "{clients:#?}");
        assert_eq!(
            refused[0]["attributes"]["error.type"],
            "java.net.ConnectException"
        );
        assert!(refused[0]["attributes"]["http.response.status_code"].is_null());
        assert_eq!(calls["closed"].status, "refused");

        // A call from an executor's thread is the transaction's too: its
        // task carried the transaction there.
        let executor = &calls["executor"];
        assert_eq!(executor.status, "200");
        let parts: Vec<&str> = executor.traceparent.split('-').collect();
        assert_eq!(parts.get(1), Some(&TRACE), "{executor:?}");
        assert!(
            parts.get(2).is_some_and(|span| clients.contains_key(*span)),
            "{executor:?}: {clients:#?}"
        );
    }
}
