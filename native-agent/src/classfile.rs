//! A small streaming class-file rewriter for the two changes the agent makes.
//! Wrapping a method: the original method keeps its bytes, frames and
//! attributes under a new private name (`jvmapm$NAME`); a new method with the
//! original name and descriptor calls the probe's entry code, the original,
//! and the probe's exit code, also when the original throws. Adding a field
//! with an interface whose two methods read and write it (a JDBC statement's
//! SQL text). Everything else in the class is copied as it is, and new
//! constants are appended to the pool, so no existing offset or index moves.
//!
//! Only legal when a class is first loaded (it adds methods). Anything this
//! reader does not understand is a `Refusal`: the caller then hands the
//! original bytes back.

use std::collections::HashMap;
use std::fmt;

/// Why a class is left as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(why.into()))
}

const ACC_PUBLIC: u16 = 0x0001;
const ACC_PRIVATE: u16 = 0x0002;
const ACC_PROTECTED: u16 = 0x0004;
const ACC_STATIC: u16 = 0x0008;
const ACC_SYNCHRONIZED: u16 = 0x0020;
const ACC_BRIDGE: u16 = 0x0040;
const ACC_VARARGS: u16 = 0x0080;
const ACC_TRANSIENT: u16 = 0x0080;
const ACC_NATIVE: u16 = 0x0100;
const ACC_INTERFACE: u16 = 0x0200;
const ACC_ABSTRACT: u16 = 0x0400;
const ACC_SYNTHETIC: u16 = 0x1000;

/// The prefix of a wrapped method's original, renamed.
pub const RENAMED_PREFIX: &str = "jvmapm$";

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        match self.bytes.get(self.at..self.at + n) {
            Some(slice) => {
                self.at += n;
                Ok(slice)
            }
            None => refuse(format!("class file ends early at byte {}", self.at)),
        }
    }
    fn u1(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }
    fn u2(&mut self) -> Result<u16, Refusal> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u4(&mut self) -> Result<u32, Refusal> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Skips a `u2` count of attributes.
    fn skip_attributes(&mut self) -> Result<(), Refusal> {
        for _ in 0..self.u2()? {
            self.u2()?;
            let length = self.u4()? as usize;
            self.take(length)?;
        }
        Ok(())
    }
}

/// A method as it sits in the class file.
#[derive(Clone, Debug)]
pub struct Method {
    /// Byte range of the whole `method_info`.
    start: usize,
    end: usize,
    pub access: u16,
    name_index: u16,
    descriptor_index: u16,
    pub name: String,
    pub descriptor: String,
    /// Each attribute: whether it describes the method to callers and
    /// reflection (and so moves to the wrapper), and its bytes with header.
    attributes: Vec<(bool, std::ops::Range<usize>)>,
}

/// Attributes that say what a method is to callers, frameworks and
/// reflection (annotations, generic signature, parameter names, throws
/// clause): a wrapper takes them over, so `run` still carries its
/// `@Scheduled`, and the renamed original keeps only its code's.
const DESCRIBING_ATTRIBUTES: [&str; 9] = [
    "Exceptions",
    "Signature",
    "Deprecated",
    "MethodParameters",
    "AnnotationDefault",
    "RuntimeVisibleAnnotations",
    "RuntimeInvisibleAnnotations",
    "RuntimeVisibleParameterAnnotations",
    "RuntimeInvisibleParameterAnnotations",
];

impl Method {
    /// Public and not static: a method callers reach through an interface.
    pub fn is_public_instance(&self) -> bool {
        self.access & ACC_PUBLIC != 0 && !self.is_static()
    }

    pub fn is_static(&self) -> bool {
        self.access & ACC_STATIC != 0
    }

    /// Reads one `method_info`; `utf8` names its name, descriptor and
    /// attributes.
    fn read(r: &mut Reader, utf8: &HashMap<u16, String>) -> Result<Method, Refusal> {
        let start = r.at;
        let access = r.u2()?;
        let name_index = r.u2()?;
        let descriptor_index = r.u2()?;
        let mut attributes = Vec::new();
        for _ in 0..r.u2()? {
            let attribute_start = r.at;
            let attribute_name = r.u2()?;
            let length = r.u4()? as usize;
            r.take(length)?;
            let describing = utf8
                .get(&attribute_name)
                .is_some_and(|n| DESCRIBING_ATTRIBUTES.contains(&n.as_str()));
            attributes.push((describing, attribute_start..r.at));
        }
        let name = utf8.get(&name_index);
        let descriptor = utf8.get(&descriptor_index);
        let (Some(name), Some(descriptor)) = (name, descriptor) else {
            return refuse("a method's name or descriptor is not a UTF8 constant");
        };
        Ok(Method {
            start,
            end: r.at,
            access,
            name_index,
            descriptor_index,
            name: name.clone(),
            descriptor: descriptor.clone(),
            attributes,
        })
    }
}

/// A parsed class file: offsets into the original bytes.
pub struct ClassFile<'a> {
    bytes: &'a [u8],
    major: u16,
    pool_count: u16,
    pool_end: usize,
    pub access: u16,
    pub name: String,
    /// Internal names of the interfaces the class declares it implements.
    pub interfaces: Vec<String>,
    interfaces_count_at: usize,
    fields_count_at: usize,
    methods_count_at: usize,
    pub methods: Vec<Method>,
    methods_end: usize,
}

