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
use std::time::Duration;

use common::{java_launchers, java_with_agent, wait_until, Analyzer, JvmTurn};

const ROWS: u16 = 40;
const COLS: u16 = 140;

/// `jvmapm` running in a pseudo-terminal, its screen emulated.
struct Viewer {
    master: File,
    child: Child,
    screen: Arc<Mutex<vt100::Parser>>,
    output: Arc<Mutex<Vec<u8>>>,
}

/// A viewer a failed test left running is stopped, so that nothing it
/// started (the demo's JVMs) outlives the test: SIGTERM first, as its own
/// stop path cleans up, then SIGKILL after 5 s.
impl Drop for Viewer {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        wait_until(what, Duration::from_secs(30), || {
            let text = self.text();
            if ok(&text) {
                Ok(text)
            } else {
                Err(text)
            }
        })
    }

    /// Types `keys` and waits until the screen shows what they lead to (the
    /// next keys go to that screen, and an Esc is read alone, not as the
    /// start of an escape sequence).
    fn press(&mut self, keys: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.wait_for(what, ok)
    }

    /// Quits with `q`, and checks it gave the terminal back as it found it.
    fn quit(mut self) {
        self.master.write_all(b"q").unwrap();
        self.wait_for_exit();
    }

    /// Stops it with SIGTERM, as a service manager or `kill` would, and
    /// checks it gave the terminal back as it found it.
    fn terminate(mut self) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.wait_for_exit();
    }

    /// Waits for a clean exit, and for the terminal's modes to be restored
    /// (what it wrote last may still be on its way from the pseudo-terminal).
    fn wait_for_exit(&mut self) {
        let (child, screen) = (&mut self.child, &self.screen);
        let status = wait_until("jvmapm xlog to exit", Duration::from_secs(10), || {
            let exited = child.try_wait().unwrap();
            exited.ok_or_else(|| screen.lock().unwrap().screen().contents())
        });
        assert!(status.success(), "jvmapm xlog exited with {status}");
        wait_until("the terminal restored", Duration::from_secs(10), || {
            terminal_restored(&self.output.lock().unwrap())
        });
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

/// The list of the transactions selected (not one of them opened).
fn is_list(screen: &str) -> bool {
    screen.contains("Enter opens, p profile, Esc back")
}

/// The scatter plot, nothing over it.
fn is_scatter(screen: &str) -> bool {
    screen.contains(" XLog: ") && !is_list(screen)
}

fn is_help(screen: &str) -> bool {
    screen.contains("errors only on / off")
}

/// Whether the viewer, after it last entered the alternate screen, left it,
/// ended mouse capture and showed the cursor again; if not, what is missing.
fn terminal_restored(output: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(output);
    let Some(entered) = text.rfind("\x1b[?1049h") else {
        return Err("never entered the alternate screen".into());
    };
    let missing: Vec<&str> = [
        ("\x1b[?1049l", "leaving the alternate screen"),
        ("\x1b[?1000l", "ending mouse capture"),
        ("\x1b[?25h", "showing the cursor"),
    ]
    .into_iter()
    .filter(|(sequence, _)| !text[entered..].contains(sequence))
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not done: {}", missing.join(", ")))
    }
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
    let _jvms = JvmTurn::shared();
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
    viewer.press("e", "the filter", |s| s.contains("filter: errors only"));
    // Every transaction in view, listed; the errors are the three /fail.
    let list = viewer.press("a", "the list", is_list);
    assert!(list.contains("3 transactions ending"), "{list}");
    viewer.press("\r", "the transaction", |s| {
        s.contains("http.response.status_code = 500")
    });
    viewer.press("\x1b", "the list again", is_list);
    // The stuck one: elapsed at least 2 s, opened, shows where it hung.
    viewer.press("\x1b", "the scatter plot", is_scatter);
    viewer.press("c>2000\r", "the elapsed filter", |s| {
        s.contains("filter: elapsed >= 2000 ms")
    });
    viewer.press("a", "the slow one", |s| s.contains("1 transactions ending"));
    let stuck = viewer.press("\r", "its stack", |s| {
        s.contains("stack when it was reported stuck")
    });
    assert!(stuck.contains("jvmapm.stuck = true"), "{stuck}");
    assert!(stuck.contains("Thread.sleep"), "{stuck}");
    viewer.press("\x1b", "the list again", is_list);
    viewer.press("\x1b", "the scatter plot", is_scatter);
    viewer.press("?", "the help", is_help);
    viewer.press(" ", "the help closed", |s| is_scatter(s) && !is_help(s));
    viewer.quit();

    drop(service);
    analyzer.stop();
    let data = dir.path().to_str().unwrap();
    let viewer = Viewer::start(&["xlog", "--data", data]);
    let screen = viewer.wait_for("the stored points", |s| points_shown(s) >= 11);
    assert!(screen.contains("OFFLINE"), "{screen}");
    viewer.wait_for(&named, |s| s.contains(&named));
    viewer.quit();
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
    viewer.terminate();
}

