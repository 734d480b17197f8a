//! Thin safe wrappers over the JNI functions the agent calls, returning
//! `Result`. The ABI (types, the function table, the invocation interface)
//! is the `jni-sys` crate's, so each call goes through a typed, named field
//! of `JNINativeInterface_`, never a hand-numbered slot. The wrappers are
//! our own rather than the `jni` crate's high-level API because the agent
//! calls some of them on application threads (`Hooks` natives reading a
//! Java string): they are one indirect call each, with no reference-type
//! bookkeeping, no allocation and no lookups by name. Every call that can run
//! Java code is followed by an exception check, so a pending exception is
//! cleared and reported, never left behind.

use std::ffi::{c_char, c_void, CStr};
use std::mem::MaybeUninit;

use jni_sys::{JNINativeInterface__1_6, JNINativeMethod, JavaVMAttachArgs, JNI_VERSION_1_8};
pub use jni_sys::{JNI_ERR, JNI_OK};

/// A Java `int`, and the status JNI and the invocation interface return.
pub type JInt = jni_sys::jint;
/// `JavaVM`: what a `*mut JavaVm` the JVM hands the agent points to.
pub type JavaVm = jni_sys::JavaVM;
/// `JNIEnv`: what a thread's `*mut RawJniEnv` points to.
pub type RawJniEnv = jni_sys::JNIEnv;
/// A local or global reference to a Java object or class (`jobject`).
pub type JObject = jni_sys::jobject;
/// An argument or result of a Java call (`jvalue`).
pub type JValue = jni_sys::jvalue;

/// The JVM's `JavaVM` pointer, held by the agent's own threads: it stays
/// valid, for every thread, for the JVM's life.
#[derive(Clone, Copy)]
pub struct SharedVm(*mut JavaVm);

impl SharedVm {
    pub fn new(vm: *mut JavaVm) -> SharedVm {
        SharedVm(vm)
    }

    pub fn get(self) -> *mut JavaVm {
        self.0
    }
}

// SAFETY: the JavaVM is the one process-wide invocation interface, and its
// functions (GetEnv, AttachCurrentThread...) are made to be called from
// any thread.
unsafe impl Send for SharedVm {}
// SAFETY: as for `Send`: sharing one only copies the pointer.
unsafe impl Sync for SharedVm {}

/// `GetEnv`: the environment of `version` (a JNI or a JVMTI version) for
/// the calling thread, which the JVM runs already.
///
/// # Safety
/// `vm` must be the JVM's `JavaVM` pointer.
pub unsafe fn get_env(vm: *mut JavaVm, version: JInt) -> Result<*mut c_void, JInt> {
    let mut env: *mut c_void = std::ptr::null_mut();
    // SAFETY: the caller passes the JVM's JavaVM, whose invocation table
    // has GetEnv (JNI 1.2); `env` is writable.
    let result = unsafe { ((**vm).v1_4.GetEnv)(vm, &mut env, version) };
    if result != JNI_OK || env.is_null() {
        return Err(result);
    }
    Ok(env)
}

/// Longest string (in modified UTF-8 bytes) [`Jni::string_bytes`] copies
/// onto the stack.
pub const SHORT_STRING: usize = 512;

/// What went wrong in a JNI call, naming the class or method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JniError(pub String);

impl std::fmt::Display for JniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type JniResult<T> = Result<T, JniError>;

/// A Java method looked up once and called many times; `what` names it in errors.
#[derive(Clone, Copy)]
pub struct Method {
    id: jni_sys::jmethodID,
    what: &'static str,
}

// SAFETY: method ids stay valid for as long as their class is loaded, on any
// thread; the classes looked up here are JDK classes that are never unloaded.
unsafe impl Send for Method {}

/// A global reference, valid on every thread until deleted (never, here: the
/// agent keeps these for the JVM's life).
#[derive(Clone, Copy)]
pub struct Global(JObject);

// SAFETY: a global reference may be used from any thread attached to the
// JVM, and the handle is only a pointer-sized value.
unsafe impl Send for Global {}
// SAFETY: as for `Send`: sharing one only copies the handle.
unsafe impl Sync for Global {}

impl Global {
    pub fn get(self) -> JObject {
        self.0
    }
}

