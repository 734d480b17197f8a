//! `jvmapm heap` on dumps made by real JVMs (`jcmd GC.heap_dump`): the
//! HeapShapes fixture checked against `jcmd GC.class_histogram` of the same
//! quiet JVM, for each object layout HotSpot offers, plain and gzip; dumps
//! cut at many offsets; the classic Finalizer leak; graphs whose dominators
//! and retained sizes are known by construction; and `--diff`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{java_fixtures, java_launchers, jvmapm, launcher_version, JvmTurn};
use serde_json::Value;

/// The layouts: compressed oops and class pointers, then without each.
const LAYOUTS: [(&[&str], bool, bool); 3] = [
    (&[], true, true),
    (&["-XX:-UseCompressedOops"], false, true),
    (
        &["-XX:-UseCompressedOops", "-XX:-UseCompressedClassPointers"],
        false,
        false,
    ),
];

/// A fixture in a JVM of `launcher`, quiet once it said "ready".
struct Quiet {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    jcmd: PathBuf,
}

impl Quiet {
    fn start(launcher: &Path, flags: &[&str], class: &str) -> Quiet {
        let mut child = Command::new(launcher)
            .args(flags)
            .arg("-cp")
            .arg(java_fixtures())
            .arg(class)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut quiet = Quiet {
            out: BufReader::new(child.stdout.take().unwrap()),
            child,
            jcmd: launcher.with_file_name("jcmd"),
        };
        assert_eq!(quiet.line(), "ready");
        quiet
    }

    /// The fixture's next line.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Says a line to the fixture and returns its answer.
    fn say(&mut self, line: &str) -> String {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.line()
    }

    /// HeapShapes without the shared archive, so every java.lang.Class in
    /// the heap is a loaded class's, as in the dump.
    fn heap_shapes(launcher: &Path, flags: &[&str]) -> Quiet {
        let mut all = vec!["-Xshare:off"];
        all.extend(flags);
        Quiet::start(launcher, &all, "HeapShapes")
    }

    fn jcmd(&self, args: &[&str]) -> String {
        let out = Command::new(&self.jcmd)
            .arg(self.child.id().to_string())
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "jcmd {args:?}: {text}");
        text
    }

    /// `jcmd GC.heap_dump` (a live dump) to `path`, with `extra` options.
    fn dump(&self, extra: &[&str], path: &Path) {
        let mut args = vec!["GC.heap_dump"];
        args.extend(extra);
        args.push(path.to_str().unwrap());
        let said = self.jcmd(&args);
        assert!(said.contains("Heap dump file created"), "{said}");
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// jcmd's histogram by class in Java form, and its total bytes.
fn jcmd_histogram(text: &str) -> (HashMap<String, (u64, u64)>, u64) {
    let mut rows = HashMap::new();
    let mut total = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [rank, instances, bytes, class, ..] if rank.ends_with(':') => {
                rows.insert(
                    jvmapm_heap::names::java_name(class),
                    (instances.parse().unwrap(), bytes.parse().unwrap()),
                );
            }
            ["Total", _, bytes] => total = bytes.parse().unwrap(),
            _ => {}
        }
    }
    (rows, total)
}

fn report(dump: &Path) -> Value {
    let (ok, out, err) = jvmapm(&["heap", "--json", dump.to_str().unwrap()]);
    assert!(ok, "jvmapm heap {}: {err}", dump.display());
    serde_json::from_str(&out).unwrap()
}

fn rows_of(report: &Value) -> HashMap<String, (u64, u64)> {
    report["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let class = r["class"].as_str().unwrap().to_string();
            let counts = (
                r["instances"].as_u64().unwrap(),
                r["shallow_bytes"].as_u64().unwrap(),
            );
            (class, counts)
        })
        .collect()
}

