//! Debian's standalone Tomcat 10 (`catalina.sh run`, as its users start
//! it), with a base directory of the test's own: the package's default
//! configuration, a connector on a free loopback port, and a webapp
//! deployed as users deploy one, a WAR file in `webapps/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where Debian's tomcat10-common and tomcat10-user packages put Tomcat.
const CATALINA_HOME: &str = "/usr/share/tomcat10";
const SKELETON_CONF: &str = "/usr/share/tomcat10/skel/conf";
/// The servlet API the webapp compiles against (Tomcat provides it at run time).
const SERVLET_API: &str = "/usr/share/java/tomcat10-servlet-api.jar";
/// Debian's pgjdbc 42.5, which the webapp carries in WEB-INF/lib.
pub const PGJDBC: &str = "/usr/share/java/postgresql.jar";

/// The server configuration (connector, host) the tests and the benchmark share.
const SERVER_XML: &str = "java-fixtures/tomcat/server.xml";

/// The tests' webapp (`java-fixtures/webapp/`) built once per test process
/// into `target/webapp.war`, pgjdbc in its WEB-INF/lib.
pub fn webapp_war() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            for file in [SERVLET_API, PGJDBC, CATALINA_HOME, SKELETON_CONF] {
                assert!(
                    Path::new(file).exists(),
                    "{file} is missing: install tomcat10-user and libpostgresql-jdbc-java (scripts/test.sh does)"
                );
            }
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let tree = root.join("target/webapp");
            let _ = std::fs::remove_dir_all(&tree);
            let classes = super::compile_fixtures("webapp", SERVLET_API, "webapp/WEB-INF/classes");
            assert_eq!(classes, tree.join("WEB-INF/classes"));
            let source = root.join("java-fixtures/webapp");
            std::fs::copy(source.join("WEB-INF/web.xml"), tree.join("WEB-INF/web.xml")).unwrap();
            std::fs::copy(source.join("index.html"), tree.join("index.html")).unwrap();
            std::fs::create_dir_all(tree.join("WEB-INF/lib")).unwrap();
            std::fs::copy(PGJDBC, tree.join("WEB-INF/lib/postgresql.jar")).unwrap();
            let war = root.join("target/webapp.war");
            let status = Command::new("jar")
                .arg("cf")
                .arg(&war)
                .arg("-C")
                .arg(&tree)
                .arg(".")
                .status()
                .expect("jar runs (it comes with the JDK)");
            assert!(status.success(), "jar cf {}", war.display());
            war
        })
        .clone()
}

/// A running standalone Tomcat.
pub struct Tomcat {
    child: Option<Child>,
    pub port: u16,
    /// Its console output, both streams, line by line.
    lines: mpsc::Receiver<String>,
    _base: tempfile::TempDir,
}

impl Tomcat {
    /// Starts Tomcat on the JDK of `launcher` with `war` deployed as
    /// `/{context}` and `java_options` (CATALINA_OPTS: no spaces inside one
    /// option, catalina.sh splits them), and waits until it serves.
    pub fn start(launcher: &Path, war: &Path, context: &str, java_options: &[String]) -> Tomcat {
        let base = tempfile::tempdir().unwrap();
        for dir in ["logs", "temp", "work", "webapps", "conf"] {
            std::fs::create_dir_all(base.path().join(dir)).unwrap();
        }
        for entry in std::fs::read_dir(SKELETON_CONF).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                base.path().join("conf").join(entry.file_name()),
            )
            .unwrap();
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(root.join(SERVER_XML), base.path().join("conf/server.xml")).unwrap();
        std::fs::copy(war, base.path().join(format!("webapps/{context}.war"))).unwrap();
        let java_home = launcher.parent().and_then(Path::parent).unwrap();
        let mut command = Command::new(Path::new(CATALINA_HOME).join("bin/catalina.sh"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("run")
            .env("CATALINA_HOME", CATALINA_HOME)
            .env("CATALINA_BASE", base.path())
            .env("JAVA_HOME", java_home)
            .env("CATALINA_OPTS", java_options.join(" "))
            .env_remove("JAVA_OPTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("catalina.sh runs");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut tomcat = Tomcat {
            child: Some(child),
            port: 0,
            lines,
            _base: base,
        };
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = tomcat.lines.recv_timeout(left) else {
                break;
            };
            // Starting ProtocolHandler ["http-nio-127.0.0.1-auto-1-40235"]
            if let Some(port) = line
                .split("-auto-")
                .nth(1)
                .and_then(|rest| rest.split(['-', '"']).nth(1))
                .and_then(|p| p.parse().ok())
            {
                tomcat.port = port;
            }
            let started = line.contains("Server startup in");
            seen.push(line);
            if started && tomcat.port != 0 {
                return tomcat;
            }
        }
        panic!("Tomcat did not start:\n{}", seen.join("\n"));
    }

    /// SIGTERM (Tomcat stops its webapps, the JVM runs its shutdown and the
    /// agent flushes), then its whole console output.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        // What it wrote last may still be in the readers' hands; they let
        // go of the channel when its streams close.
        let mut output = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => output.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "Tomcat's console stayed open 10 s after it exited:\n{}",
                    output.join("\n")
                ),
            }
        }
        let output = output.join("\n");
        assert!(
            status.success() || status.code() == Some(143),
            "Tomcat exited with {status}:\n{output}"
        );
        output
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
