//! The agent on software nobody here wrote, compared with what the client
//! saw: Debian's standalone Tomcat 10 started by `catalina.sh run`, with a
//! webapp deployed as a WAR (a `GenericFilter` on every path, a filter that
//! answers alone, exact, prefix and extension mappings, a welcome file, a
//! servlet that throws), and PostgreSQL 15 through pgjdbc 42.5 from the
//! webapp's WEB-INF/lib. Every JDK found runs it under `-Xverify:all`.

mod common;

use std::time::Duration;

use common::postgres::Postgres;
use common::tomcat::{webapp_war, Tomcat};
use common::{agent_library, java_launchers, launcher_version, Analyzer, Exchange, JvmTurn};
use serde_json::Value;

/// One request and what its client saw.
struct Answer {
    path: &'static str,
    status: u16,
    body: String,
    /// When the client sent it and had the answer.
    exchange: Exchange,
}

fn get(port: u16, path: &'static str) -> Answer {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ((status, body), exchange) = Exchange::time(|| {
        let response = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    });
    Answer {
        path,
        status,
        body,
        exchange,
    }
}

/// The requests, each with the route its point must carry.
const REQUESTS: [(&str, &str); 9] = [
    ("/app/hello", "/app/hello"),
    ("/app/hello?filter_ms=80", "/app/hello"),
    ("/app/report.do", "/app/report.do"),
    ("/app/api/orders", "/app/api/*"),
    ("/app/api/orders/7?filter_ms=30", "/app/api/*"),
    ("/app/boom", "/app/boom"),
    ("/app/health", "/app/health"),
    ("/app/", "/app/"),
    ("/app/no-such-page.txt", "/app/*"),
];

/// The SQL each `/api/*` request runs, as the application wrote it.
const ORDERS_SQL: [&str; 3] = [
    "SELECT id, name FROM orders WHERE qty > ? AND name <> ?",
    "INSERT INTO orders (name, qty) VALUES (?, ?)",
    "SELECT qty FROM no_such_table WHERE id = ?",
];

#[test]
fn standalone_tomcat_and_pgjdbc_report_what_the_client_saw() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let database = Postgres::start();
    let war = webapp_war();
    for launcher in java_launchers() {
        let service = format!("catalina-{}", launcher_version(&launcher));
        let options = vec![
            format!(
                "-agentpath:{}=service={service},endpoint=http://{},export_interval=200ms",
                agent_library().display(),
                analyzer.grpc
            ),
            "-Xverify:all".to_string(),
            format!("-Dorders.jdbc={}", database.jdbc_url()),
        ];
        let tomcat = Tomcat::start(&launcher, &war, "app", &options);
        // The first requests pay for loading classes and JSP-free warm-up.
        for _ in 0..3 {
            assert_eq!(get(tomcat.port, "/app/hello").status, 200);
        }
        let answers: Vec<Answer> = REQUESTS
            .iter()
            .map(|(path, _)| {
                // Apart enough that the points' end times keep their order (a
                // deliberate gap, not a wait for something to happen).
                std::thread::sleep(Duration::from_millis(5));
                get(tomcat.port, path)
            })
            .collect();
        let output = tomcat.stop();
        assert!(!output.contains("as it was"), "{service}: {output}");
        let statuses: Vec<(&str, u16)> = answers.iter().map(|a| (a.path, a.status)).collect();
        assert_eq!(
            statuses,
            [
                ("/app/hello", 200),
                ("/app/hello?filter_ms=80", 200),
                ("/app/report.do", 200),
                ("/app/api/orders", 200),
                ("/app/api/orders/7?filter_ms=30", 200),
                ("/app/boom", 500),
                ("/app/health", 200),
                ("/app/", 200),
                ("/app/no-such-page.txt", 404),
            ],
            "{service}: {output}"
        );
        assert_eq!(answers[6].body, "healthy\n", "the filter answered alone");

        let mut points = analyzer.points_of(&service, 3 + REQUESTS.len());
        assert_eq!(
            points.len(),
            3 + REQUESTS.len(),
            "{service}: one point per request: {points:#?}\n{output}"
        );
        points.sort_by_key(|p| p["end_ms"].as_u64().unwrap());
        for (point, (answer, (_, route))) in points[3..].iter().zip(answers.iter().zip(REQUESTS)) {
            let what = format!("{service} {}: {point}", answer.path);
            assert_eq!(point["endpoint"], route, "{what}");
            assert_eq!(point["status_code"], answer.status, "{what}");
            assert_eq!(point["error"], answer.status >= 500, "{what}");
            analyzer.assert_began_during(point, answer.exchange, &what);
            let attributes = analyzer.attributes(point);
            assert_eq!(attributes["http.route"], route, "{what}");
            assert_eq!(attributes["http.response.status_code"], answer.status);
            assert_eq!(
                attributes["url.path"],
                answer.path.split('?').next().unwrap(),
                "the path the client asked for ({what})"
            );
        }
        // The GenericFilter's sleep is inside the transaction.
        let filtered = &points[3 + 1];
        assert!(
            filtered["elapsed_us"].as_u64().unwrap() >= 80_000,
            "{filtered}"
        );
        let boom = analyzer.attributes(&points[3 + 5]);
        assert_eq!(boom["error.type"], "jakarta.servlet.ServletException");

        // Prepared, batched and failing statements keep the application's SQL.
        for orders in [&points[3 + 3], &points[3 + 4]] {
            assert_eq!(orders["sql_count"], 3, "{orders}");
            let detail = analyzer.detail(orders);
            let children = detail["children"].as_array().unwrap();
            let texts: Vec<&str> = children
                .iter()
                .map(|c| c["attributes"]["db.query.text"].as_str().unwrap_or("?"))
                .collect();
            assert_eq!(texts, ORDERS_SQL, "{service}: {detail:#}");
            let failed: Vec<&Value> = children
                .iter()
                .filter(|c| c["attributes"].get("error.type").is_some())
                .collect();
            assert_eq!(failed.len(), 1, "{detail:#}");
            assert_eq!(
                failed[0]["attributes"]["error.type"],
                "org.postgresql.util.PSQLException"
            );
        }
    }
}