/// Modified UTF-8 as Rust text (names in class files are ASCII in practice;
/// anything else is read lossily, which can only make a name not match).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the parser needs of the constant pool: the text of its UTF8
/// constants and the name index of its class constants, by pool index.
struct PoolNames {
    utf8: HashMap<u16, String>,
    classes: HashMap<u16, u16>,
}

impl PoolNames {
    /// Reads the `pool_count - 1` slots of the constant pool.
    fn read(r: &mut Reader, pool_count: u16) -> Result<PoolNames, Refusal> {
        let mut utf8 = HashMap::new();
        let mut classes = HashMap::new();
        let mut index = 1;
        while index < pool_count {
            let tag = r.u1()?;
            match tag {
                1 => {
                    let length = r.u2()? as usize;
                    utf8.insert(index, text(r.take(length)?));
                }
                7 => {
                    classes.insert(index, r.u2()?);
                }
                8 | 16 | 19 | 20 => {
                    r.u2()?;
                }
                15 => {
                    r.take(3)?;
                }
                3 | 4 | 9 | 10 | 11 | 12 | 17 | 18 => {
                    r.u4()?;
                }
                5 | 6 => {
                    r.take(8)?;
                    index += 1; // longs and doubles take two slots
                }
                other => return refuse(format!("unknown constant pool tag {other}")),
            }
            index += 1;
        }
        Ok(PoolNames { utf8, classes })
    }
}

impl<'a> ClassFile<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<ClassFile<'a>, Refusal> {
        let mut r = Reader { bytes, at: 0 };
        if r.u4()? != 0xCAFE_BABE {
            return refuse("not a class file (bad magic)");
        }
        let _minor = r.u2()?;
        let major = r.u2()?;
        if major < 50 {
            // Before Java 6 there are no StackMapTable frames; such old
            // classes are rare and verified differently: leave them.
            return refuse(format!("class file version {major} is older than Java 6"));
        }
        let pool_count = r.u2()?;
        let PoolNames { utf8, classes } = PoolNames::read(&mut r, pool_count)?;
        let pool_end = r.at;
        let access = r.u2()?;
        let this_class = r.u2()?;
        let _super_class = r.u2()?;
        let class_name = |index: u16| classes.get(&index).and_then(|n| utf8.get(n)).cloned();
        let interfaces_count_at = r.at;
        let mut interfaces = Vec::new();
        for _ in 0..r.u2()? {
            let index = r.u2()?;
            interfaces.push(
                class_name(index)
                    .ok_or_else(|| Refusal("an interface is not a class constant".into()))?,
            );
        }
        let fields_count_at = r.at;
        for _ in 0..r.u2()? {
            r.take(6)?;
            r.skip_attributes()?;
        }
        let methods_count_at = r.at;
        let mut methods = Vec::new();
        for _ in 0..r.u2()? {
            methods.push(Method::read(&mut r, &utf8)?);
        }
        let methods_end = r.at;
        r.skip_attributes()?;
        if r.at != bytes.len() {
            return refuse("bytes after the class file's end");
        }
        let name = class_name(this_class)
            .ok_or_else(|| Refusal("this_class is not a class constant".into()))?;
        Ok(ClassFile {
            bytes,
            major,
            pool_count,
            pool_end,
            access,
            name,
            interfaces,
            interfaces_count_at,
            fields_count_at,
            methods_count_at,
            methods,
            methods_end,
        })
    }

    pub fn is_interface(&self) -> bool {
        self.access & ACC_INTERFACE != 0
    }

    /// Whether `method` can be wrapped at all: it has code, is not a
    /// constructor or initialiser, not a bridge or synthetic method, and the
    /// class is not an interface.
    pub fn wrappable(&self, method: &Method) -> Result<(), Refusal> {
        if self.is_interface() {
            return refuse("an interface");
        }
        if method.access & (ACC_ABSTRACT | ACC_NATIVE) != 0 {
            return refuse(format!("{} has no code", method.name));
        }
        if method.access & (ACC_BRIDGE | ACC_SYNTHETIC) != 0 {
            return refuse(format!("{} is a bridge or synthetic method", method.name));
        }
        if method.name.starts_with('<') {
            return refuse(format!("{} is a constructor or initialiser", method.name));
        }
        if method.name.starts_with(RENAMED_PREFIX) {
            return refuse(format!("{} is already wrapped", method.name));
        }
        Ok(())
    }
}

/// One kind of value on the JVM's stack or in a local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Long,
    Float,
    Double,
    Reference,
    Void,
}

impl Kind {
    fn slots(self) -> u16 {
        match self {
            Kind::Long | Kind::Double => 2,
            Kind::Void => 0,
            _ => 1,
        }
    }
}

/// A parameter or return type of a method descriptor: its kind and, for a
/// reference, the class name a verifier frame names it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    pub kind: Kind,
    pub class: Option<String>,
}

/// Splits a method descriptor into its parameter types and return type.
pub fn parse_descriptor(descriptor: &str) -> Result<(Vec<Type>, Type), Refusal> {
    let bad = || Refusal(format!("bad method descriptor {descriptor:?}"));
    let body = descriptor.strip_prefix('(').ok_or_else(bad)?;
    let (params, ret) = body.split_once(')').ok_or_else(bad)?;
    let mut types = Vec::new();
    let mut rest = params;
    while !rest.is_empty() {
        let (t, after) = one_type(rest).ok_or_else(bad)?;
        types.push(t);
        rest = after;
    }
    let ret = if ret == "V" {
        Type {
            kind: Kind::Void,
            class: None,
        }
    } else {
        match one_type(ret) {
            Some((t, "")) => t,
            _ => return Err(bad()),
        }
    };
    Ok((types, ret))
}

