//! Loading the native agent into real JVMs (JDK 17 and every newer JDK found):
//! good options load it and its log names the JVM and the settings, with the
//! standard OTEL_* variables applying where an option is absent; a bad option
//! makes the JVM refuse to start with one line naming the option and what is
//! accepted.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{agent_library, java_launchers, wait_until, JvmTurn};

fn java(launcher: &Path, options: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(launcher);
    command
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .envs(env.iter().copied())
        .arg(format!(
            "-agentpath:{}={options}",
            agent_library().display()
        ))
        .args(["-Xverify:all", "-version"]);
    command.output().expect("java runs")
}

#[test]
fn good_options_load_the_agent_in_every_jdk_found() {
    let _jvms = JvmTurn::shared();
    let launchers = java_launchers();
    assert!(
        !launchers.is_empty(),
        "no JDK 17+ found (scripts/test.sh installs one)"
    );
    for launcher in launchers {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        let out = java(
            &launcher,
            &format!(
                "service=orders,protocol=http/protobuf,interval=2s,log={}",
                log.display()
            ),
            &[],
        );
        assert!(
            out.status.success(),
            "{}: {}",
            launcher.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("jvmapm agent"), "{text}");
        assert!(
            text.contains("loaded in OpenJDK") || text.contains("loaded in Java HotSpot"),
            "{text}"
        );
        assert!(
            text.contains("service=orders endpoint=http://127.0.0.1:4318 protocol=http/protobuf"),
            "{text}"
        );
        assert!(text.contains("interval=2s"), "{text}");
        // The JVM's own output is untouched: the log went to the file.
        assert!(!String::from_utf8_lossy(&out.stderr).contains("[jvmapm]"));
    }
}

#[test]
fn the_environment_applies_where_an_option_is_absent() {
    let _jvms = JvmTurn::shared();
    let launcher = &java_launchers()[0];
    let env = [
        ("OTEL_SERVICE_NAME", "from-env"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.local:4317"),
    ];
    let out = java(launcher, "", &env);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[jvmapm] INFO"),
        "the log goes to stderr by default: {stderr}"
    );
    assert!(
        stderr.contains("service=from-env endpoint=http://collector.local:4317"),
        "{stderr}"
    );
    let out = java(launcher, "service=from-option", &env);
    assert!(String::from_utf8_lossy(&out.stderr).contains("service=from-option"));
}

#[test]
fn a_bad_option_refuses_the_jvm_start_with_one_clear_line() {
    let _jvms = JvmTurn::shared();
    let launcher = &java_launchers()[0];
    let cases = [
        ("service=orders,colour=red", "jvmapm agent: option colour: is unknown; accepted options: service, endpoint, protocol"),
        ("protocol=pigeon", "jvmapm agent: option protocol: \"pigeon\" is not supported: use grpc or http/protobuf"),
        ("interval=fast", "jvmapm agent: option interval: \"fast\" is not a duration"),
        ("profile_after=-100ms", "jvmapm agent: option profile_after: \"-100ms\" is not a duration"),
        ("profile_interval=1h", "jvmapm agent: option profile_interval: \"1h\" is not from 1ms to 1s"),
        ("log=/nonexistent/dir/agent.log", "jvmapm agent: option log: cannot open the log"),
    ];
    for (options, expected) in cases {
        let out = java(launcher, options, &[]);
        assert!(!out.status.success(), "{options}: the JVM must not start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("jvmapm agent:"))
            .collect();
        assert_eq!(ours.len(), 1, "{options}: one line: {stderr}");
        assert!(ours[0].starts_with(expected), "{options}: {stderr}");
    }
    let out = java(launcher, "", &[("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("environment variable OTEL_EXPORTER_OTLP_PROTOCOL"));
}

#[test]
fn jcmd_attaches_the_agent_to_a_running_jvm() {
    let _jvms = JvmTurn::shared();
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut idle = Command::new("java")
        .arg("-cp")
        .arg(common::java_fixtures())
        .arg("Idle")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(idle.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "ready");
    let pid = idle.id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("attach.log");
    let jcmd = |options: &str| {
        let out = Command::new("jcmd")
            .args([
                &pid,
                "JVMTI.agent_load",
                agent_library().to_str().unwrap(),
                options,
            ])
            .output()
            .expect("jcmd runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let refused = jcmd("colour:red");
    assert!(refused.contains("return code: -1"), "{refused}");
    let analyzer = common::Analyzer::start(&dir.path().join("data"), &[]);
    let attached = jcmd(&format!(
        "service:attached,endpoint:http://{},interval:100ms,export_interval:300ms,log:{}",
        analyzer.grpc,
        log.display()
    ));
    assert!(attached.contains("return code: 0"), "{attached}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("attached in") && text.contains("service=attached"),
        "{text}"
    );
    assert!(text.contains("classes it has already loaded"), "{text}");
    // A collection requested from outside shows up as a pause: GC events
    // work in a JVM the agent joined late.
    let gc = Command::new("jcmd")
        .args([&pid, "GC.run"])
        .output()
        .unwrap();
    assert!(gc.status.success());
    wait_until(
        "pools and pauses from the attached agent",
        std::time::Duration::from_secs(20),
        || {
            let instances = analyzer.get("/api/v1/instances");
            if instances.to_string().contains("\"attached\"") {
                let jvm = analyzer.jvm_of("attached");
                let pools = jvm["series"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| k.starts_with("jvm.memory.used"))
                    .count();
                if pools > 0 && !jvm["gc_pauses"].as_array().unwrap().is_empty() {
                    return Ok(());
                }
            }
            Err(std::fs::read_to_string(&log).unwrap())
        },
    );
    let again = jcmd("service:twice");
    assert!(again.contains("return code: 0"), "{again}");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("this second load is ignored"));
    drop(idle.stdin.take());
    assert!(
        idle.wait().unwrap().success(),
        "the JVM runs on and exits normally"
    );
}
