//! Context across threads, end to end: a transaction (a hooked method of
//! `java-fixtures/HandOff.java`) hands work to every kind of JDK executor,
//! and the SQL and outgoing calls made there are its children; the same
//! pool threads then run unrelated work that carries nothing, a periodic
//! task outlives the transaction without staying its child, and a request
//! served by a pool thread that ran the transaction's tasks is a
//! transaction of its own. Two JVMs with the agent (the fixture and its
//! back service, HttpService, whose /echo answers the traceparent it
//! received), JDK 17 and every newer JDK found, under `-Xverify:all`, export
//! to a real `jvmapm serve`.

mod common;

use std::collections::BTreeMap;

use common::fixture::{self, exporting_to};
use common::{
    java_launchers, java_with_agent, launcher_version, outgoing_fixtures, Analyzer, JvmTurn,
};

/// The hand-offs the fixture makes, each once in the transaction and once
/// outside any.
const HAND_OFFS: [&str; 6] = [
    "execute",
    "submit",
    "schedule",
    "supplyAsync",
    "thenApplyAsync",
    "fork",
];

/// The JDK classes the agent rewrites for them (JDK 17 to 25).
const REWRITTEN: [&str; 7] = [
    "java/util/concurrent/ThreadPoolExecutor",
    "java/util/concurrent/ScheduledThreadPoolExecutor",
    "java/util/concurrent/ForkJoinPool",
    "java/util/concurrent/ForkJoinTask",
    "java/util/concurrent/FutureTask",
    "java/util/concurrent/CompletableFuture$AsyncSupply",
    "java/util/concurrent/CompletableFuture$Completion",
];

/// A traceparent's trace id and parent span id.
fn ids(traceparent: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    (parts.len() == 4).then(|| (parts[1], parts[2]))
}

#[test]
fn work_handed_to_executors_stays_in_its_transaction_and_pool_threads_keep_nothing() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let classpath = outgoing_fixtures();
    for launcher in java_launchers() {
        let version = launcher_version(&launcher);
        let (front_service, back_service) =
            (format!("handoff-{version}"), format!("back-{version}"));
        let back = fixture::back_service(&launcher, &exporting_to(&analyzer, &back_service));
        let out = java_with_agent(
            &launcher,
            &format!(
                "{},log_level=debug,hook=HandOff#work",
                exporting_to(&analyzer, &front_service)
            ),
            &["-cp", &classpath, "HandOff", &back.port.to_string()],
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{version}: {stdout}{stderr}");
        back.stop();
        assert!(!stderr.contains("as it was"), "{version}: {stderr}");
        for class in REWRITTEN {
            assert!(
                stderr.contains(&format!("instrumented {class}\n")),
                "{version}: {class} not rewritten: {stderr}"
            );
        }
        // "LABEL NAME TRACEPARENT" lines by label and name.
        let said: BTreeMap<(String, String), String> = stdout
            .lines()
            .map(|line| {
                let parts: Vec<&str> = line.split(' ').collect();
                assert_eq!(parts.len(), 3, "{line:?}");
                (
                    (parts[0].to_string(), parts[1].to_string()),
                    parts[2].to_string(),
                )
            })
            .collect();
        let got = |label: &str, name: &str| -> &str {
            said.get(&(label.to_string(), name.to_string()))
                .unwrap_or_else(|| panic!("{version}: no {label} {name}: {stdout}"))
        };

        let points = analyzer.points_of(&front_service, 2);
        assert_eq!(points.len(), 2, "{version}: {points:#?}");
        let work = points.iter().find(|p| p["endpoint"] == "HandOff.work");
        let work = work.unwrap_or_else(|| panic!("{points:#?}"));
        let transaction = analyzer.detail(work);
        let trace = work["trace_id"].as_str().unwrap();
        let span = work["span_id"].as_str().unwrap();

        // Every hand-off ran one SQL query and one call, and the periodic
        // task's first run one call: all counted in the transaction and
        // its children.
        let attributes = &transaction["attributes"];
        let handed = HAND_OFFS.len() as u64;
        assert_eq!(
            attributes["jvmapm.sql.count"].as_u64(),
            Some(handed),
            "{version}: {transaction:#}"
        );
        assert_eq!(
            attributes["jvmapm.http.count"].as_u64(),
            Some(handed + 1),
            "{version}: {transaction:#}"
        );
        let children = transaction["children"].as_array().unwrap();
        for child in children {
            assert_eq!(child["parent_span_id"], span, "{version}: {child}");
        }
        let sql = children
            .iter()
            .filter(|c| c["attributes"]["db.query.text"].is_string())
            .count();
        assert_eq!(sql as u64, handed, "{version}: {transaction:#}");
        let clients: Vec<&str> = children
            .iter()
            .filter(|c| c["attributes"]["http.request.method"].is_string())
            .map(|c| c["span_id"].as_str().unwrap())
            .collect();
        assert_eq!(clients.len() as u64, handed + 1, "{version}: {clients:?}");

        // The back received each call as a child of its CLIENT span.
        for name in HAND_OFFS.iter().chain(&["periodic"]) {
            let received = got("inside", name);
            let (its_trace, parent) = ids(received)
                .unwrap_or_else(|| panic!("{version} {name}: no traceparent: {stdout}"));
            assert_eq!(its_trace, trace, "{version} {name}");
            assert!(clients.contains(&parent), "{version} {name}: {clients:?}");
        }

        // The periodic task's later runs, after the transaction ended, and
        // the same hand-offs outside any transaction carry nothing.
        assert_eq!(got("periodic", "2"), "-", "{version}");
        assert_eq!(got("periodic", "3"), "-", "{version}");
        for name in HAND_OFFS {
            assert_eq!(got("outside", name), "-", "{version} {name}");
        }

        // The request served by the pool's thread, which ran the
        // transaction's tasks, is a transaction of its own.
        let server = points.iter().find(|p| p["endpoint"] == "/who");
        let server = server.unwrap_or_else(|| panic!("{points:#?}"));
        assert_ne!(server["trace_id"], trace, "{version}");
        let detail = analyzer.detail(server);
        assert!(
            detail["parent_span_id"].as_str().unwrap_or("").is_empty(),
            "{version}: {detail:#}"
        );
        let (its_trace, _) = ids(got("server", "pool"))
            .unwrap_or_else(|| panic!("{version}: the pool's thread served it: {stdout}"));
        assert_eq!(its_trace, server["trace_id"], "{version}");
    }
}