fn one_type(text: &str) -> Option<(Type, &str)> {
    let first = text.chars().next()?;
    let simple = |kind| Some((Type { kind, class: None }, &text[1..]));
    match first {
        'Z' | 'B' | 'C' | 'S' | 'I' => simple(Kind::Int),
        'J' => simple(Kind::Long),
        'F' => simple(Kind::Float),
        'D' => simple(Kind::Double),
        'L' => {
            let end = text.find(';')?;
            Some((
                Type {
                    kind: Kind::Reference,
                    class: Some(text[1..end].to_string()),
                },
                &text[end + 1..],
            ))
        }
        '[' => {
            let dims = text.len() - text.trim_start_matches('[').len();
            let (_, after) = one_type(&text[dims..])?;
            let length = text.len() - after.len();
            Some((
                Type {
                    kind: Kind::Reference,
                    class: Some(text[..length].to_string()),
                },
                after,
            ))
        }
        _ => None,
    }
}

/// Constants appended to a class's pool.
pub struct Pool {
    next: u16,
    bytes: Vec<u8>,
    known: HashMap<(u8, String), u16>,
}

impl Pool {
    fn new(count: u16) -> Pool {
        Pool {
            next: count,
            bytes: Vec::new(),
            known: HashMap::new(),
        }
    }

    fn add(&mut self, tag: u8, key: String, body: &[u8]) -> Result<u16, Refusal> {
        if let Some(&index) = self.known.get(&(tag, key.clone())) {
            return Ok(index);
        }
        let index = self.next;
        if index == u16::MAX {
            return refuse("the constant pool is full");
        }
        self.next += 1;
        self.bytes.push(tag);
        self.bytes.extend_from_slice(body);
        self.known.insert((tag, key), index);
        Ok(index)
    }

    pub fn utf8(&mut self, text: &str) -> Result<u16, Refusal> {
        let length =
            u16::try_from(text.len()).map_err(|_| Refusal("a constant is too long".into()))?;
        let mut body = length.to_be_bytes().to_vec();
        body.extend_from_slice(text.as_bytes());
        self.add(1, text.to_string(), &body)
    }

    pub fn class(&mut self, name: &str) -> Result<u16, Refusal> {
        let name_index = self.utf8(name)?;
        self.add(7, name.to_string(), &name_index.to_be_bytes())
    }

    pub fn integer(&mut self, value: i32) -> Result<u16, Refusal> {
        self.add(3, value.to_string(), &value.to_be_bytes())
    }

    fn member(
        &mut self,
        tag: u8,
        class: &str,
        name: &str,
        descriptor: &str,
    ) -> Result<u16, Refusal> {
        let class_index = self.class(class)?;
        let name_index = self.utf8(name)?;
        let descriptor_index = self.utf8(descriptor)?;
        let nat_key = format!("{name}:{descriptor}");
        let mut nat = name_index.to_be_bytes().to_vec();
        nat.extend_from_slice(&descriptor_index.to_be_bytes());
        let nat_index = self.add(12, nat_key.clone(), &nat)?;
        let mut body = class_index.to_be_bytes().to_vec();
        body.extend_from_slice(&nat_index.to_be_bytes());
        self.add(tag, format!("{class}.{nat_key}"), &body)
    }

    pub fn method(&mut self, class: &str, name: &str, descriptor: &str) -> Result<u16, Refusal> {
        self.member(10, class, name, descriptor)
    }

    pub fn field(&mut self, class: &str, name: &str, descriptor: &str) -> Result<u16, Refusal> {
        self.member(9, class, name, descriptor)
    }
}

/// Bytecode being assembled, with the deepest stack it reaches.
pub struct Code {
    pub bytes: Vec<u8>,
    depth: i32,
    pub max_depth: i32,
}

/// Opcodes used by the wrappers.
mod op {
    pub const ACONST_NULL: u8 = 0x01;
    pub const LCONST_0: u8 = 0x09;
    pub const LDC: u8 = 0x12;
    pub const LDC_W: u8 = 0x13;
    pub const ILOAD: u8 = 0x15;
    pub const LLOAD: u8 = 0x16;
    pub const FLOAD: u8 = 0x17;
    pub const DLOAD: u8 = 0x18;
    pub const ALOAD: u8 = 0x19;
    pub const ISTORE: u8 = 0x36;
    pub const LSTORE: u8 = 0x37;
    pub const FSTORE: u8 = 0x38;
    pub const DSTORE: u8 = 0x39;
    pub const POP: u8 = 0x57;
    pub const ALOAD_0: u8 = 0x2a;
    pub const ALOAD_1: u8 = 0x2b;
    pub const ASTORE: u8 = 0x3a;
    pub const IRETURN: u8 = 0xac;
    pub const LRETURN: u8 = 0xad;
    pub const FRETURN: u8 = 0xae;
    pub const DRETURN: u8 = 0xaf;
    pub const ARETURN: u8 = 0xb0;
    pub const RETURN: u8 = 0xb1;
    pub const GETFIELD: u8 = 0xb4;
    pub const PUTFIELD: u8 = 0xb5;
    pub const INVOKESPECIAL: u8 = 0xb7;
    pub const INVOKESTATIC: u8 = 0xb8;
    pub const ATHROW: u8 = 0xbf;
    pub const CHECKCAST: u8 = 0xc0;
    pub const WIDE: u8 = 0xc4;
}

