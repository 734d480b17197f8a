//! The HPROF format as HotSpot writes it (`jcmd GC.heap_dump`, `jmap`,
//! HotSpotDiagnosticMXBean), read in one forward pass that hands every
//! record to a [`Visitor`]. Identifier sizes 4 and 8; heap dumps in one
//! HEAP DUMP record or many HEAP DUMP SEGMENTs. A record the parser does not
//! know is skipped by its length with one warning per tag; a heap sub-record
//! it does not know cannot be skipped (sub-records carry no length), so the
//! rest of that segment is skipped and the report is marked partial.

use crate::input::{Input, ParseError};

/// What the dump's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// `JAVA PROFILE 1.0.2` (or 1.0.1).
    pub format: String,
    pub id_size: u8,
    pub timestamp_ms: u64,
}

/// HPROF basic types.
pub mod basic {
    pub const OBJECT: u8 = 2;
    pub const BOOLEAN: u8 = 4;
    pub const CHAR: u8 = 5;
    pub const FLOAT: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BYTE: u8 = 8;
    pub const SHORT: u8 = 9;
    pub const INT: u8 = 10;
    pub const LONG: u8 = 11;

    /// Bytes a value of `t` takes in the dump (an object takes an id).
    pub fn dump_size(t: u8, id_size: u8) -> Option<usize> {
        match t {
            OBJECT => Some(usize::from(id_size)),
            BOOLEAN | BYTE => Some(1),
            CHAR | SHORT => Some(2),
            FLOAT | INT => Some(4),
            DOUBLE | LONG => Some(8),
            _ => None,
        }
    }

    /// A value as the dump writes it (big-endian, 1 to 8 bytes): an id, or
    /// a primitive's bits.
    pub fn value(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// The Java name of a primitive type, for `byte[]` and such.
    pub fn java_name(t: u8) -> &'static str {
        match t {
            BOOLEAN => "boolean",
            CHAR => "char",
            FLOAT => "float",
            DOUBLE => "double",
            BYTE => "byte",
            SHORT => "short",
            INT => "int",
            LONG => "long",
            _ => "?",
        }
    }
}

/// The kinds of GC roots HotSpot records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RootKind {
    Unknown,
    JniGlobal,
    JniLocal,
    JavaFrame,
    NativeStack,
    StickyClass,
    ThreadBlock,
    MonitorUsed,
    ThreadObject,
}

/// One field of a class: its name's string id and its basic type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDef {
    pub name_id: u64,
    pub basic_type: u8,
}

/// A static field with its value (an id, or the primitive's bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticField {
    pub name_id: u64,
    pub basic_type: u8,
    pub value: u64,
}

/// A CLASS DUMP sub-record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassDump {
    pub id: u64,
    pub super_id: u64,
    pub loader_id: u64,
    /// The dump's own instance size (sum of field sizes as dumped), not
    /// the JVM's: see `layout`.
    pub dumped_instance_size: u32,
    pub statics: Vec<StaticField>,
    pub fields: Vec<FieldDef>,
}

/// A stack frame (FRAME record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub id: u64,
    pub method_name_id: u64,
    pub signature_id: u64,
    pub source_file_id: u64,
    pub class_serial: u32,
    /// Line number; 0 none, -1 unknown, -2 compiled, -3 native.
    pub line: i32,
}

