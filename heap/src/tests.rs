//! Tests over dumps written here, byte by byte: both identifier sizes, and
//! thousands of damaged copies that must give an error or a partial report,
//! never a panic or a hang.

use crate::hprof::basic;
use crate::input::Input;
use crate::{analyze, analyze_bytes, analyze_input, report::Report, Error, Options};

/// Writes HPROF records with `id` bytes per identifier.
struct Writer {
    id: u8,
    out: Vec<u8>,
}

impl Writer {
    fn new(id: u8) -> Writer {
        let mut out = b"JAVA PROFILE 1.0.2\0".to_vec();
        out.extend_from_slice(&u32::from(id).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        Writer { id, out }
    }

    fn id(&self, buf: &mut Vec<u8>, value: u64) {
        if self.id == 4 {
            buf.extend_from_slice(&(value as u32).to_be_bytes());
        } else {
            buf.extend_from_slice(&value.to_be_bytes());
        }
    }

    fn record(&mut self, tag: u8, body: &[u8]) {
        self.out.push(tag);
        self.out.extend_from_slice(&0u32.to_be_bytes());
        self.out
            .extend_from_slice(&(body.len() as u32).to_be_bytes());
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
}

/// A small heap: `java/lang/Object`, a class `Pair` (an int and a
/// reference), three Pairs, an int[3] and a Pair[2], in one segment.
fn sample(id_size: u8) -> Vec<u8> {
    let mut w = Writer::new(id_size);
    w.utf8(1, "java/lang/Object");
    w.utf8(2, "Pair");
    w.utf8(3, "[LPair;");
    w.utf8(4, "n");
    w.utf8(5, "next");
    w.load_class(1, 0x100, 1);
    w.load_class(2, 0x200, 2);
    w.load_class(3, 0x300, 3);
    let mut heap = Vec::new();
    for (class, super_id, fields) in [
        (0x100u64, 0u64, vec![]),
        (0x200, 0x100, vec![(4u64, basic::INT), (5, basic::OBJECT)]),
        (0x300, 0x100, vec![]),
    ] {
        heap.push(0x20);
        w.id(&mut heap, class);
        heap.extend_from_slice(&0u32.to_be_bytes());
        w.id(&mut heap, super_id);
        for _ in 0..5 {
            w.id(&mut heap, 0);
        }
        heap.extend_from_slice(&0u32.to_be_bytes());
        heap.extend_from_slice(&0u16.to_be_bytes());
        heap.extend_from_slice(&0u16.to_be_bytes());
        heap.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for (name, t) in fields {
            w.id(&mut heap, name);
            heap.push(t);
        }
    }
    heap.push(0x05);
    w.id(&mut heap, 0x200);
    // Three segments: the classes and the root, the Pairs, the arrays.
    w.record(0x1C, &std::mem::take(&mut heap));
    // Laid out one after the other as a JVM with compressed oops would:
    // Pairs of 24 bytes, then the int[] (32 bytes), then the Pair[].
    for (i, object) in [0x1000u64, 0x1018, 0x1030].into_iter().enumerate() {
        heap.push(0x21);
        w.id(&mut heap, object);
        heap.extend_from_slice(&0u32.to_be_bytes());
        w.id(&mut heap, 0x200);
        heap.extend_from_slice(&(4 + u32::from(id_size)).to_be_bytes());
        heap.extend_from_slice(&(i as u32).to_be_bytes());
        w.id(&mut heap, if i == 0 { 0 } else { object - 0x18 });
    }
    w.record(0x1C, &std::mem::take(&mut heap));
    heap.push(0x23);
    w.id(&mut heap, 0x1048);
    heap.extend_from_slice(&0u32.to_be_bytes());
    heap.extend_from_slice(&3u32.to_be_bytes());
    heap.push(basic::INT);
    heap.extend_from_slice(&[0; 12]);
    heap.push(0x22);
    w.id(&mut heap, 0x1068);
    heap.extend_from_slice(&0u32.to_be_bytes());
    heap.extend_from_slice(&2u32.to_be_bytes());
    w.id(&mut heap, 0x300);
    w.id(&mut heap, 0x1000);
    w.id(&mut heap, 0x1010);
    w.record(0x1C, &heap);
    w.record(0x2C, &[]);
    w.out
}

/// The report read front to back, after checking that reading the same
/// bytes as a mapped file (segments parsed apart) gives the same one, and
/// that the dominator tree can be made of them.
fn run(bytes: Vec<u8>) -> Result<Report, Error> {
    let with_tree = analyze_bytes(bytes.clone(), "sample", &Options::default());
    if let Ok(report) = &with_tree {
        assert!(report.partial || report.dominators.is_some());
    }
    let options = Options {
        dominators: false,
        ..Options::default()
    };
    let mapped = analyze_bytes(bytes.clone(), "sample", &options);
    let streamed = analyze_input(Input::from_bytes(bytes), "sample");
    if let (Ok(mapped), Ok(streamed)) = (&mapped, &streamed) {
        if !streamed.partial {
            let json = |r: &Report| serde_json::to_string(r).unwrap();
            assert_eq!(json(mapped), json(streamed));
        }
    }
    assert_eq!(mapped.is_ok(), streamed.is_ok(), "{mapped:?} {streamed:?}");
    streamed
}

#[test]
fn both_identifier_sizes_read_the_same_heap() {
    for id_size in [4, 8] {
        let report = run(sample(id_size)).unwrap();
        assert!(!report.partial, "{:?}", report.warnings);
        assert_eq!(report.id_size, id_size);
        let row = |class: &str| {
            report
                .histogram
                .iter()
                .find(|r| r.class == class)
                .map(|r| (r.instances, r.shallow_bytes))
        };
        // 12 + int + compressed reference, aligned to 8.
        assert_eq!(row("Pair"), Some((3, 72)), "{report:?}");
        assert_eq!(row("int[]"), Some((1, 32)));
        assert_eq!(row("Pair[]"), Some((1, 24)));
        assert_eq!(report.objects, 5);
        assert!(report.compressed_refs && report.compressed_class_pointers);
        assert!(
            report.warnings.is_empty(),
            "the gaps told the layout: {:?}",
            report.warnings
        );
    }
}

#[test]
fn an_unknown_record_is_skipped_with_a_warning() {
    let mut bytes = sample(8);
    let end = bytes.len() - 9;
    let mut unknown = vec![0x77, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3];
    unknown.extend_from_slice(&bytes[end..]);
    bytes.truncate(end);
    bytes.extend_from_slice(&unknown);
    let report = run(bytes).unwrap();
    assert!(!report.partial);
    assert!(
        report.warnings.iter().any(|w| w.contains("0x77")),
        "{:?}",
        report.warnings
    );
}

/// What `jvmapm heap` prints when it gives no report names the file, the
/// byte or the object at fault.
#[test]
fn errors_name_the_file_the_byte_or_the_object_at_fault() {
    let missing = analyze("/nonexistent/app.hprof".as_ref(), &Options::default()).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read /nonexistent/app.hprof: "),
        "{missing}"
    );
    let notes = analyze_bytes(b"not a dump\0".to_vec(), "notes.txt", &Options::default());
    assert_eq!(
        notes.unwrap_err().to_string(),
        "notes.txt: at byte 0: expected \"JAVA PROFILE 1.0.x\" at the start, found \"not a dump\": not an HPROF heap dump"
    );
    let options = Options {
        path_to_root: Some(0xdead),
        ..Options::default()
    };
    let absent = analyze_bytes(sample(8), "sample", &options).unwrap_err();
    assert_eq!(
        absent.to_string(),
        "--path-to-root: no object 0xdead (57005) in the dump"
    );
}

#[test]
fn damaged_dumps_give_an_error_or_a_partial_report_never_a_panic() {
    let original = sample(8);
    let mut rng = jvmapm_contract::random::Rng::seeded(0x2545_F491_4F6C_DD1D);
    let mut next = move || rng.next_u64();
    for round in 0..3000 {
        let mut bytes = original.clone();
        let cut = match round % 3 {
            0 => {
                let at = next() as usize % bytes.len();
                bytes[at] = next() as u8;
                false
            }
            1 => {
                for _ in 0..8 {
                    let at = next() as usize % bytes.len();
                    bytes[at] ^= 1 << (next() % 8);
                }
                false
            }
            _ => {
                let at = next() as usize % bytes.len();
                bytes.truncate(at);
                true
            }
        };
        match run(bytes) {
            Ok(report) => assert!(
                report.partial || !cut,
                "round {round}: a cut dump is partial"
            ),
            Err(e) => assert!(e.to_string().contains("at byte"), "{e}"),
        }
    }
}

#[test]
fn packed_ids_come_back_as_they_were_and_odd_ones_stay_unpacked() {
    use crate::dump::Objects;
    let ids = [
        0x7_0000_0010u64,
        0x7_0000_0018,
        0x7_0000_0008,
        0x7_0000_0008 + (8 << 31),
    ];
    let mut objects = Objects::default();
    for (i, &id) in ids.iter().enumerate() {
        objects.push(id, 16, 0, i as u64);
    }
    let packed = objects.pack_ids();
    assert!(packed.is_some() && objects.ids.is_empty());
    objects.unpack_ids(packed);
    assert_eq!(objects.ids, ids);
    objects.push(0x7_0000_0013, 16, 0, 9);
    assert!(
        objects.pack_ids().is_none(),
        "not a multiple of 8 from the lowest"
    );
    assert_eq!(objects.ids.len(), 5);
}

/// Regression: names from a dump reached the terminal as they were, so a
/// class named with an escape sequence could retitle or clear it.
#[test]
fn escape_sequences_in_a_dump_never_reach_the_text_report() {
    let mut bytes = sample(8);
    let at = bytes
        .windows(4)
        .position(|w| w == b"Pair")
        .expect("the class name");
    bytes[at..at + 4].copy_from_slice(b"P\x1b[J");
    let text = run(bytes).unwrap().text(10);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("P\u{FFFD}[J"), "{text}");
}