impl Code {
    fn new() -> Code {
        Code {
            bytes: Vec::new(),
            depth: 0,
            max_depth: 0,
        }
    }

    fn effect(&mut self, change: i32) {
        self.depth += change;
        self.max_depth = self.max_depth.max(self.depth);
    }

    fn local(&mut self, opcode: u8, slot: u16) {
        if slot <= 255 {
            self.bytes.extend_from_slice(&[opcode, slot as u8]);
        } else {
            self.bytes.push(op::WIDE);
            self.bytes.push(opcode);
            self.bytes.extend_from_slice(&slot.to_be_bytes());
        }
    }

    pub fn load(&mut self, kind: Kind, slot: u16) {
        let opcode = match kind {
            Kind::Int => op::ILOAD,
            Kind::Long => op::LLOAD,
            Kind::Float => op::FLOAD,
            Kind::Double => op::DLOAD,
            Kind::Reference | Kind::Void => op::ALOAD,
        };
        self.local(opcode, slot);
        self.effect(kind.slots() as i32);
    }

    pub fn store(&mut self, kind: Kind, slot: u16) {
        let opcode = match kind {
            Kind::Int => op::ISTORE,
            Kind::Long => op::LSTORE,
            Kind::Float => op::FSTORE,
            Kind::Double => op::DSTORE,
            Kind::Reference | Kind::Void => op::ASTORE,
        };
        self.local(opcode, slot);
        self.effect(-(kind.slots() as i32));
    }

    pub fn null(&mut self) {
        self.bytes.push(op::ACONST_NULL);
        self.effect(1);
    }

    /// Drops the reference on top of the stack.
    pub fn pop(&mut self) {
        self.bytes.push(op::POP);
        self.effect(-1);
    }

    /// Pushes the long 0 (a token that stands for nothing).
    pub fn long_zero(&mut self) {
        self.bytes.push(op::LCONST_0);
        self.effect(2);
    }

    /// Pushes a constant (a String or Integer constant of the pool).
    pub fn constant(&mut self, index: u16) {
        if index <= 255 {
            self.bytes.extend_from_slice(&[op::LDC, index as u8]);
        } else {
            self.bytes.push(op::LDC_W);
            self.bytes.extend_from_slice(&index.to_be_bytes());
        }
        self.effect(1);
    }

    /// An invoke of `method` (a pool index) with `descriptor`; `receiver`
    /// when the call takes an object.
    fn invoke(
        &mut self,
        opcode: u8,
        method: u16,
        descriptor: &str,
        receiver: bool,
    ) -> Result<(), Refusal> {
        let (params, ret) = parse_descriptor(descriptor)?;
        let taken: u16 = params.iter().map(|p| p.kind.slots()).sum::<u16>() + u16::from(receiver);
        self.bytes.push(opcode);
        self.bytes.extend_from_slice(&method.to_be_bytes());
        self.effect(-(taken as i32));
        self.effect(ret.kind.slots() as i32);
        Ok(())
    }

    /// Replaces the reference on top of the stack with its field `field`
    /// (a pool index) of `kind`.
    pub fn get_field(&mut self, field: u16, kind: Kind) {
        self.bytes.push(op::GETFIELD);
        self.bytes.extend_from_slice(&field.to_be_bytes());
        self.effect(kind.slots() as i32 - 1);
    }

    /// Checks that the reference on top of the stack is of `class` (a pool
    /// index), so the verifier takes it as one.
    fn check_cast(&mut self, class: u16) {
        self.bytes.push(op::CHECKCAST);
        self.bytes.extend_from_slice(&class.to_be_bytes());
    }

    pub fn invoke_static(&mut self, method: u16, descriptor: &str) -> Result<(), Refusal> {
        self.invoke(op::INVOKESTATIC, method, descriptor, false)
    }

    fn invoke_special(&mut self, method: u16, descriptor: &str) -> Result<(), Refusal> {
        self.invoke(op::INVOKESPECIAL, method, descriptor, true)
    }

    fn give_back(&mut self, kind: Kind) {
        self.bytes.push(match kind {
            Kind::Int => op::IRETURN,
            Kind::Long => op::LRETURN,
            Kind::Float => op::FRETURN,
            Kind::Double => op::DRETURN,
            Kind::Reference => op::ARETURN,
            Kind::Void => op::RETURN,
        });
    }

    fn throw(&mut self) {
        self.bytes.push(op::ATHROW);
        self.effect(-1);
    }
}

/// The locals of a wrapper the probe code may read: `this`, the parameters
/// by position, the entry token, in the normal exit what the original
/// returned, and in the exceptional exit the Throwable.
pub struct Frame {
    receiver: bool,
    pub params: Vec<(Type, u16)>,
    pub token: u16,
    /// The returned value's kind and slot in the normal exit of a method
    /// that returns one; `None` otherwise.
    pub result: Option<(Kind, u16)>,
    /// The Throwable in the exceptional exit; `None` in the normal one.
    pub thrown: Option<u16>,
}

impl Frame {
    /// Loads `this` (of an instance method).
    pub fn load_receiver(&self, code: &mut Code) -> Result<(), Refusal> {
        if !self.receiver {
            return refuse("the probe reads `this` of a static method");
        }
        code.load(Kind::Reference, 0);
        Ok(())
    }