#[test]
fn the_histogram_matches_jcmd_for_every_layout_and_gzip_gives_the_same_report() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    for launcher in java_launchers() {
        let jdk = launcher_version(&launcher);
        for (flags, compressed_oops, compressed_class_pointers) in LAYOUTS {
            let what = format!("JDK {jdk} {flags:?}");
            // jcmd does not overwrite a file: a name per dump.
            let name = format!("shapes-{jdk}-{}", flags.len());
            let plain = dir.path().join(format!("{name}.hprof"));
            let gzip = dir.path().join(format!("{name}.hprof.gz"));
            let (mut histogram, total) = {
                let jvm = Quiet::heap_shapes(&launcher, flags);
                let histogram = jvm.jcmd(&["GC.class_histogram"]);
                jvm.dump(&[], &plain);
                jvm.dump(&["-gz=1"], &gzip);
                jcmd_histogram(&histogram)
            };
            // JDK 19+ fills dead space with arrays of FillerElement, which
            // the dumper writes as int arrays: in a dump they are int[].
            if let Some((n, bytes)) = histogram.remove("jdk.internal.vm.FillerElement[]") {
                let ints = histogram.entry("int[]".to_string()).or_default();
                *ints = (ints.0 + n, ints.1 + bytes);
            }
            let ours = report(&plain);
            assert_eq!(ours["format"], "JAVA PROFILE 1.0.2", "{what}");
            assert_eq!(ours["id_size"], 8, "{what}");
            assert_eq!(ours["partial"], false, "{what}: {}", ours["warnings"]);
            assert_eq!(ours["compressed_refs"], compressed_oops, "{what}");
            assert_eq!(
                ours["compressed_class_pointers"], compressed_class_pointers,
                "{what}"
            );
            let rows = rows_of(&ours);
            let mut compared = 0;
            for (class, counts) in &histogram {
                if class.contains("HeapShapes") || class.ends_with("[]") {
                    assert_eq!(rows.get(class), Some(counts), "{what}: {class}");
                    compared += 1;
                }
            }
            assert!(compared >= 20, "{what}: only {compared} rows compared");
            for class in [
                "HeapShapes$Empty",
                "HeapShapes$Narrow",
                "HeapShapes$Node",
                "long[]",
                "HeapShapes$Node[]",
            ] {
                assert!(histogram.contains_key(class), "{what}: jcmd lists {class}");
            }
            let shallow = ours["shallow_bytes"].as_u64().unwrap();
            let off = (shallow as f64 - total as f64).abs() / total as f64;
            assert!(off < 0.01, "{what}: ours {shallow} bytes, jcmd {total}");

            let mut zipped = report(&gzip);
            zipped["file"] = ours["file"].clone();
            assert_eq!(zipped, ours, "{what}: the gzip dump reads the same");
        }
    }
}

#[test]
fn a_dump_cut_anywhere_gives_an_error_or_a_partial_report() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shapes.hprof");
    let launcher = &java_launchers()[0];
    Quiet::heap_shapes(launcher, &[]).dump(&[], &dump);
    let bytes = std::fs::read(&dump).unwrap();
    let whole = jvmapm_heap::analyze(&dump, &Default::default()).unwrap();
    assert!(!whole.partial);
    let mut cuts: Vec<usize> = (0..40).collect();
    cuts.extend((1..150).map(|i| bytes.len() / 150 * i + i % 7));
    cuts.push(bytes.len() - 1);
    for cut in cuts {
        let input = jvmapm_heap::input::Input::from_bytes(bytes[..cut].to_vec());
        let streamed = jvmapm_heap::analyze_input(input, "cut");
        let mapped = jvmapm_heap::analyze_bytes(bytes[..cut].to_vec(), "cut", &Default::default());
        for outcome in [streamed, mapped] {
            match outcome {
                Err(e) => {
                    assert!(
                        cut < 31,
                        "only a cut header is no report at all (cut at {cut}): {e}"
                    );
                    assert!(e.to_string().contains("at byte"), "{e}");
                }
                Ok(report) => {
                    assert!(report.partial, "cut at {cut} of {}", bytes.len());
                    assert!(
                        report.warnings[0].contains("at byte"),
                        "{:?}",
                        report.warnings
                    );
                    assert!(report.objects <= whole.objects, "cut at {cut}");
                }
            }
        }
    }
    let (ok, _, err) = jvmapm(&[
        "heap",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Cargo.toml")
            .to_str()
            .unwrap(),
    ]);
    assert!(!ok && err.contains("not an HPROF"), "{err}");
}