/// Receives the records in dump order; every method defaults to nothing.
#[allow(unused_variables)]
pub trait Visitor {
    fn header(&mut self, header: &Header) {}
    fn utf8(&mut self, id: u64, text: &[u8]) {}
    fn load_class(&mut self, serial: u32, class_id: u64, name_id: u64) {}
    fn frame(&mut self, frame: Frame) {}
    fn trace(&mut self, serial: u32, thread_serial: u32, frames: Vec<u64>) {}
    /// A GC root; `info` holds its numbers after the id (for a thread
    /// object: its thread serial and stack trace serial).
    fn root(&mut self, kind: RootKind, id: u64, info: &[u32]) {}
    fn class_dump(&mut self, class: ClassDump) {}
    /// An instance; `at` is where its sub-record starts in the dump.
    fn instance(&mut self, at: u64, id: u64, class_id: u64, fields: &[u8]) {}
    /// An object array; its elements follow in [`Visitor::object_array_elements`] calls.
    fn object_array(&mut self, at: u64, id: u64, class_id: u64, length: u32) {}
    /// Up to a block of an object array's elements (ids, big-endian).
    fn object_array_elements(&mut self, ids: &[u8]) {}
    /// A primitive array, after its elements: `length` is how many the dump
    /// holds (fewer than it says where the dump is cut short).
    fn primitive_array(&mut self, at: u64, id: u64, element_type: u8, length: u32) {}
    /// The object array just visited ends early (the dump is cut short):
    /// it holds `length` elements, fewer than it said.
    fn array_cut_short(&mut self, length: u32) {}
    /// Whether the content of primitive array `id` is wanted (when small).
    fn wants_array_content(&mut self, id: u64) -> bool {
        false
    }
    fn primitive_array_content(&mut self, id: u64, element_type: u8, data: &[u8]) {}
    fn warning(&mut self, text: String) {}
    /// A heap dump record (or segment) of `len` bytes starting at `at`:
    /// true when the visitor takes it to parse later ([`parse_segment`]),
    /// and the parser skips it.
    fn heap_segment(&mut self, at: u64, len: u64) -> bool {
        false
    }
}

/// Largest UTF8 record or array content read whole; longer ones are skipped.
const MAX_WHOLE: usize = 16 << 20;
/// Elements of an object array handed over at a time.
const ELEMENT_CHUNK: usize = 64 * 1024;

/// What a parse that reached the end found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub header: Header,
    /// Part of a heap dump segment could not be read (an unknown sub-record).
    pub skipped_data: bool,
    /// The heap dump was seen whole: a HEAP DUMP record, or segments
    /// followed by HEAP DUMP END. Without it the file was cut between records.
    pub heap_complete: bool,
}

/// Parses the whole dump. On an error the header (when it was read) comes
/// with it, and everything visited before it stands.
pub fn parse(
    input: &mut Input,
    visitor: &mut impl Visitor,
) -> Result<Parsed, (Option<Header>, ParseError)> {
    let header = read_header(input).map_err(|e| (None, e))?;
    visitor.header(&header);
    let mut parser = Parser {
        input,
        id: header.id_size,
        warned_tags: Vec::new(),
        skipped_data: false,
        heap_complete: false,
    };
    match parser.records(visitor) {
        Ok(()) => Ok(Parsed {
            skipped_data: parser.skipped_data,
            heap_complete: parser.heap_complete,
            header,
        }),
        Err(e) => Err((Some(header), e)),
    }
}

/// Parses the sub-records of one heap dump segment (or HEAP DUMP record)
/// that a visitor took: `input` reads just its body. Returns whether part
/// of it was skipped (an unknown sub-record).
pub fn parse_segment(
    input: &mut Input,
    id_size: u8,
    visitor: &mut impl Visitor,
    len: u64,
) -> Result<bool, ParseError> {
    let mut parser = Parser {
        input,
        id: id_size,
        warned_tags: Vec::new(),
        skipped_data: false,
        heap_complete: false,
    };
    parser.sub_records(visitor, len)?;
    Ok(parser.skipped_data)
}

fn read_header(input: &mut Input) -> Result<Header, ParseError> {
    let mut format = Vec::new();
    loop {
        let b = input.u8("the header's format name (JAVA PROFILE 1.0.x)")?;
        if b == 0 {
            break;
        }
        format.push(b);
        if format.len() > 64 {
            return Err(
                input.error("a NUL ending the format name within 64 bytes: not an HPROF file")
            );
        }
    }
    let format = String::from_utf8_lossy(&format).into_owned();
    if !format.starts_with("JAVA PROFILE 1.0") {
        return Err(ParseError {
            offset: 0,
            expected: format!(
                "\"JAVA PROFILE 1.0.x\" at the start, found {format:?}: not an HPROF heap dump"
            ),
        });
    }
    let at = input.offset();
    let id_size = input.u32("the identifier size")?;
    if id_size != 4 && id_size != 8 {
        return Err(ParseError {
            offset: at,
            expected: format!("an identifier size of 4 or 8, found {id_size}"),
        });
    }
    let timestamp_ms = input.u64("the dump's time stamp")?;
    Ok(Header {
        format,
        id_size: id_size as u8,
        timestamp_ms,
    })
}