    /// Stores the reference on top of the stack (an Object to the verifier)
    /// into parameter `n` (0-based), cast to the parameter's class.
    pub fn store_param(&self, pool: &mut Pool, code: &mut Code, n: usize) -> Result<(), Refusal> {
        match self.params.get(n) {
            Some((
                Type {
                    kind: Kind::Reference,
                    class: Some(class),
                },
                slot,
            )) => {
                code.check_cast(pool.class(class)?);
                code.store(Kind::Reference, *slot);
                Ok(())
            }
            _ => refuse(format!(
                "the probe replaces parameter {n}, which is no object of this method"
            )),
        }
    }

    /// Loads parameter `n` (0-based).
    pub fn load_param(&self, code: &mut Code, n: usize) -> Result<(), Refusal> {
        match self.params.get(n) {
            Some((t, slot)) => {
                code.load(t.kind, *slot);
                Ok(())
            }
            None => refuse(format!(
                "the probe reads parameter {n}, which this method lacks"
            )),
        }
    }
}

/// What a wrapper does around the original: `enter` leaves the token (a
/// `long`) on the stack; `exit` consumes nothing and leaves nothing.
pub trait Probe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal>;
    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal>;
}

/// Builds the verifier type of one local for a full frame.
fn verification_type(pool: &mut Pool, t: &Type, out: &mut Vec<u8>) -> Result<(), Refusal> {
    match t.kind {
        Kind::Int => out.push(1),
        Kind::Float => out.push(2),
        Kind::Double => out.push(3),
        Kind::Long => out.push(4),
        Kind::Reference => {
            out.push(7);
            let class = t.class.as_deref().unwrap_or("java/lang/Object");
            out.extend_from_slice(&pool.class(class)?.to_be_bytes());
        }
        Kind::Void => {}
    }
    Ok(())
}

/// A private field of `descriptor` type added to a class, with `interface`
/// (an interface of the boot loader's helper) implemented by a getter and a
/// setter of it.
pub struct FieldAccess {
    pub interface: &'static str,
    pub field: &'static str,
    pub descriptor: &'static str,
    pub getter: &'static str,
    pub setter: &'static str,
}

/// Wraps each `(method index, probe)` of `class`, adds `field` when given,
/// and returns the new class file.
pub fn rewrite(
    class: &ClassFile,
    targets: &[(usize, &dyn Probe)],
    field: Option<&FieldAccess>,
) -> Result<Vec<u8>, Refusal> {
    let mut pool = Pool::new(class.pool_count);
    let this = class.name.clone();
    let mut renamed_headers: HashMap<usize, (u16, u16)> = HashMap::new();
    let mut wrappers: Vec<Vec<u8>> = Vec::new();
    for &(index, probe) in targets {
        let method = &class.methods[index];
        class.wrappable(method)?;
        let renamed = format!("{RENAMED_PREFIX}{}", method.name);
        let renamed_index = pool.utf8(&renamed)?;
        let renamed_access = (method.access & !(ACC_PUBLIC | ACC_PROTECTED | ACC_VARARGS))
            | ACC_PRIVATE
            | ACC_SYNTHETIC;
        renamed_headers.insert(index, (renamed_access, renamed_index));
        wrappers.push(wrapper(class, &mut pool, &this, method, &renamed, probe)?);
    }
    let added = match field {
        Some(field) => Some(add_field(class, &mut pool, field, &mut wrappers)?),
        None => None,
    };

    let mut out = Vec::with_capacity(class.bytes.len() + pool.bytes.len() + 512);
    out.extend_from_slice(&class.bytes[..8]);
    out.extend_from_slice(&pool.next.to_be_bytes());
    out.extend_from_slice(&class.bytes[10..class.pool_end]);
    out.extend_from_slice(&pool.bytes);
    match added {
        Some((interface, field_info)) => {
            out.extend_from_slice(&class.bytes[class.pool_end..class.interfaces_count_at]);
            let interfaces = u16::try_from(class.interfaces.len() + 1)
                .map_err(|_| Refusal("too many interfaces".into()))?;
            out.extend_from_slice(&interfaces.to_be_bytes());
            out.extend_from_slice(
                &class.bytes[class.interfaces_count_at + 2..class.fields_count_at],
            );
            out.extend_from_slice(&interface.to_be_bytes());
            let at = class.fields_count_at;
            let fields = u16::from_be_bytes([class.bytes[at], class.bytes[at + 1]])
                .checked_add(1)
                .ok_or_else(|| Refusal("too many fields".into()))?;
            out.extend_from_slice(&fields.to_be_bytes());
            out.extend_from_slice(&class.bytes[at + 2..class.methods_count_at]);
            out.extend_from_slice(&field_info);
        }
        None => out.extend_from_slice(&class.bytes[class.pool_end..class.methods_count_at]),
    }
    let count = class.methods.len() + wrappers.len();
    let count = u16::try_from(count).map_err(|_| Refusal("too many methods".into()))?;
    out.extend_from_slice(&count.to_be_bytes());
    for (index, method) in class.methods.iter().enumerate() {
        let original = &class.bytes[method.start..method.end];
        match renamed_headers.get(&index) {
            Some((access, name)) => {
                out.extend_from_slice(&access.to_be_bytes());
                out.extend_from_slice(&name.to_be_bytes());
                out.extend_from_slice(&method.descriptor_index.to_be_bytes());
                let kept: Vec<_> = method.attributes.iter().filter(|(d, _)| !d).collect();
                out.extend_from_slice(&(kept.len() as u16).to_be_bytes());
                for (_, range) in kept {
                    out.extend_from_slice(&class.bytes[range.clone()]);
                }
            }
            None => out.extend_from_slice(original),
        }
    }
    for wrapper in wrappers {
        out.extend_from_slice(&wrapper);
    }
    out.extend_from_slice(&class.bytes[class.methods_end..]);
    Ok(out)
}