/// A weak global reference: it does not keep its object alive, and is
/// valid on every thread until deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weak(JObject);

// SAFETY: as for `Global`.
unsafe impl Send for Weak {}

/// The JNI environment of the current thread. Not `Send`: a `JNIEnv` belongs
/// to one thread.
pub struct Jni {
    env: *mut RawJniEnv,
}

impl Jni {
    /// Wraps the `JNIEnv` the JVM passed to a callback.
    ///
    /// # Safety
    /// `env` must be the current thread's valid `JNIEnv`.
    pub unsafe fn from_raw(env: *mut RawJniEnv) -> Jni {
        Jni { env }
    }

    /// The environment of the calling thread, which the JVM runs already
    /// (the attach listener thread in `Agent_OnAttach`).
    ///
    /// # Safety
    /// `vm` must be the JVM's `JavaVM` pointer.
    pub unsafe fn current(vm: *mut JavaVm) -> Result<Jni, JInt> {
        // SAFETY: the caller passes the JVM's JavaVM.
        unsafe { get_env(vm, JNI_VERSION_1_8) }.map(|env| Jni { env: env.cast() })
    }

    /// Attaches the current native thread to the JVM as a daemon thread named
    /// `name` (so it never holds the JVM's exit) and returns its environment.
    ///
    /// # Safety
    /// `vm` must be the JVM's `JavaVM` pointer and the JVM must be live.
    pub unsafe fn attach_daemon(vm: *mut JavaVm, name: &CStr) -> Result<Jni, JInt> {
        let mut args = JavaVMAttachArgs {
            version: JNI_VERSION_1_8,
            // The JVM only reads the name (jni.h predates `const`).
            name: name.as_ptr().cast_mut(),
            group: std::ptr::null_mut(),
        };
        let mut env: *mut c_void = std::ptr::null_mut();
        // SAFETY: the caller passes the live JVM's JavaVM, whose invocation
        // table has AttachCurrentThreadAsDaemon (JNI 1.4); `env` is writable
        // and `args` a JavaVMAttachArgs that outlives the call.
        let result = unsafe {
            ((**vm).v1_4.AttachCurrentThreadAsDaemon)(
                vm,
                &mut env,
                (&mut args as *mut JavaVMAttachArgs).cast(),
            )
        };
        if result != JNI_OK || env.is_null() {
            return Err(result);
        }
        Ok(Jni { env: env.cast() })
    }

    /// The function table: as of JNI 1.6 it holds every function called
    /// here, and the JVMs the agent runs in give at least JNI 1.8.
    fn functions(&self) -> &JNINativeInterface__1_6 {
        // SAFETY: `env` is this thread's live JNIEnv (see `from_raw`), so it
        // points to the JVM's function table, which lives as long as the JVM
        // and has every JNI 1.6 entry.
        unsafe { &(**self.env).v1_6 }
    }

    /// Clears a pending exception and reports it as an error about `what`.
    fn check(&self, what: &str) -> JniResult<()> {
        let functions = self.functions();
        // SAFETY: ExceptionCheck and ExceptionClear may be called at any
        // time on the thread's own env, pending exception or not.
        unsafe {
            if !(functions.ExceptionCheck)(self.env) {
                return Ok(());
            }
            (functions.ExceptionClear)(self.env);
        }
        Err(JniError(format!("{what} threw an exception")))
    }

    fn non_null<T>(&self, object: *mut T, what: &str) -> JniResult<*mut T> {
        self.check(what)?;
        if object.is_null() {
            return Err(JniError(format!("{what} returned null")));
        }
        Ok(object)
    }

    /// A class by its internal name (`java/lang/management/ManagementFactory`),
    /// as a global reference.
    pub fn class(&self, name: &'static CStr) -> JniResult<Global> {
        // SAFETY: `name` is NUL-terminated; an unknown class is a null
        // result and a pending exception, which `non_null` handles.
        let local = unsafe { (self.functions().FindClass)(self.env, name.as_ptr()) };
        let what = name.to_str().unwrap_or("a class");
        let local = self.non_null(local, what)?;
        self.global(local, what)
    }