struct Parser<'a> {
    input: &'a mut Input,
    id: u8,
    warned_tags: Vec<u8>,
    skipped_data: bool,
    heap_complete: bool,
}

impl Parser<'_> {
    fn records(&mut self, v: &mut impl Visitor) -> Result<(), ParseError> {
        let id = self.id;
        while !self.input.at_end() {
            let start = self.input.offset();
            let tag = self.input.u8("a record tag")?;
            self.input.u32("a record's time")?;
            let len = self.input.u32("a record's length")? as u64;
            let body = self.input.offset();
            match tag {
                0x01 => {
                    let string_id = self.input.id(id, "a string's id")?;
                    let text_len = len.checked_sub(u64::from(id)).ok_or_else(|| {
                        self.input.error("a UTF8 record at least as long as an id")
                    })?;
                    if text_len as usize <= MAX_WHOLE {
                        let text = self.input.bytes(text_len as usize, "the string's bytes")?;
                        v.utf8(string_id, text);
                    } else {
                        self.input.skip(text_len, "the string's bytes")?;
                    }
                }
                0x02 => {
                    let serial = self.input.u32("a class serial")?;
                    let class_id = self.input.id(id, "a class id")?;
                    self.input.u32("a stack trace serial")?;
                    let name_id = self.input.id(id, "a class name id")?;
                    v.load_class(serial, class_id, name_id);
                }
                0x04 => {
                    let frame = Frame {
                        id: self.input.id(id, "a frame id")?,
                        method_name_id: self.input.id(id, "a method name id")?,
                        signature_id: self.input.id(id, "a method signature id")?,
                        source_file_id: self.input.id(id, "a source file id")?,
                        class_serial: self.input.u32("a class serial")?,
                        line: self.input.u32("a line number")? as i32,
                    };
                    v.frame(frame);
                }
                0x05 => {
                    let serial = self.input.u32("a stack trace serial")?;
                    let thread_serial = self.input.u32("a thread serial")?;
                    let count = self.input.u32("a frame count")?;
                    let mut frames = Vec::with_capacity(count.min(4096) as usize);
                    for _ in 0..count {
                        frames.push(self.input.id(id, "a frame id")?);
                    }
                    v.trace(serial, thread_serial, frames);
                }
                0x0C => {
                    self.heap_dump(v, body, len)?;
                    self.heap_complete = true;
                }
                0x1C => {
                    self.heap_complete = false;
                    self.heap_dump(v, body, len)?;
                }
                0x2C => {
                    self.heap_complete = true;
                    self.input.skip(len, "the rest of a record")?
                }
                // UNLOAD CLASS, ALLOC SITES, HEAP SUMMARY, START/END THREAD,
                // CPU SAMPLES, CONTROL SETTINGS: nothing to keep.
                0x03 | 0x06 | 0x07 | 0x0A | 0x0B | 0x0D | 0x0E => {
                    self.input.skip(len, "the rest of a record")?
                }
                other => {
                    if !self.warned_tags.contains(&other) {
                        self.warned_tags.push(other);
                        v.warning(format!(
                            "unknown record tag 0x{other:02X} at byte {start}, skipped by its length"
                        ));
                    }
                    self.input.skip(len, "the rest of an unknown record")?;
                }
            }
            let read = self.input.offset() - body;
            if read != len {
                return Err(ParseError {
                    offset: body,
                    expected: format!(
                        "a record of tag 0x{tag:02X} {len} bytes long, but its content took {read}"
                    ),
                });
            }
        }
        Ok(())
    }

    /// A heap dump record or segment: parsed now, or handed to the visitor.
    fn heap_dump(&mut self, v: &mut impl Visitor, at: u64, len: u64) -> Result<(), ParseError> {
        if v.heap_segment(at, len) {
            return self.input.skip(len, "the rest of a heap dump segment");
        }
        self.sub_records(v, len)
    }

    fn sub_records(&mut self, v: &mut impl Visitor, len: u64) -> Result<(), ParseError> {
        let id = self.id;
        let end = self.input.offset() + len;
        while self.input.offset() < end {
            let at = self.input.offset();
            let sub = self.input.u8("a heap dump sub-record tag")?;
            match sub {
                0xFF => self.root(v, RootKind::Unknown, 0)?,
                0x01 => {
                    let object = self.input.id(id, "a JNI global root")?;
                    self.input.id(id, "a JNI global reference id")?;
                    v.root(RootKind::JniGlobal, object, &[]);
                }
                0x02 => self.root(v, RootKind::JniLocal, 2)?,
                0x03 => self.root(v, RootKind::JavaFrame, 2)?,
                0x04 => self.root(v, RootKind::NativeStack, 1)?,
                0x05 => self.root(v, RootKind::StickyClass, 0)?,
                0x06 => self.root(v, RootKind::ThreadBlock, 1)?,
                0x07 => self.root(v, RootKind::MonitorUsed, 0)?,
                0x08 => self.root(v, RootKind::ThreadObject, 2)?,
                0x20 => {
                    let class = self.class_dump()?;
                    v.class_dump(class);
                }
                0x21 => {
                    let object = self.input.id(id, "an instance id")?;
                    self.input.u32("a stack trace serial")?;
                    let class_id = self.input.id(id, "an instance's class id")?;
                    let n = self.input.u32("an instance's field byte count")? as usize;
                    let fields = self.input.bytes(n, "an instance's field values")?;
                    v.instance(at, object, class_id, fields);
                }
                0x22 => self.object_array(v, at)?,
                0x23 => self.primitive_array(v, at)?,
                other => {
                    v.warning(format!(
                        "unknown heap dump sub-record tag 0x{other:02X} at byte {at}: the rest of its segment ({} bytes) is skipped",
                        end - self.input.offset()
                    ));
                    let rest = end - self.input.offset();
                    self.input.skip(rest, "the rest of a heap dump segment")?;
                    self.skipped_data = true;
                    return Ok(());
                }
            }
            if self.input.offset() > end {
                return Err(ParseError {
                    offset: at,
                    expected: format!("a sub-record inside its segment, which ends at byte {end}"),
                });
            }
        }
        Ok(())
    }

    /// An object array starting at `at`, its elements handed over a chunk
    /// at a time.
    #[inline]
    fn object_array(&mut self, v: &mut impl Visitor, at: u64) -> Result<(), ParseError> {
        let id = self.id;
        let object = self.input.id(id, "an object array id")?;
        self.input.u32("a stack trace serial")?;
        let length = self.input.u32("an object array's length")?;
        let class_id = self.input.id(id, "an object array's class id")?;
        v.object_array(at, object, class_id, length);
        let mut left = u64::from(length) * u64::from(id);
        while left > 0 {
            let n = left.min(ELEMENT_CHUNK as u64) as usize;
            let ids = match self.input.bytes(n, "an object array's elements") {
                Ok(ids) => ids,
                Err(e) => {
                    // Counted at the elements there are.
                    let done = u64::from(length) * u64::from(id) - left;
                    let present = (done + self.input.left() as u64) / u64::from(id);
                    v.array_cut_short(present as u32);
                    return Err(e);
                }
            };
            v.object_array_elements(ids);
            left -= n as u64;
        }
        Ok(())
    }

    /// A primitive array starting at `at`; its elements are read only when
    /// the visitor wants them.
    #[inline]
    fn primitive_array(&mut self, v: &mut impl Visitor, at: u64) -> Result<(), ParseError> {
        let id = self.id;
        let object = self.input.id(id, "a primitive array id")?;
        self.input.u32("a stack trace serial")?;
        let length = self.input.u32("a primitive array's length")?;
        let element_type = self.input.u8("a primitive array's element type")?;
        let size = basic::dump_size(element_type, id)
            .filter(|_| element_type != basic::OBJECT)
            .ok_or_else(|| ParseError {
                offset: self.input.offset() - 1,
                expected: format!("a primitive element type (4 to 11), found {element_type}"),
            })?;
        let bytes = u64::from(length) * size as u64;
        let start = self.input.offset();
        let read = if bytes as usize <= MAX_WHOLE && v.wants_array_content(object) {
            match self
                .input
                .bytes(bytes as usize, "a primitive array's elements")
            {
                Ok(data) => {
                    v.primitive_array_content(object, element_type, data);
                    Ok(())
                }
                Err(e) => Err((e, self.input.left() as u64)),
            }
        } else {
            self.input
                .skip(bytes, "a primitive array's elements")
                .map_err(|e| (e, self.input.offset() - start))
        };
        match read {
            Ok(()) => {
                v.primitive_array(at, object, element_type, length);
                Ok(())
            }
            Err((e, present)) => {
                // Counted at the elements there are.
                let present = (present / size as u64) as u32;
                v.primitive_array(at, object, element_type, present);
                Err(e)
            }
        }
    }

    /// A root: its object id and `extra` u32s (thread serial first).
    fn root(
        &mut self,
        v: &mut impl Visitor,
        kind: RootKind,
        extra: usize,
    ) -> Result<(), ParseError> {
        let object = self.input.id(self.id, "a root's object id")?;
        let mut info = [0u32; 2];
        for value in info.iter_mut().take(extra) {
            *value = self.input.u32("a root's thread serial or frame number")?;
        }
        v.root(kind, object, &info[..extra]);
        Ok(())
    }

    fn class_dump(&mut self) -> Result<ClassDump, ParseError> {
        let id = self.id;
        let class_id = self.input.id(id, "a class id")?;
        self.input.u32("a stack trace serial")?;
        let super_id = self.input.id(id, "a super class id")?;
        let loader_id = self.input.id(id, "a class loader id")?;
        for what in [
            "a signers id",
            "a protection domain id",
            "a reserved id",
            "a reserved id",
        ] {
            self.input.id(id, what)?;
        }
        let dumped_instance_size = self.input.u32("an instance size")?;
        let constants = self.input.u16("a constant pool size")?;
        for _ in 0..constants {
            self.input.u16("a constant pool index")?;
            let t = self.input.u8("a constant's type")?;
            let size = self.value_size(t)?;
            self.input.skip(size as u64, "a constant's value")?;
        }
        let static_count = self.input.u16("a static field count")?;
        let mut statics = Vec::with_capacity(usize::from(static_count));
        for _ in 0..static_count {
            let name_id = self.input.id(id, "a static field's name id")?;
            let basic_type = self.input.u8("a static field's type")?;
            let size = self.value_size(basic_type)?;
            let bytes = self.input.bytes(size, "a static field's value")?;
            let value = basic::value(bytes);
            statics.push(StaticField {
                name_id,
                basic_type,
                value,
            });
        }
        let field_count = self.input.u16("an instance field count")?;
        let mut fields = Vec::with_capacity(usize::from(field_count));
        for _ in 0..field_count {
            let name_id = self.input.id(id, "a field's name id")?;
            let basic_type = self.input.u8("a field's type")?;
            self.value_size(basic_type)?;
            fields.push(FieldDef {
                name_id,
                basic_type,
            });
        }
        Ok(ClassDump {
            id: class_id,
            super_id,
            loader_id,
            dumped_instance_size,
            statics,
            fields,
        })
    }

    fn value_size(&self, t: u8) -> Result<usize, ParseError> {
        basic::dump_size(t, self.id).ok_or_else(|| ParseError {
            offset: self.input.offset() - 1,
            expected: format!("a basic type (2 or 4 to 11), found {t}"),
        })
    }
}