/// Adds `field`'s constants, its getter and setter to `methods`; returns the
/// interface's class constant and the `field_info`.
fn add_field(
    class: &ClassFile,
    pool: &mut Pool,
    field: &FieldAccess,
    methods: &mut Vec<Vec<u8>>,
) -> Result<(u16, Vec<u8>), Refusal> {
    if class.is_interface() {
        return refuse("an interface cannot hold a field");
    }
    let interface = pool.class(field.interface)?;
    let name = pool.utf8(field.field)?;
    let descriptor = pool.utf8(field.descriptor)?;
    let reference = pool.member(9, &class.name, field.field, field.descriptor)?;
    let mut field_info = Vec::new();
    let access = ACC_PRIVATE | ACC_TRANSIENT | ACC_SYNTHETIC;
    for part in [access, name, descriptor, 0] {
        field_info.extend_from_slice(&part.to_be_bytes());
    }
    let [high, low] = reference.to_be_bytes();
    let getter = [op::ALOAD_0, op::GETFIELD, high, low, op::ARETURN];
    let setter = [
        op::ALOAD_0,
        op::ALOAD_1,
        op::PUTFIELD,
        high,
        low,
        op::RETURN,
    ];
    let code_name = pool.utf8("Code")?;
    let accessors = [
        (
            field.getter,
            format!("(){}", field.descriptor),
            &getter[..],
            1u16,
            1u16,
        ),
        (
            field.setter,
            format!("({})V", field.descriptor),
            &setter[..],
            2,
            2,
        ),
    ];
    for (method, signature, code, max_stack, max_locals) in accessors {
        let mut info = Vec::new();
        for part in [
            ACC_PUBLIC | ACC_SYNTHETIC,
            pool.utf8(method)?,
            pool.utf8(&signature)?,
            1,
            code_name,
        ] {
            info.extend_from_slice(&part.to_be_bytes());
        }
        info.extend_from_slice(&(12 + code.len() as u32).to_be_bytes());
        info.extend_from_slice(&max_stack.to_be_bytes());
        info.extend_from_slice(&max_locals.to_be_bytes());
        info.extend_from_slice(&(code.len() as u32).to_be_bytes());
        info.extend_from_slice(code);
        info.extend_from_slice(&[0, 0, 0, 0]); // no exception table, no attributes
        methods.push(info);
    }
    Ok((interface, field_info))
}

/// The body of a wrapper's `StackMapTable`: one full frame at the
/// `handler`, with the receiver, the parameters and the token in the
/// locals and the Throwable on the stack. Nothing else in the wrapper is a
/// branch target.
fn handler_stack_map(
    pool: &mut Pool,
    this: &str,
    frame: &Frame,
    handler: usize,
) -> Result<Vec<u8>, Refusal> {
    let mut stack_map = Vec::new();
    stack_map.extend_from_slice(&1u16.to_be_bytes());
    stack_map.push(255);
    stack_map.extend_from_slice(&(handler as u16).to_be_bytes());
    let mut locals = Vec::new();
    let mut local_count: u16 = 0;
    if frame.receiver {
        verification_type(
            pool,
            &Type {
                kind: Kind::Reference,
                class: Some(this.to_string()),
            },
            &mut locals,
        )?;
        local_count += 1;
    }
    for (p, _) in &frame.params {
        verification_type(pool, p, &mut locals)?;
        local_count += 1;
    }
    verification_type(
        pool,
        &Type {
            kind: Kind::Long,
            class: None,
        },
        &mut locals,
    )?;
    local_count += 1;
    stack_map.extend_from_slice(&local_count.to_be_bytes());
    stack_map.extend_from_slice(&locals);
    stack_map.extend_from_slice(&1u16.to_be_bytes());
    verification_type(
        pool,
        &Type {
            kind: Kind::Reference,
            class: Some("java/lang/Throwable".into()),
        },
        &mut stack_map,
    )?;
    Ok(stack_map)
}

/// The body of a wrapper's `Code` attribute: `code`, with `handler`
/// catching any Throwable thrown in `covered`, and `frames` (the
/// `StackMapTable` name's pool index and its body) when the class file has
/// stack maps.
fn code_attribute(
    code: &Code,
    max_locals: u16,
    covered: std::ops::Range<usize>,
    handler: usize,
    frames: Option<(u16, &[u8])>,
) -> Vec<u8> {
    let mut attribute = Vec::new();
    attribute.extend_from_slice(&(code.max_depth.max(2) as u16 + 2).to_be_bytes());
    attribute.extend_from_slice(&max_locals.to_be_bytes());
    attribute.extend_from_slice(&(code.bytes.len() as u32).to_be_bytes());
    attribute.extend_from_slice(&code.bytes);
    attribute.extend_from_slice(&1u16.to_be_bytes()); // exception table
    attribute.extend_from_slice(&(covered.start as u16).to_be_bytes());
    attribute.extend_from_slice(&(covered.end as u16).to_be_bytes());
    attribute.extend_from_slice(&(handler as u16).to_be_bytes());
    attribute.extend_from_slice(&0u16.to_be_bytes()); // any Throwable
    attribute.extend_from_slice(&u16::from(frames.is_some()).to_be_bytes());
    if let Some((stack_map_name, stack_map)) = frames {
        attribute.extend_from_slice(&stack_map_name.to_be_bytes());
        attribute.extend_from_slice(&(stack_map.len() as u32).to_be_bytes());
        attribute.extend_from_slice(stack_map);
    }
    attribute
}