#[test]
fn the_finalizer_overview_names_the_leaking_statements_and_the_threads_show_why() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    for launcher in java_launchers() {
        let jdk = launcher_version(&launcher);
        let dump = dir.path().join(format!("leak-{jdk}.hprof"));
        Quiet::start(&launcher, &[], "FinalizerLeak").dump(&[], &dump);
        let report = report(&dump);
        let finalizer = &report["finalizer"];
        assert_eq!(finalizer["registered"], 3000, "JDK {jdk}: {finalizer:#}");
        assert_eq!(finalizer["queued"], 500, "JDK {jdk}: {finalizer:#}");
        assert_eq!(finalizer["in_processing"], 1, "JDK {jdk}: {finalizer:#}");
        let top = &finalizer["referents"][0];
        assert_eq!(top["class"], "FinalizerLeak$LeakyStatement", "JDK {jdk}");
        assert_eq!(top["count"], 3000, "JDK {jdk}");
        assert_eq!(top["shallow_bytes"], 3000 * 24, "JDK {jdk}");
        let threads = report["threads"].as_array().unwrap();
        let thread = |name: &str| {
            threads
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("JDK {jdk}: no thread {name} in {threads:#?}"))
        };
        let stack = |name: &str| thread(name)["stack"].to_string();
        assert!(
            stack("Finalizer").contains("FinalizerLeak$Blocker.finalize"),
            "JDK {jdk}"
        );
        assert!(
            stack("statement-timeouts").contains("java.util.TimerThread.mainLoop"),
            "JDK {jdk}"
        );
        assert_eq!(
            thread("statement-timeouts")["state"],
            "TIMED_WAITING",
            "JDK {jdk}"
        );
        assert_eq!(thread("main")["state"], "RUNNABLE", "JDK {jdk}");
        // The statements are a leak suspect: they hang from the timer's
        // queue, and the path runs from the Timer thread through its queue
        // to a statement and what it holds.
        let suspects = report["leak_suspects"].as_array().unwrap();
        let timer = suspects
            .iter()
            .find(|s| s["accumulation"]["holder_class"] == "java.util.TimerTask[]")
            .unwrap_or_else(|| panic!("JDK {jdk}: the timer queue is a suspect: {suspects:#?}"));
        // All but the task the timer thread holds on its stack, if any.
        let tasks = timer["accumulation"]["count"].as_u64().unwrap();
        assert!((2999..=3000).contains(&tasks), "JDK {jdk}: {tasks}");
        assert!(
            timer["retained_bytes"].as_u64().unwrap() > 3000 * (24 + 112),
            "JDK {jdk}"
        );
        let classes: Vec<&str> = timer["path_to_root"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hop| hop["class"].as_str().unwrap())
            .collect();
        assert_eq!(
            classes[..4],
            [
                "java.util.TaskQueue",
                "java.util.TimerTask[]",
                "FinalizerLeak$1",
                "FinalizerLeak$LeakyStatement"
            ],
            "JDK {jdk}: {timer:#}"
        );
        let held_by = timer["path_to_root"][0]["field"].as_str().unwrap();
        assert!(
            held_by.contains("in thread \"statement-timeouts\""),
            "JDK {jdk}: {held_by}"
        );
        // The queued objects are only their Finalizers' to keep.
        assert!(
            report["dominators"]["kept_by_finalizers"].as_u64().unwrap() >= 500,
            "JDK {jdk}"
        );
    }
}

