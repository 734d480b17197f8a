//! ClickHouse servers of the tests' own: Debian's clickhouse-server
//! (scripts/test.sh installs it), a configuration and data directory in a
//! temporary folder, HTTP and native TCP on free loopback ports, the user
//! `default` without a password. Killed when dropped. Also the two stores
//! the query-API tests run against ([`TestStore`]), and two servers that
//! form a cluster of two shards ([`ClickHouse::two_shards`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Analyzer;

const SERVER: &str = "/usr/sbin/clickhouse-server";
/// How long ClickHouse waits before it shows a point (the analyzer's
/// settle time, 2 s, and a margin).
pub const SETTLE: Duration = Duration::from_millis(2_300);

/// A running ClickHouse server.
pub struct ClickHouse {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub http_port: u16,
    pub tcp_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ClickHouse {
    /// A server not yet started: its folder and ports.
    fn unstarted() -> ClickHouse {
        assert!(
            Path::new(SERVER).is_file(),
            "{SERVER} is missing: install clickhouse-server (scripts/test.sh does)"
        );
        ClickHouse {
            dir: tempfile::tempdir().unwrap(),
            child: None,
            http_port: free_port(),
            tcp_port: free_port(),
        }
    }

    /// Writes the configuration, with `remote_servers` (cluster
    /// definitions, XML), and starts the server.
    fn started(mut self, remote_servers: &str) -> ClickHouse {
        let d = self.dir.path().display().to_string();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <mark_cache_size>5368709</mark_cache_size>
    <uncompressed_cache_size>0</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <remote_servers>{remote_servers}</remote_servers>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <profiles><default></default></profiles>
    <quotas><default></default></quotas>
</yandex>
"#,
            http = self.http_port,
            tcp = self.tcp_port,
        );
        std::fs::write(self.config(), config).unwrap();
        self.restart();
        self
    }

    /// Starts a server of its own.
    pub fn start() -> ClickHouse {
        ClickHouse::unstarted().started("")
    }

    /// Starts two servers that both know the cluster `cluster`: one shard
    /// on each, reached over native TCP on loopback.
    pub fn two_shards(cluster: &str) -> [ClickHouse; 2] {
        let servers = [ClickHouse::unstarted(), ClickHouse::unstarted()];
        let shards: String = servers
            .iter()
            .map(|s| {
                format!(
                    "<shard><replica><host>127.0.0.1</host><port>{}</port></replica></shard>",
                    s.tcp_port
                )
            })
            .collect();
        let remote_servers = format!("<{cluster}>{shards}</{cluster}>");
        servers.map(|s| s.started(&remote_servers))
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.xml")
    }

    /// Starts the server (again, on the same ports and data) and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new(SERVER)
            .arg(format!("--config-file={}", self.config().display()))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_query("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "ClickHouse did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The `--clickhouse` URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("http://127.0.0.1:{}/?database={database}", self.http_port)
    }

    /// Runs a statement over HTTP; its output or the server's error.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{}/", self.http_port);
        let sql = sql.to_string();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let resp = client
                .post(url)
                .body(sql)
                .send()
                .map_err(|e| e.to_string())?;
            let ok = resp.status().is_success();
            let text = resp.text().map_err(|e| e.to_string())?;
            if ok {
                Ok(text)
            } else {
                Err(text)
            }
        })
        .join()
        .unwrap()
    }

    /// Runs a statement, asserting it succeeds.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The store a query-API test runs against.
pub enum TestStore {
    /// A data directory (the default).
    Local,
    /// A ClickHouse server of the test's own.
    ClickHouse(ClickHouse),
}

impl TestStore {
    pub fn clickhouse() -> TestStore {
        TestStore::ClickHouse(ClickHouse::start())
    }

    /// `jvmapm serve` on this store (`data` is its data directory when local).
    pub fn analyzer(&self, data: &Path) -> Analyzer {
        match self {
            TestStore::Local => Analyzer::start(data, &[]),
            TestStore::ClickHouse(ch) => {
                Analyzer::start(data, &["--clickhouse", &ch.url("jvmapm")])
            }
        }
    }

    /// Waits until what was acknowledged shows in the live tail (at once
    /// on the local store; ClickHouse shows a point once its millisecond
    /// is settled across analyzers).
    pub fn settle(&self) {
        if let TestStore::ClickHouse(_) = self {
            std::thread::sleep(SETTLE);
        }
    }
}