/// The `method_info` of the wrapper for `method`.
fn wrapper(
    class: &ClassFile,
    pool: &mut Pool,
    this: &str,
    method: &Method,
    renamed: &str,
    probe: &dyn Probe,
) -> Result<Vec<u8>, Refusal> {
    let (params, ret) = parse_descriptor(&method.descriptor)?;
    let receiver = method.access & ACC_STATIC == 0;
    let mut slot: u16 = u16::from(receiver);
    let mut located = Vec::new();
    for p in &params {
        located.push((p.clone(), slot));
        slot += p.kind.slots();
    }
    let token = slot;
    let result = token + 2;
    let thrown = result + ret.kind.slots().max(1);
    let max_locals = thrown + 1;
    let mut frame = Frame {
        receiver,
        params: located,
        token,
        result: (ret.kind != Kind::Void).then_some((ret.kind, result)),
        thrown: None,
    };

    let mut code = Code::new();
    probe.enter(pool, &mut code, &frame)?;
    code.store(Kind::Long, token);
    let try_start = code.bytes.len();
    if receiver {
        code.load(Kind::Reference, 0);
    }
    for (p, s) in &frame.params {
        code.load(p.kind, *s);
    }
    let original = pool.method(this, renamed, &method.descriptor)?;
    if receiver {
        code.invoke_special(original, &method.descriptor)?;
    } else {
        code.invoke_static(original, &method.descriptor)?;
    }
    let try_end = code.bytes.len();
    if ret.kind != Kind::Void {
        code.store(ret.kind, result);
    }
    probe.exit(pool, &mut code, &frame)?;
    if ret.kind != Kind::Void {
        code.load(ret.kind, result);
    }
    code.give_back(ret.kind);
    let handler = code.bytes.len();
    // The handler starts with the Throwable on the stack.
    code.depth = 1;
    code.max_depth = code.max_depth.max(1);
    code.store(Kind::Reference, thrown);
    frame.result = None;
    frame.thrown = Some(thrown);
    probe.exit(pool, &mut code, &frame)?;
    code.load(Kind::Reference, thrown);
    code.throw();
    if code.bytes.len() > 65_535 {
        return refuse("wrapper code too long");
    }

    let stack_map = handler_stack_map(pool, this, &frame, handler)?;
    let code_name = pool.utf8("Code")?;
    let stack_map_name = pool.utf8("StackMapTable")?;
    // Class files before version 50 carry no stack map.
    let frames = (class.major >= 50).then_some((stack_map_name, stack_map.as_slice()));
    let attribute = code_attribute(&code, max_locals, try_start..try_end, handler, frames);

    let mut info = Vec::new();
    let access = method.access & !ACC_SYNCHRONIZED;
    info.extend_from_slice(&access.to_be_bytes());
    info.extend_from_slice(&method.name_index.to_be_bytes());
    info.extend_from_slice(&method.descriptor_index.to_be_bytes());
    let moved: Vec<_> = method.attributes.iter().filter(|(d, _)| *d).collect();
    info.extend_from_slice(&(1 + moved.len() as u16).to_be_bytes());
    info.extend_from_slice(&code_name.to_be_bytes());
    info.extend_from_slice(&(attribute.len() as u32).to_be_bytes());
    info.extend_from_slice(&attribute);
    for (_, range) in moved {
        info.extend_from_slice(&class.bytes[range.clone()]);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_split_into_kinds_and_classes() {
        let (params, ret) =
            parse_descriptor("(IJLjava/lang/String;[[DZ)[Ljava/lang/Object;").unwrap();
        let kinds: Vec<Kind> = params.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Int,
                Kind::Long,
                Kind::Reference,
                Kind::Reference,
                Kind::Int
            ]
        );
        assert_eq!(params[2].class.as_deref(), Some("java/lang/String"));
        assert_eq!(params[3].class.as_deref(), Some("[[D"));
        assert_eq!(ret.class.as_deref(), Some("[Ljava/lang/Object;"));
        assert_eq!(parse_descriptor("()V").unwrap().1.kind, Kind::Void);
        assert!(parse_descriptor("(Q)V").is_err());
        assert!(parse_descriptor("(Ljava/lang/String").is_err());
    }

    /// Real javac output: the agent's own helper classes.
    const REAL_CLASSES: [&[u8]; 18] = [
        include_bytes!("../java/classes/Hooks.class"),
        include_bytes!("../java/classes/Hooks$1.class"),
        include_bytes!("../java/classes/Hooks$State.class"),
        include_bytes!("../java/classes/Hooks$Transaction.class"),
        include_bytes!("../java/classes/Hooks$Snapshot.class"),
        include_bytes!("../java/classes/Hooks$Call.class"),
        include_bytes!("../java/classes/Hooks$Carrier.class"),
        include_bytes!("../java/classes/Hooks$Task.class"),
        include_bytes!("../java/classes/Hooks$SqlText.class"),
        include_bytes!("../java/classes/Hooks$Http.class"),
        include_bytes!("../java/classes/Hooks$Http$1.class"),
        include_bytes!("../java/classes/Hooks$Http$2.class"),
        include_bytes!("../java/classes/Hooks$Servlet.class"),
        include_bytes!("../java/classes/Hooks$Exchange.class"),
        include_bytes!("../java/classes/Hooks$Client.class"),
        include_bytes!("../java/classes/Hooks$Client$Readers.class"),
        include_bytes!("../java/classes/Hooks$Copying.class"),
        include_bytes!("../java/classes/Hooks$Apache.class"),
    ];

    struct Nothing;

    impl Probe for Nothing {
        fn enter(&self, pool: &mut Pool, code: &mut Code, _: &Frame) -> Result<(), Refusal> {
            let index = pool.integer(0)?;
            code.constant(index);
            code.bytes.push(0x85); // i2l: the token is a long
            Ok(())
        }
        fn exit(&self, _: &mut Pool, _: &mut Code, _: &Frame) -> Result<(), Refusal> {
            Ok(())
        }
    }

    #[test]
    fn wrapping_every_method_of_real_classes_gives_parsable_classes() {
        let mut wrapped_classes = 0;
        for bytes in REAL_CLASSES {
            let class = ClassFile::parse(bytes).unwrap();
            let targets: Vec<(usize, &dyn Probe)> = (0..class.methods.len())
                .filter(|&i| class.wrappable(&class.methods[i]).is_ok())
                .map(|i| (i, &Nothing as &dyn Probe))
                .collect();
            if targets.is_empty() {
                continue; // an interface, or a class with only a constructor
            }
            wrapped_classes += 1;
            let wrapped = rewrite(&class, &targets, None).unwrap();
            let again = ClassFile::parse(&wrapped).unwrap();
            assert_eq!(again.name, class.name);
            assert_eq!(again.methods.len(), class.methods.len() + targets.len());
            for (i, _) in &targets {
                let name = &class.methods[*i].name;
                let renamed = format!("{RENAMED_PREFIX}{name}");
                assert!(again.methods.iter().any(|m| m.name == renamed));
                // The renamed original is private and synthetic: not wrappable again.
                let original = again.methods.iter().find(|m| m.name == renamed).unwrap();
                assert!(again.wrappable(original).is_err());
            }
        }
        assert!(wrapped_classes >= 5, "{wrapped_classes} classes wrapped");
    }

    #[test]
    fn an_added_field_comes_with_its_interface_and_accessors() {
        const TEXT: FieldAccess = FieldAccess {
            interface: "example/Hooks$Text",
            field: "example$text",
            descriptor: "Ljava/lang/String;",
            getter: "example$text",
            setter: "example$setText",
        };
        for bytes in REAL_CLASSES {
            let class = ClassFile::parse(bytes).unwrap();
            if class.is_interface() {
                assert!(rewrite(&class, &[], Some(&TEXT)).is_err());
                continue;
            }
            let again = rewrite(&class, &[], Some(&TEXT)).unwrap();
            let again = ClassFile::parse(&again).unwrap();
            assert_eq!(
                again.interfaces.last().map(String::as_str),
                Some(TEXT.interface)
            );
            assert_eq!(again.interfaces.len(), class.interfaces.len() + 1);
            let signatures: Vec<(&str, &str)> = again
                .methods
                .iter()
                .map(|m| (m.name.as_str(), m.descriptor.as_str()))
                .collect();
            assert!(signatures.contains(&(TEXT.getter, "()Ljava/lang/String;")));
            assert!(signatures.contains(&(TEXT.setter, "(Ljava/lang/String;)V")));
            assert_eq!(again.methods.len(), class.methods.len() + 2);
            let fields = |c: &ClassFile| {
                u16::from_be_bytes([c.bytes[c.fields_count_at], c.bytes[c.fields_count_at + 1]])
            };
            assert_eq!(fields(&again), fields(&class) + 1);
        }
    }

    #[test]
    fn every_cut_and_many_corruptions_of_a_real_class_are_refused_or_parsed_never_panicked_on() {
        for bytes in REAL_CLASSES {
            for end in 0..bytes.len() {
                assert!(ClassFile::parse(&bytes[..end]).is_err(), "cut at {end}");
            }
            // Deterministic pseudo-random single-byte corruptions.
            let mut rng = jvmapm_contract::random::Rng::seeded(0x2545_F491_4F6C_DD1D);
            for _ in 0..2_000 {
                let mut corrupt = bytes.to_vec();
                let at = rng.below(corrupt.len() as u64) as usize;
                corrupt[at] = rng.next_u64() as u8;
                if let Ok(class) = ClassFile::parse(&corrupt) {
                    let targets: Vec<(usize, &dyn Probe)> = (0..class.methods.len())
                        .filter(|&i| class.wrappable(&class.methods[i]).is_ok())
                        .map(|i| (i, &Nothing as &dyn Probe))
                        .collect();
                    let _ = rewrite(&class, &targets, None);
                }
            }
        }
    }

    #[test]
    fn garbage_and_truncated_classes_are_refused_not_panicked_on() {
        assert!(ClassFile::parse(b"").is_err());
        assert!(ClassFile::parse(b"\xca\xfe\xba\xbe\0\0\0\x34\0").is_err());
        let mut bytes = b"\xca\xfe\xba\xbe\0\0\0\x34\x00\x02\x63".to_vec();
        bytes.extend_from_slice(&[0; 20]);
        assert!(ClassFile::parse(&bytes).is_err());
    }
}