/// The histogram row of `class`: (instances, shallow bytes, retained bytes).
fn retained_row(report: &Value, class: &str) -> (u64, u64, u64) {
    let row = report["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["class"] == class)
        .unwrap_or_else(|| panic!("no row for {class}"));
    (
        row["instances"].as_u64().unwrap(),
        row["shallow_bytes"].as_u64().unwrap(),
        row["retained_bytes"].as_u64().unwrap(),
    )
}

#[test]
fn retained_sizes_and_dominators_are_exact_on_graphs_built_to_be_known() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    for launcher in java_launchers() {
        let jdk = launcher_version(&launcher);
        let dump = dir.path().join(format!("dominators-{jdk}.hprof"));
        Quiet::start(&launcher, &[], "DominatorShapes").dump(&[], &dump);
        let report = report(&dump);
        assert_eq!(report["compressed_class_pointers"], true, "JDK {jdk}");
        // A byte[n] with compressed class pointers: 16 bytes, then n, aligned to 8.
        let bytes = |n: u64| (16 + n).div_ceil(8) * 8;
        let own = |class: &str| {
            let (instances, shallow, _) =
                retained_row(&report, &format!("DominatorShapes${class}"));
            assert_eq!(instances, 1, "JDK {jdk}: one {class}");
            shallow
        };
        let retained = |class: &str| retained_row(&report, &format!("DominatorShapes${class}")).2;
        let expect =
            |class: &str, want: u64| assert_eq!(retained(class), want, "JDK {jdk}: {class}");
        // The chain: each link keeps the rest.
        expect("ChainTail", own("ChainTail") + bytes(100));
        expect(
            "ChainMiddle",
            own("ChainMiddle") + own("ChainTail") + bytes(100),
        );
        expect(
            "ChainHead",
            own("ChainHead") + own("ChainMiddle") + own("ChainTail") + bytes(100),
        );
        // The diamond: the bottom is the top's, not a side's.
        expect("DiamondLeft", own("DiamondLeft"));
        expect("DiamondRight", own("DiamondRight"));
        expect("DiamondBottom", own("DiamondBottom") + bytes(200));
        expect(
            "DiamondTop",
            own("DiamondTop")
                + own("DiamondLeft")
                + own("DiamondRight")
                + own("DiamondBottom")
                + bytes(200),
        );
        // The cycle, entered at A: A keeps all, B keeps C, C its bytes.
        let cycle_c = own("CycleC") + bytes(300);
        expect("CycleC", cycle_c);
        expect("CycleB", own("CycleB") + cycle_c);
        expect("CycleA", own("CycleA") + own("CycleB") + cycle_c);
        // A shared child belongs to neither owner.
        expect("SharedOwnerOne", own("SharedOwnerOne"));
        expect("SharedOwnerTwo", own("SharedOwnerTwo"));
        expect("SharedChild", own("SharedChild") + bytes(400));
        // A weak reference keeps nothing: the strong owner keeps the target.
        let (_, weak_reference, _) = retained_row(&report, "java.lang.ref.WeakReference");
        let weak_target = own("WeakTarget") + bytes(500);
        expect("WeakTarget", weak_target);
        let weak_owner = retained("WeakOwner");
        assert!(
            weak_owner >= own("WeakOwner") + weak_target + 32
                && weak_owner <= own("WeakOwner") + weak_target + weak_reference,
            "JDK {jdk}: the weak owner keeps its target and its WeakReference: {weak_owner}"
        );
        // A soft reference keeps nothing: its target is kept by nobody.
        expect("SoftTarget", 0);
        let soft_owner = retained("SoftOwner");
        assert!(
            soft_owner > own("SoftOwner") && soft_owner < own("SoftOwner") + 64,
            "JDK {jdk}: the soft owner keeps only its SoftReference: {soft_owner}"
        );
        // The big cache behind a static field is the leak suspect: its 2000
        // entries hang from the map's table, reached through ENTRIES.
        let suspects = report["leak_suspects"].as_array().unwrap();
        let cache = suspects
            .iter()
            .find(|s| s["accumulation"]["class"] == "java.util.HashMap$Node")
            .unwrap_or_else(|| panic!("JDK {jdk}: the cache is a suspect: {suspects:#?}"));
        assert_eq!(cache["accumulation"]["count"], 2000, "JDK {jdk}");
        assert_eq!(
            cache["accumulation"]["holder_class"],
            "java.util.HashMap$Node[]"
        );
        assert!(cache["retained_bytes"].as_u64().unwrap() > 2000 * bytes(5000));
        let path: Vec<String> = cache["path_to_root"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hop| {
                format!(
                    "{} {}",
                    hop["field"].as_str().unwrap(),
                    hop["class"].as_str().unwrap()
                )
            })
            .collect();
        let path = path.join(" / ");
        for step in [
            "static ENTRIES java.util.HashMap",
            "table java.util.HashMap$Node[]",
            "java.util.HashMap$Node",
            "value byte[]",
        ] {
            assert!(path.contains(step), "JDK {jdk}: {step} in {path}");
        }
        assert!(path.starts_with("GC root"), "JDK {jdk}: {path}");
        // The biggest objects name what dominates them.
        let top = report["dominators"]["top"].as_array().unwrap();
        assert!(top.len() >= 10, "JDK {jdk}");
        assert!(top
            .windows(2)
            .all(|w| w[0]["retained_bytes"].as_u64() >= w[1]["retained_bytes"].as_u64()));
        // Any object's path, by id.
        let entries = cache["path_to_root"]
            .as_array()
            .unwrap()
            .iter()
            .find(|hop| hop["field"] == "static ENTRIES")
            .unwrap()["object_id"]
            .as_u64()
            .unwrap();
        let (ok, out, err) = jvmapm(&[
            "heap",
            "--no-dominators",
            "--path-to-root",
            &format!("0x{entries:x}"),
            dump.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        assert!(
            out.contains("Path from a GC root") && out.contains("static ENTRIES"),
            "{out}"
        );
        assert!(!out.contains("Leak suspects"), "--no-dominators: {out}");
    }
}

#[test]
fn diff_names_the_class_that_grew_between_two_dumps() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let launcher = &java_launchers()[0];
    let mut jvm = Quiet::start(launcher, &[], "Grows");
    assert_eq!(jvm.say("grow"), "grown");
    let (old, new) = (dir.path().join("old.hprof"), dir.path().join("new.hprof"));
    jvm.dump(&[], &old);
    assert_eq!(jvm.say("grow"), "grown");
    assert_eq!(jvm.say("grow"), "grown");
    jvm.dump(&[], &new);
    let (ok, out, err) = jvmapm(&[
        "heap",
        "--json",
        "--diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let diff: Value = serde_json::from_str(&out).unwrap();
    let top = &diff["classes"][0];
    assert_eq!(top["class"], "Grows$Entry", "{diff:#}");
    assert_eq!(top["instances_old"], 10000);
    assert_eq!(top["instances_new"], 30000);
    assert_eq!(top["instances_delta"], 20000);
    // 12 bytes of header and a long, aligned to 8.
    assert_eq!(top["bytes_delta"], 20000 * 24);
    let (ok, text, err) = jvmapm(&[
        "heap",
        "--diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let first = text
        .lines()
        .skip_while(|l| !l.starts_with("Grew most"))
        .nth(2)
        .unwrap_or_default();
    assert!(
        first.contains("+480000") && first.contains("Grows$Entry"),
        "{text}"
    );
}

// Hostile dumps, written byte by byte here: each asserts what a user of
// `jvmapm heap` notices (memory, time, warnings, counts, output, exit status).

const OBJECT_CLASS: u64 = 0x100;
const NODE_CLASS: u64 = 0x200;
const ARRAY_CLASS: u64 = 0x300;

/// Writes HPROF records and heap sub-records with `id` bytes per identifier.
struct Hprof {
    id: u8,
    out: Vec<u8>,
}

impl Hprof {
    fn new(id: u8) -> Hprof {
        let mut out = b"JAVA PROFILE 1.0.2\0".to_vec();
        out.extend_from_slice(&u32::from(id).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        Hprof { id, out }
    }

    fn id(&self, buf: &mut Vec<u8>, value: u64) {
        if self.id == 4 {
            buf.extend_from_slice(&(value as u32).to_be_bytes());
        } else {
            buf.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// A record's tag, time and length (its body follows).
    fn record_start(&mut self, tag: u8, len: u64) {
        self.out.push(tag);
        self.out.extend_from_slice(&0u32.to_be_bytes());
        self.out
            .extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    }

    fn record(&mut self, tag: u8, body: &[u8]) {
        self.record_start(tag, body.len() as u64);
        self.out.extend_from_slice(body);
    }

    fn utf8(&mut self, id: u64, text: &str) {
        let mut body = Vec::new();
        self.id(&mut body, id);
        body.extend_from_slice(text.as_bytes());
        self.record(0x01, &body);
    }

    fn load_class(&mut self, serial: u32, class: u64, name: u64) {
        let mut body = serial.to_be_bytes().to_vec();
        self.id(&mut body, class);
        body.extend_from_slice(&0u32.to_be_bytes());
        self.id(&mut body, name);
        self.record(0x02, &body);
    }

    /// `java/lang/Object`, `Node` (one reference, `next`) and `java.lang.Object[]`,
    /// named and loaded; their CLASS DUMPs go to `heap`.
    fn basic_classes(&mut self, heap: &mut Vec<u8>) {
        self.utf8(1, "java/lang/Object");
        self.utf8(2, "Node");
        self.utf8(3, "[Ljava/lang/Object;");
        self.utf8(4, "next");
        self.load_class(1, OBJECT_CLASS, 1);
        self.load_class(2, NODE_CLASS, 2);
        self.load_class(3, ARRAY_CLASS, 3);
        self.class_dump(heap, OBJECT_CLASS, 0, &[]);
        self.class_dump(heap, NODE_CLASS, OBJECT_CLASS, &[(4, 2)]);
        self.class_dump(heap, ARRAY_CLASS, OBJECT_CLASS, &[]);
    }

    fn class_dump(&self, heap: &mut Vec<u8>, class: u64, super_id: u64, fields: &[(u64, u8)]) {
        heap.push(0x20);
        self.id(heap, class);
        heap.extend_from_slice(&0u32.to_be_bytes());
        self.id(heap, super_id);
        for _ in 0..5 {
            self.id(heap, 0);
        }
        heap.extend_from_slice(&0u32.to_be_bytes());
        heap.extend_from_slice(&0u16.to_be_bytes());
        heap.extend_from_slice(&0u16.to_be_bytes());
        heap.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for &(name, t) in fields {
            self.id(heap, name);
            heap.push(t);
        }
    }

    fn instance(&self, heap: &mut Vec<u8>, id: u64, class: u64, values: &[u8]) {
        heap.push(0x21);
        self.id(heap, id);
        heap.extend_from_slice(&0u32.to_be_bytes());
        self.id(heap, class);
        heap.extend_from_slice(&(values.len() as u32).to_be_bytes());
        heap.extend_from_slice(values);
    }

    /// A `Node` pointing at `next`.
    fn node(&self, heap: &mut Vec<u8>, id: u64, next: u64) {
        let mut values = Vec::new();
        self.id(&mut values, next);
        self.instance(heap, id, NODE_CLASS, &values);
    }

    /// A primitive array's header, saying `length` elements (which follow).
    fn primitive_array_start(&self, heap: &mut Vec<u8>, id: u64, element_type: u8, length: u32) {
        heap.push(0x23);
        self.id(heap, id);
        heap.extend_from_slice(&0u32.to_be_bytes());
        heap.extend_from_slice(&length.to_be_bytes());
        heap.push(element_type);
    }

    /// An object array's header, saying `length` elements (which follow).
    fn object_array_start(&self, heap: &mut Vec<u8>, id: u64, class: u64, length: u32) {
        heap.push(0x22);
        self.id(heap, id);
        heap.extend_from_slice(&0u32.to_be_bytes());
        heap.extend_from_slice(&length.to_be_bytes());
        self.id(heap, class);
    }

    /// A ROOT UNKNOWN.
    fn root(&self, heap: &mut Vec<u8>, id: u64) {
        heap.push(0xFF);
        self.id(heap, id);
    }

    /// `heap` as one HEAP DUMP SEGMENT, then HEAP DUMP END.
    fn finish(mut self, heap: &[u8]) -> Vec<u8> {
        self.record(0x1C, heap);
        self.record(0x2C, &[]);
        self.out
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// What a run of `jvmapm` gave.
struct Run {
    /// Exit status (none when killed by a signal).
    code: Option<i32>,
    out: String,
    err: String,
    /// Peak resident memory of the process, in KB (getrusage of the child).
    peak_rss_kb: u64,
    seconds: f64,
}

/// Runs `jvmapm args`, with `stdin` written through a pipe (else none),
/// and `feed` run beside it (a FIFO's writer); kills it after `timeout`.
fn run_jvmapm(
    args: &[&str],
    stdin: Option<Vec<u8>>,
    feed: Option<Box<dyn FnOnce() + Send>>,
    timeout: std::time::Duration,
) -> Run {
    use std::io::{Read, Write};
    let started = std::time::Instant::now();
    // Reaped by wait4 below, which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_jvmapm"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let feeder = feed.map(std::thread::spawn);
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = r.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: waits for our own child, with valid out-pointers.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        assert!(done == 0, "wait4: {}", std::io::Error::last_os_error());
        if started.elapsed() > timeout && !killed {
            // SAFETY: signals our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(w) = writer {
        let _ = w.join();
    }
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let run = Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        out: out.join().unwrap(),
        err: err.join().unwrap(),
        peak_rss_kb: usage.ru_maxrss as u64,
        seconds,
    };
    assert!(
        !killed,
        "jvmapm {args:?} still ran after {timeout:?}: {}",
        run.err
    );
    run
}

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// The JSON report of a run, without the file's name.
fn json_without_file(run: &Run) -> Value {
    let mut report: Value =
        serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}: {} {}", run.out, run.err));
    report["file"] = Value::Null;
    report
}

/// A small heap: three Nodes in a list from a root, an int[3] and an
/// Object[2] pointing at two of them.
fn small_heap() -> Vec<u8> {
    let mut w = Hprof::new(8);
    let mut heap = Vec::new();
    w.basic_classes(&mut heap);
    w.root(&mut heap, 0x1000);
    for (object, next) in [(0x1000u64, 0x1010u64), (0x1010, 0x1020), (0x1020, 0)] {
        w.node(&mut heap, object, next);
    }
    w.primitive_array_start(&mut heap, 0x1030, 10, 3);
    heap.extend_from_slice(&[0; 12]);
    w.object_array_start(&mut heap, 0x1050, ARRAY_CLASS, 2);
    w.id(&mut heap, 0x1000);
    w.id(&mut heap, 0x1020);
    w.finish(&heap)
}

#[test]
fn standard_input_a_pipe_and_a_fifo_give_the_report_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let plain = small_heap();
    for (name, bytes) in [
        ("small.hprof", plain.clone()),
        ("small.hprof.gz", gzip(&plain)),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, &bytes).unwrap();
        let args = |input: &str| ["heap", "--json", "--no-dominators", input].map(String::from);
        let run = |input: &str, stdin: Option<Vec<u8>>, feed: Option<Box<dyn FnOnce() + Send>>| {
            let args = args(input);
            let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
            let run = run_jvmapm(&args, stdin, feed, MINUTE);
            assert_eq!(run.code, Some(0), "{name} as {input}: {}", run.err);
            json_without_file(&run)
        };
        let from_file = run(file.to_str().unwrap(), None, None);
        assert_eq!(from_file["objects"], 5, "{name}");
        assert_eq!(
            run("-", Some(bytes.clone()), None),
            from_file,
            "{name}: cat {name} | jvmapm heap -"
        );
        assert_eq!(
            run("/dev/stdin", Some(bytes.clone()), None),
            from_file,
            "{name}: cat {name} | jvmapm heap /dev/stdin"
        );
        let fifo = dir.path().join(format!("{name}.fifo"));
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let (writer_path, writer_bytes) = (fifo.clone(), bytes.clone());
        let feed: Box<dyn FnOnce() + Send> = Box::new(move || {
            use std::io::Write;
            if let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&writer_path) {
                let _ = pipe.write_all(&writer_bytes);
            }
        });
        assert_eq!(
            run(fifo.to_str().unwrap(), None, Some(feed)),
            from_file,
            "{name}: a FIFO"
        );
    }
    // Without --no-dominators a stream still gives its one-pass report.
    let run = run_jvmapm(&["heap", "-"], Some(plain), None, MINUTE);
    assert_eq!(run.code, Some(0), "{}", run.err);
    assert!(
        run.out.contains("Class histogram")
            && run.out.contains("no dominator tree or paths for a stream"),
        "{}",
        run.out
    );
}

/// Peak memory allowed for the dump of fifty million roots (what the
/// process needs besides its roots: buffers, the inflater, the allocator).
const ROOTS_PEAK_KB: u64 = 256 * 1024;

#[test]
fn fifty_million_gc_roots_in_a_gzip_dump_of_two_megabytes_stay_in_bounded_memory() {
    const CHUNK: usize = 1_000_000;
    const CHUNKS: usize = 50;
    // One JavaFrame root of a Node, a million times over, gzipped once:
    // gzip members may follow each other (HotSpot's -gz dumps are so).
    let w = Hprof::new(8);
    let mut root = vec![0x03];
    w.id(&mut root, 0x1000);
    root.extend_from_slice(&1u32.to_be_bytes());
    root.extend_from_slice(&0u32.to_be_bytes());
    let roots = gzip(&root.repeat(CHUNK));
    let mut w = Hprof::new(8);
    let mut before = Vec::new();
    w.basic_classes(&mut before);
    let mut after = Vec::new();
    w.node(&mut after, 0x1000, 0);
    let segment = before.len() + root.len() * CHUNK * CHUNKS + after.len();
    w.record_start(0x1C, segment as u64);
    w.out.extend_from_slice(&before);
    let mut file = gzip(&w.out);
    for _ in 0..CHUNKS {
        file.extend_from_slice(&roots);
    }
    let mut end = after;
    end.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0, 0, 0, 0]);
    file.extend_from_slice(&gzip(&end));
    // Deflate packs the 850 MB into 2 MB (gzip -9 too).
    assert!(file.len() < 3 << 20, "{} bytes", file.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roots.hprof.gz");
    std::fs::write(&path, &file).unwrap();
    let run = run_jvmapm(
        &["heap", "--json", path.to_str().unwrap()],
        None,
        None,
        10 * MINUTE,
    );
    assert_eq!(run.code, Some(0), "{}", run.err);
    eprintln!(
        "50M roots, {} KB gzip: peak RSS {} MB, {:.1} s",
        file.len() / 1024,
        run.peak_rss_kb / 1024,
        run.seconds
    );
    let report = json_without_file(&run);
    assert_eq!(report["objects"], 1);
    assert_eq!(report["partial"], false);
    assert!(
        run.peak_rss_kb < ROOTS_PEAK_KB,
        "peak RSS {} MB for 50 million roots of one object",
        run.peak_rss_kb / 1024
    );
}

#[test]
fn a_superclass_chain_of_200000_classes_finishes_and_warns_of_no_missing_class_dump() {
    const CLASSES: u64 = 200_000;
    let mut w = Hprof::new(8);
    w.utf8(1, "f");
    let class = |i: u64| 0x1_0000_0000 + i * 16;
    for i in 0..CLASSES {
        w.utf8(100 + i, &format!("C{i}"));
        w.load_class(i as u32 + 1, class(i), 100 + i);
    }
    // Each class extends the one before and adds an int; subclasses first.
    let mut heap = Vec::new();
    for i in (0..CLASSES).rev() {
        let super_id = if i == 0 { 0 } else { class(i - 1) };
        w.class_dump(&mut heap, class(i), super_id, &[(1, 10)]);
    }
    for (object, depth) in [(0x1000u64, CLASSES - 1), (0x100_0000, CLASSES / 2)] {
        w.root(&mut heap, object);
        w.instance(
            &mut heap,
            object,
            class(depth),
            &vec![0; 4 * (depth as usize + 1)],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.hprof");
    std::fs::write(&path, w.finish(&heap)).unwrap();
    let run = run_jvmapm(
        &["heap", "--json", path.to_str().unwrap()],
        None,
        None,
        MINUTE,
    );
    assert_eq!(run.code, Some(0), "{}", run.err);
    eprintln!(
        "200 000-class chain: {:.1} s, peak RSS {} MB",
        run.seconds,
        run.peak_rss_kb / 1024
    );
    let report = json_without_file(&run);
    let warnings = report["warnings"].to_string();
    assert!(!warnings.contains("no class dump"), "{warnings}");
    // A header of 12 bytes and 200 000 ints.
    assert_eq!(
        retained_row(&report, &format!("C{}", CLASSES - 1)),
        (1, 12 + 4 * CLASSES + 4, 12 + 4 * CLASSES + 4)
    );
    let half = (12 + 4 * (CLASSES / 2 + 1)).div_ceil(8) * 8;
    assert_eq!(retained_row(&report, &format!("C{}", CLASSES / 2)).1, half);
}

#[test]
fn an_array_cut_short_is_counted_at_the_bytes_present_and_the_partial_report_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    for (what, object_array) in [("byte[]", false), ("java.lang.Object[]", true)] {
        let mut w = Hprof::new(8);
        let mut heap = Vec::new();
        w.basic_classes(&mut heap);
        w.node(&mut heap, 0x1000, 0);
        let present = if object_array {
            // Ten of ten million elements.
            w.object_array_start(&mut heap, 0x2000, ARRAY_CLASS, 10_000_000);
            for _ in 0..10 {
                w.id(&mut heap, 0x1000);
            }
            10 * 4
        } else {
            // A thousand of a hundred million bytes.
            w.primitive_array_start(&mut heap, 0x2000, 8, 100_000_000);
            heap.extend_from_slice(&[7; 1000]);
            1000
        };
        // The segment says it holds the whole array; the file ends first.
        let declared = heap.len() as u64
            + if object_array {
                80_000_000 - 80
            } else {
                100_000_000 - 1000
            };
        w.record_start(0x1C, declared);
        w.out.extend_from_slice(&heap);
        let plain = dir.path().join("cut.hprof");
        let zipped = dir.path().join("cut.hprof.gz");
        std::fs::write(&plain, &w.out).unwrap();
        std::fs::write(&zipped, gzip(&w.out)).unwrap();
        for path in [&plain, &zipped] {
            let run = run_jvmapm(
                &["heap", "--json", path.to_str().unwrap()],
                None,
                None,
                MINUTE,
            );
            assert_eq!(run.code, Some(3), "a partial report exits 3: {}", run.err);
            let report = json_without_file(&run);
            assert_eq!(report["partial"], true);
            let row = report["histogram"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["class"] == what)
                .unwrap_or_else(|| panic!("{what}: {report:#}"))
                .clone();
            assert_eq!(row["instances"], 1, "{}", path.display());
            // The header of 16 bytes and the elements there are.
            assert_eq!(
                row["shallow_bytes"],
                (16 + present as u64).div_ceil(8) * 8,
                "{what} in {}",
                path.display()
            );
        }
    }
    // A usage error stays 2.
    let run = run_jvmapm(&["heap", "--no-such-flag"], None, None, MINUTE);
    assert_eq!(run.code, Some(2), "{}", run.err);
}

#[test]
fn a_leak_suspects_path_of_a_million_steps_is_printed_with_its_middle_left_out() {
    const STEPS: u64 = 1_000_000;
    let mut w = Hprof::new(4);
    let mut heap = Vec::new();
    w.basic_classes(&mut heap);
    // A list of a million Nodes from a root, the last holding an Object[]
    // of a thousand byte[8192]: the memory is at the end of the list.
    let node = |i: u64| 0x10_0000 + i * 16;
    w.root(&mut heap, node(0));
    for i in 0..STEPS {
        w.node(&mut heap, node(i), node(i + 1));
    }
    w.node(&mut heap, node(STEPS), 0x4000_0000);
    w.object_array_start(&mut heap, 0x4000_0000, ARRAY_CLASS, 1000);
    for i in 0..1000u64 {
        w.id(&mut heap, 0x5000_0000 + i * 8208);
    }
    for i in 0..1000u64 {
        w.primitive_array_start(&mut heap, 0x5000_0000 + i * 8208, 8, 8192);
        heap.extend_from_slice(&[1; 8192]);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list.hprof");
    std::fs::write(&path, w.finish(&heap)).unwrap();
    let run = run_jvmapm(&["heap", path.to_str().unwrap()], None, None, 5 * MINUTE);
    assert_eq!(run.code, Some(0), "{}", run.err);
    let text = &run.out;
    assert!(
        text.lines().count() < 1000,
        "{} lines",
        text.lines().count()
    );
    let left_out = text
        .lines()
        .find(|l| l.contains("steps left out"))
        .unwrap_or_else(|| panic!("{text}"));
    // The path: the root, 20 steps, the rest left out, the last 20 steps
    // (the list's end, the Object[] and one byte[]).
    let total = STEPS + 3;
    assert!(
        left_out.contains(&format!("{} steps left out", total - 40)),
        "{left_out}"
    );
    assert!(text.contains("(GC root: Unknown)"), "{text}");
    assert!(
        text.contains("java.lang.Object[]") && text.contains("byte[]"),
        "{text}"
    );
    let run = run_jvmapm(
        &["heap", "--json", path.to_str().unwrap()],
        None,
        None,
        5 * MINUTE,
    );
    let report = json_without_file(&run);
    let suspect = report["leak_suspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path_to_root"].as_array().unwrap().len() > 2)
        .unwrap_or_else(|| panic!("{report:#}"))
        .clone();
    let hops = suspect["path_to_root"].as_array().unwrap();
    assert_eq!(hops.len(), 41, "{hops:#?}");
    assert_eq!(hops[20]["elided"], total - 40);
    assert_eq!(hops[21]["field"], "next");
    assert_eq!(hops[40]["class"], "byte[]");
}
