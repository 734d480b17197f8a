//! `jvmapm xlog` in a pseudo-terminal, as an operator runs it: live against
//! a `jvmapm serve` fed by a real JVM with the agent, then offline over the
//! data directory it wrote, and against a server that is not there. The
//! screen is read back through a terminal emulator (vt100).

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{java_launchers, java_with_agent, Analyzer};

const ROWS: u16 = 40;
const COLS: u16 = 140;

/// `jvmapm` running in a pseudo-terminal, its screen emulated.
struct Viewer {
    master: File,
    child: Child,
    screen: Arc<Mutex<vt100::Parser>>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Viewer {
    fn start(args: &[&str]) -> Viewer {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors we then own.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut command = Command::new(env!("CARGO_BIN_EXE_jvmapm"));
        command
            .args(args)
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = command.spawn().expect("jvmapm starts");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let (screen_in, output_in) = (screen.clone(), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                screen_in.lock().unwrap().process(&buf[..n]);
                output_in.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Viewer {
            master,
            child,
            screen,
            output,
        }
    }

    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until the screen satisfies `ok`, or fails showing it.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text();
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on the screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn press(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Quits with `q`; returns everything it wrote to the terminal.
    fn quit(mut self) -> Vec<u8> {
        self.press("q");
        self.wait_for_exit()
    }

    /// Stops it with SIGTERM, as a service manager or `kill` would.
    fn terminate(mut self) -> Vec<u8> {
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.wait_for_exit()
    }

    /// Waits for a clean exit; returns everything it wrote to the terminal.
    fn wait_for_exit(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "jvmapm xlog exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "q did not quit:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        let output = self.output.lock().unwrap().clone();
        output
    }
}

/// The number before " points" in the status line.
fn points_shown(screen: &str) -> usize {
    screen
        .split(" points")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn assert_terminal_restored(output: &[u8]) {
    let text = String::from_utf8_lossy(output);
    let tail = &text[text
        .rfind("\x1b[?1049h")
        .expect("entered the alternate screen")..];
    assert!(tail.contains("\x1b[?1049l"), "left the alternate screen");
    assert!(tail.contains("\x1b[?1000l"), "mouse capture ended");
    assert!(tail.contains("\x1b[?25h"), "cursor shown again");
}

/// This machine's host name, as the agent reports it in `host.name`.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    name.trim().to_string()
}

/// The HttpService fixture with the agent, and a way to call it.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(analyzer: &Analyzer) -> Service {
        let launcher = &java_launchers()[0];
        let options = format!(
            "service=shop,endpoint=http://{},export_interval=200ms,interval=500ms,stuck=1s",
            analyzer.grpc
        );
        let mut child = java_with_agent(launcher, &options, &["HttpService"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("port ").unwrap().parse().unwrap();
        Service { child, port }
    }

    fn call(&self, paths: &[&str]) {
        let client = reqwest::blocking::Client::new();
        for path in paths {
            let _ = client
                .get(format!("http://127.0.0.1:{}{path}", self.port))
                .send();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn the_viewer_shows_points_arriving_live_and_then_offline() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let service = Service::start(&analyzer);
    // Six quick ones, and one that the agent reports stuck (over 1 s).
    service.call(&["/fast", "/fast", "/fail", "/slow?ms=50", "/fast", "/fail"]);
    service.call(&["/slow?ms=2500"]);

    let server = format!("http://{}", analyzer.http);
    let mut viewer = Viewer::start(&["xlog", "--server", &server]);
    let screen = viewer.wait_for("seven points", |s| points_shown(s) >= 7);
    assert!(screen.contains("LIVE"), "{screen}");
    assert!(screen.contains("filter: none"), "{screen}");
    viewer.wait_for("the endpoint table", |s| {
        s.contains("/fail") && s.contains("/fast")
    });
    // The JVM is named as operators know it: service, host and pid.
    let named = format!("active: shop@{}:{} ", host_name(), service.child.id());
    viewer.wait_for(&named, |s| s.contains(&named));

    // New transactions appear while it runs.
    service.call(&["/fast", "/slow?ms=20", "/fast", "/fail"]);
    viewer.wait_for("the new points", |s| points_shown(s) >= 11);

    // Errors only: the filter in force shows.
    viewer.press("e");
    viewer.wait_for("the filter", |s| s.contains("filter: errors only"));
    // Every transaction in view, listed; the errors are the three /fail.
    viewer.press("a");
    let list = viewer.wait_for("the list", |s| s.contains("transactions ending"));
    assert!(list.contains("3 transactions ending"), "{list}");
    viewer.press("\r");
    viewer.wait_for("the transaction", |s| {
        s.contains("http.response.status_code = 500")
    });
    viewer.press("\x1b");
    // The stuck one: elapsed at least 2 s, opened, shows where it hung.
    viewer.press("\x1b");
    viewer.press("c>2000\r");
    viewer.wait_for("the elapsed filter", |s| {
        s.contains("filter: elapsed >= 2000 ms")
    });
    viewer.press("a");
    viewer.wait_for("the slow one", |s| s.contains("1 transactions ending"));
    viewer.press("\r");
    let stuck = viewer.wait_for("its stack", |s| {
        s.contains("stack when it was reported stuck")
    });
    assert!(stuck.contains("jvmapm.stuck = true"), "{stuck}");
    assert!(stuck.contains("Thread.sleep"), "{stuck}");
    viewer.press("\x1b");
    viewer.press("\x1b");
    viewer.press("?");
    viewer.wait_for("the help", |s| s.contains("errors only on / off"));
    viewer.press(" ");
    assert_terminal_restored(&viewer.quit());

    drop(service);
    analyzer.stop();
    let data = dir.path().to_str().unwrap();
    let viewer = Viewer::start(&["xlog", "--data", data]);
    let screen = viewer.wait_for("the stored points", |s| points_shown(s) >= 11);
    assert!(screen.contains("OFFLINE"), "{screen}");
    viewer.wait_for(&named, |s| s.contains(&named));
    assert_terminal_restored(&viewer.quit());
}

#[test]
fn an_unreachable_server_is_reported_and_retried_and_sigterm_restores_the_terminal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let viewer = Viewer::start(&["xlog", "--server", &server]);
    let screen = viewer.wait_for("the trouble", |s| s.contains("cannot reach"));
    assert!(screen.contains("retrying"), "{screen}");
    assert_terminal_restored(&viewer.terminate());
}

#[test]
fn the_demo_shows_a_loaded_jvm_and_quitting_stops_everything() {
    let agent = common::agent_library();
    let viewer = Viewer::start(&["demo", "--agent", agent.to_str().unwrap()]);
    let pid = viewer.child.id();
    let work = std::env::temp_dir().join(format!("jvmapm-demo-{pid}"));
    let screen = viewer.wait_for("the load's points", |s| points_shown(s) >= 30);
    assert!(screen.contains("LIVE"), "{screen}");
    viewer.wait_for("endpoints with errors and SQL", |s| {
        s.contains("/fail") && s.contains("/sql") && s.contains("demo-shop")
    });
    viewer.wait_for("a Finalizer backlog", |s| {
        s.split("Finalizer pending ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    assert!(work.is_dir(), "the demo works in {}", work.display());
    let jvms_before = demo_jvms(&work);
    assert_eq!(jvms_before, 1, "one JVM runs the service");
    assert_terminal_restored(&viewer.quit());
    assert_eq!(demo_jvms(&work), 0, "the JVM stopped with the demo");
    assert!(!work.exists(), "the demo removed {}", work.display());
}

/// Processes whose command line mentions `dir` (the demo's JVM does).
fn demo_jvms(dir: &std::path::Path) -> usize {
    let needle = dir.to_str().unwrap().as_bytes().to_vec();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| {
            cmdline
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
        })
        .count()
}
