//! A fixture JVM that listens: it prints lines, then "port N" once it
//! listens, and stops when its standard input closes (HttpService and the
//! front services of the outgoing-call tests).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command};

use super::{java_with_agent, outgoing_fixtures, spawn_piped, Analyzer};

/// Options of an agent that exports to `analyzer` as `service`, every 200 ms.
pub fn exporting_to(analyzer: &Analyzer, service: &str) -> String {
    format!(
        "service={service},endpoint=http://{},export_interval=200ms",
        analyzer.grpc
    )
}

/// HttpService with the agent (`options`) as the back service of outgoing
/// calls: its /echo runs one SQL statement and answers the traceparent
/// and tracestate it received.
pub fn back_service(launcher: &Path, options: &str) -> Fixture {
    Fixture::start(java_with_agent(
        launcher,
        options,
        &["-cp", &outgoing_fixtures(), "HttpService"],
    ))
}

/// A fixture JVM that prints lines, then "port N" once it listens.
pub struct Fixture {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    pub port: u16,
    /// What it printed before the port.
    pub said: Vec<String>,
}

impl Fixture {
    pub fn start(mut command: Command) -> Fixture {
        let (child, mut stdout) = spawn_piped(&mut command);
        let (port, said) = until_port(&mut stdout);
        Fixture {
            child,
            stdout,
            port,
            said,
        }
    }

    /// Closes its input, waits for it to exit and returns its standard error.
    pub fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let out = self.child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{rest}{stderr}");
        stderr
    }
}

/// Reads lines up to "port N": the port, and the lines before it.
fn until_port(stdout: &mut impl BufRead) -> (u16, Vec<String>) {
    let mut said = Vec::new();
    loop {
        let mut line = String::new();
        assert_ne!(
            stdout.read_line(&mut line).unwrap(),
            0,
            "ended before it listened: {said:?}"
        );
        if let Some(port) = line.strip_prefix("port ") {
            return (port.trim().parse().unwrap(), said);
        }
        said.push(line.trim_end().to_string());
    }
}