    /// Defines class `name` from `bytes` in the boot loader, as a global reference.
    pub fn define_boot_class(&self, name: &CStr, bytes: &[u8]) -> JniResult<Global> {
        // SAFETY: `name` is NUL-terminated and `bytes` readable for its
        // length; a null loader is the boot loader. A bad class is a null
        // result and a pending exception, which `non_null` handles.
        let local = unsafe {
            (self.functions().DefineClass)(
                self.env,
                name.as_ptr(),
                std::ptr::null_mut(),
                bytes.as_ptr().cast(),
                bytes.len() as JInt,
            )
        };
        let what = name.to_string_lossy();
        let local = self.non_null(local, &what)?;
        self.global(local, &what)
    }

    /// Binds native methods of `class`: (name, signature, function).
    pub fn register_natives(
        &self,
        class: Global,
        natives: &[(&CStr, &CStr, *mut c_void)],
    ) -> JniResult<()> {
        // The JVM only reads the names (jni.h predates `const`).
        let table: Vec<JNINativeMethod> = natives
            .iter()
            .map(|(name, signature, function)| JNINativeMethod {
                name: name.as_ptr().cast_mut(),
                signature: signature.as_ptr().cast_mut(),
                fnPtr: *function,
            })
            .collect();
        // SAFETY: `class` is a live global reference to a class and the
        // table's strings and entries outlive the call; a function whose
        // signature does not match is the caller's promise (see `natives()`
        // of gc and transaction).
        let result = unsafe {
            (self.functions().RegisterNatives)(
                self.env,
                class.0,
                table.as_ptr(),
                table.len() as JInt,
            )
        };
        self.check("RegisterNatives")?;
        if result != JNI_OK {
            return Err(JniError(format!("RegisterNatives returned {result}")));
        }
        Ok(())
    }

    /// A global reference to `object`.
    pub fn global(&self, object: JObject, what: &str) -> JniResult<Global> {
        // SAFETY: `object` is a live reference of this thread (callers pass
        // one they just got from the JVM).
        let global = unsafe { (self.functions().NewGlobalRef)(self.env, object) };
        if global.is_null() {
            return Err(JniError(format!("no global reference for {what}")));
        }
        Ok(Global(global))
    }

    /// A weak global reference to `object` (a live reference of this thread).
    pub fn weak(&self, object: JObject, what: &str) -> JniResult<Weak> {
        // SAFETY: `object` is a live reference of this thread.
        let weak = unsafe { (self.functions().NewWeakGlobalRef)(self.env, object) };
        if weak.is_null() {
            return Err(JniError(format!("no weak reference for {what}")));
        }
        Ok(Weak(weak))
    }

    /// Deletes a weak reference; it must not be used afterwards.
    pub fn delete_weak(&self, weak: Weak) {
        // SAFETY: `weak` came from `weak` and, by the caller's contract,
        // is deleted once.
        unsafe { (self.functions().DeleteWeakGlobalRef)(self.env, weak.0) };
    }

    /// A local reference to the object of `weak`; `None` once it is collected.
    pub fn local_of(&self, weak: Weak) -> Option<JObject> {
        // SAFETY: `weak` is a live weak reference; NewLocalRef answers null
        // for one whose object was collected.
        let local = unsafe { (self.functions().NewLocalRef)(self.env, weak.0) };
        (!local.is_null()).then_some(local)
    }

    /// Frees a local reference of this thread before its frame ends.
    pub fn delete_local(&self, object: JObject) {
        // SAFETY: `object` is a local reference of this thread, not used
        // afterwards (the callers' contract).
        unsafe { (self.functions().DeleteLocalRef)(self.env, object) };
    }

    /// An instance method of `class` (`what` names it in errors, e.g.
    /// `MemoryUsage.getUsed`).
    pub fn method(
        &self,
        class: Global,
        name: &CStr,
        signature: &CStr,
        what: &'static str,
    ) -> JniResult<Method> {
        // SAFETY: `class` is a live global reference to a class and both
        // strings are NUL-terminated; no such method is a null result and a
        // pending exception, which `non_null` handles.
        let id = unsafe {
            (self.functions().GetMethodID)(self.env, class.0, name.as_ptr(), signature.as_ptr())
        };
        let id = self.non_null(id, what)?;
        Ok(Method { id, what })
    }