#[test]
fn the_demo_shows_two_loaded_jvms_their_service_map_and_quitting_stops_everything() {
    let _jvms = JvmTurn::shared();
    let agent = common::agent_library();
    let mut viewer = Viewer::start(&["demo", "--agent", agent.to_str().unwrap()]);
    let pid = viewer.child.id();
    let work = std::env::temp_dir().join(format!("jvmapm-demo-{pid}"));
    let screen = viewer.wait_for("the load's points", |s| points_shown(s) >= 30);
    assert!(screen.contains("LIVE"), "{screen}");
    viewer.wait_for("endpoints with errors and SQL", |s| {
        s.contains("/fail") && s.contains("/sql") && s.contains("demo-shop")
    });
    viewer.wait_for("the checkout and the stock service it calls", |s| {
        s.contains("/checkout") && s.contains("demo-stock")
    });
    viewer.wait_for("a Finalizer backlog", |s| {
        s.split("Finalizer pending ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    // The stock service's own spans name the callee (a call whose callee
    // span is still on its way shows its address for a moment).
    viewer.press("g", "the service map", |s| {
        s.contains("service map")
            && s.lines()
                .any(|l| l.contains("demo-shop") && l.contains("demo-stock"))
    });
    assert!(work.is_dir(), "the demo works in {}", work.display());
    let jvms_before = demo_jvms(&work);
    assert_eq!(
        jvms_before, 2,
        "two JVMs run the shop and the stock service"
    );
    viewer.quit();
    assert_eq!(demo_jvms(&work), 0, "the JVMs stopped with the demo");
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

/// The distributed trace of a transaction as a waterfall, and the service
/// map on `g` whose edge lists the transactions that made its calls,
/// offline over the data directory of a two-service trace.
#[test]
fn the_viewer_shows_a_distributed_trace_and_the_service_map() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    common::two_services::send(&analyzer);
    analyzer.stop();
    let data = dir.path().to_str().unwrap();
    let mut viewer = Viewer::start(&["xlog", "--data", data]);
    viewer.wait_for("the stored points", |s| points_shown(s) >= 3);
    viewer.press("sshop\r", "the service filter", |s| {
        s.contains("filter: service=shop")
    });
    viewer.press("a", "the checkout", |s| s.contains("1 transactions ending"));
    let waterfall = viewer.press("\r", "its trace", |s| {
        s.contains("distributed trace: 5 spans, 2 services")
    });
    for line in [
        "| shop: server GET /checkout",
        "|   shop: client",
        "|     stock: server GET /items",
        "|       stock: client SELECT * FROM items",
        "|   shop: client http://127.0.0.1:9/ ERROR",
        "+    70.0 ms      5.0 ms  http://127.0.0.1:9/",
    ] {
        assert!(waterfall.contains(line), "{line:?} in\n{waterfall}");
    }
    viewer.press("\x1b", "the list again", is_list);
    viewer.press("\x1b", "the scatter plot", is_scatter);
    let map = viewer.press("g", "the service map", |s| {
        s.contains("service map") && s.contains("127.0.0.1:9 (addr)")
    });
    assert!(
        map.contains("2 edges, calls from 3 of 3 transactions read"),
        "{map}"
    );
    // Edges with as many calls come in the order of their names.
    let calls = viewer.press("\x1b[B\r", "the calls of shop to stock", |s| {
        s.contains("1 transactions of shop calling stock")
    });
    assert!(calls.contains("/checkout"), "{calls}");
    viewer.press("\x1b", "the map again", |s| s.contains("service map"));
    viewer.quit();
}
