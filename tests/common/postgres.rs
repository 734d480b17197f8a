//! A PostgreSQL server of the tests' own: Debian's PostgreSQL 15 binaries
//! (scripts/test.sh installs them), a fresh data directory in a temporary
//! folder, TCP on a free loopback port, no Unix socket, trust
//! authentication for the user `test`. Stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running PostgreSQL server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The PostgreSQL server binaries: version 15 where installed, else the
/// newest under /usr/lib/postgresql.
fn server_binaries() -> PathBuf {
    let preferred = Path::new("/usr/lib/postgresql/15/bin");
    if preferred.join("initdb").is_file() {
        return preferred.to_path_buf();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().expect(
        "PostgreSQL's server binaries are missing: install postgresql-15 (scripts/test.sh does)",
    )
}

/// Whether this process runs as root (PostgreSQL refuses to: its commands
/// then run as the `postgres` user the Debian package made).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Makes a data directory and starts the server on a free port.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Postgres {
            dir,
            bin: server_binaries(),
            port: 0,
        };
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(server.dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres of the data directory");
        }
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", "test", "--auth=trust", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A port the kernel just gave out and took back: another process
        // may take it first, so try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off"
            );
            let status = server
                .command("pg_ctl")
                .arg("-D")
                .arg(server.data())
                .args(["-o", &options, "-l"])
                .arg(server.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "start"])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("pg_ctl runs");
            if status.success() {
                server.port = port;
                return server;
            }
        }
        let log = std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    /// The JDBC URL of the `postgres` database.
    pub fn jdbc_url(&self) -> String {
        format!(
            "jdbc:postgresql://127.0.0.1:{}/postgres?user=test",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