    /// A static method of `class`.
    pub fn static_method(
        &self,
        class: Global,
        name: &CStr,
        signature: &CStr,
        what: &'static str,
    ) -> JniResult<Method> {
        // SAFETY: as in `method`.
        let id = unsafe {
            (self.functions().GetStaticMethodID)(
                self.env,
                class.0,
                name.as_ptr(),
                signature.as_ptr(),
            )
        };
        let id = self.non_null(id, what)?;
        Ok(Method { id, what })
    }

    /// Calls an instance method returning an object; null is an error.
    pub fn call_object(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<JObject> {
        // SAFETY: `m` is an instance method of `object`'s class returning an
        // object, and `args` match its parameters (the caller looked both
        // up together); the arguments outlive the call.
        let result =
            unsafe { (self.functions().CallObjectMethodA)(self.env, object, m.id, args.as_ptr()) };
        self.non_null(result, m.what)
    }

    pub fn call_int(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<i32> {
        // SAFETY: as in `call_object`, for a method returning an int.
        let result =
            unsafe { (self.functions().CallIntMethodA)(self.env, object, m.id, args.as_ptr()) };
        self.check(m.what)?;
        Ok(result)
    }

    pub fn call_long(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<i64> {
        // SAFETY: as in `call_object`, for a method returning a long.
        let result =
            unsafe { (self.functions().CallLongMethodA)(self.env, object, m.id, args.as_ptr()) };
        self.check(m.what)?;
        Ok(result)
    }

    pub fn call_void(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<()> {
        // SAFETY: as in `call_object`, for a method returning nothing.
        unsafe { (self.functions().CallVoidMethodA)(self.env, object, m.id, args.as_ptr()) };
        self.check(m.what)
    }

    /// Calls a static method returning an object; null is an error.
    pub fn call_static_object(
        &self,
        class: Global,
        m: Method,
        args: &[JValue],
    ) -> JniResult<JObject> {
        // SAFETY: `m` is a static method of `class` returning an object, and
        // `args` match its parameters; the arguments outlive the call.
        let result = unsafe {
            (self.functions().CallStaticObjectMethodA)(self.env, class.0, m.id, args.as_ptr())
        };
        self.non_null(result, m.what)
    }

    pub fn call_static_int(&self, class: Global, m: Method, args: &[JValue]) -> JniResult<i32> {
        // SAFETY: as in `call_static_object`, for a method returning an int.
        let result = unsafe {
            (self.functions().CallStaticIntMethodA)(self.env, class.0, m.id, args.as_ptr())
        };
        self.check(m.what)?;
        Ok(result)
    }

    /// The text of a Java string (modified UTF-8, read lossily).
    pub fn string(&self, string: JObject) -> JniResult<String> {
        self.string_bytes(string, |bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    /// Hands the modified UTF-8 bytes of a Java string to `read`. Strings of
    /// up to [`SHORT_STRING`] bytes are copied onto the stack, so the JVM
    /// allocates nothing for them.
    pub fn string_bytes<R>(&self, string: JObject, read: impl FnOnce(&[u8]) -> R) -> JniResult<R> {
        let functions = self.functions();
        // SAFETY: `string` is a live reference to a java.lang.String (the
        // callers' contract, as for every wrapper here).
        let bytes = unsafe { (functions.GetStringUTFLength)(self.env, string) };
        if let Ok(bytes @ 0..=SHORT_STRING) = usize::try_from(bytes) {
            let mut buf = [0u8; SHORT_STRING + 1];
            // SAFETY: the region of all the string's chars is its
            // GetStringUTFLength bytes and a NUL, which `buf` has room for.
            unsafe {
                let chars = (functions.GetStringLength)(self.env, string);
                (functions.GetStringUTFRegion)(self.env, string, 0, chars, buf.as_mut_ptr().cast());
            }
            self.check("GetStringUTFRegion")?;
            return Ok(read(&buf[..bytes]));
        }
        // SAFETY: a null `isCopy` is allowed; the chars are NUL-terminated
        // modified UTF-8, read before they are handed back just below.
        unsafe {
            let chars = (functions.GetStringUTFChars)(self.env, string, std::ptr::null_mut());
            if chars.is_null() {
                self.check("GetStringUTFChars")?;
                return Err(JniError("GetStringUTFChars returned null".into()));
            }
            let result = read(CStr::from_ptr(chars).to_bytes());
            (functions.ReleaseStringUTFChars)(self.env, string, chars);
            Ok(result)
        }
    }

    /// Copies the modified UTF-8 bytes of a Java string into `buf` and
    /// returns how many there are: the whole string when it fits in
    /// `buf.len() - 1` bytes (the JVM writes a NUL after them), else a
    /// prefix of whole characters. Nothing is allocated.
    pub fn string_prefix(&self, string: JObject, buf: &mut [MaybeUninit<u8>]) -> JniResult<usize> {
        let Some(room) = buf.len().checked_sub(1) else {
            return Ok(0);
        };
        let functions = self.functions();
        // SAFETY: `string` is a live reference to a java.lang.String.
        let (bytes, chars) = unsafe {
            (
                (functions.GetStringUTFLength)(self.env, string),
                (functions.GetStringLength)(self.env, string),
            )
        };
        let bytes = usize::try_from(bytes).unwrap_or(0);
        let chars = chars.max(0);
        let out = buf.as_mut_ptr().cast::<c_char>();
        if bytes <= room {
            // SAFETY: all the chars are `bytes` bytes and a NUL, which fit.
            unsafe { (functions.GetStringUTFRegion)(self.env, string, 0, chars, out) };
            self.check("GetStringUTFRegion")?;
            return Ok(bytes);
        }
        let prefix = chars.min(i32::try_from(room / 3).unwrap_or(i32::MAX));
        // SAFETY: a char is at most 3 bytes, so `prefix` chars and a NUL fit
        // in `room / 3 * 3 + 1` bytes.
        unsafe { (functions.GetStringUTFRegion)(self.env, string, 0, prefix, out) };
        self.check("GetStringUTFRegion")?;
        let out = out.cast::<u8>();
        let mut written = 0;
        // SAFETY: the region call wrote its bytes and a NUL from `out`
        // (modified UTF-8 holds no 0 byte), so every byte read up to that
        // NUL, which is at most `room`, was written.
        while written < room && unsafe { *out.add(written) } != 0 {
            written += 1;
        }
        Ok(written)
    }

    /// Writes `values` at the start of the Java `long[]` `array`, which
    /// must hold at least as many.
    pub fn set_longs(&self, array: JObject, values: &[i64]) -> JniResult<()> {
        let length = jni_sys::jsize::try_from(values.len())
            .map_err(|_| JniError("too many longs for one array".into()))?;
        // SAFETY: `array` is a live long[] (the caller's contract); a region
        // past its end raises an exception, which `check` clears.
        unsafe {
            (self.functions().SetLongArrayRegion)(self.env, array, 0, length, values.as_ptr())
        };
        self.check("SetLongArrayRegion")
    }

    /// A new Java string (the text must not hold NUL).
    pub fn new_string(&self, text: &str) -> JniResult<JObject> {
        let text = std::ffi::CString::new(text)
            .map_err(|_| JniError(format!("{text:?} holds a NUL character")))?;
        // SAFETY: `text` is NUL-terminated; a failure is a null result and a
        // pending exception, which `non_null` handles.
        let string = unsafe { (self.functions().NewStringUTF)(self.env, text.as_ptr()) };
        self.non_null(string, "NewStringUTF")
    }

    /// Runs `body` inside a local frame of `capacity` references, so every
    /// local reference it makes is freed when it returns.
    pub fn with_local_frame<T>(
        &self,
        capacity: i32,
        body: impl FnOnce(&Jni) -> JniResult<T>,
    ) -> JniResult<T> {
        let functions = self.functions();
        // SAFETY: PushLocalFrame may be called at any time on the thread's
        // own env; a failure leaves no frame and is handled here.
        if unsafe { (functions.PushLocalFrame)(self.env, capacity) } != JNI_OK {
            self.check("PushLocalFrame")?;
            return Err(JniError("PushLocalFrame failed".into()));
        }
        let result = body(self);
        // SAFETY: pops the frame pushed above; no reference is kept from it.
        unsafe { (functions.PopLocalFrame)(self.env, std::ptr::null_mut()) };
        result
    }
}
