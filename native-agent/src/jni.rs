//! Hand-written bindings for the JNI functions the agent calls, with safe
//! wrappers that return `Result`. The function table is read by index, as
//! laid out in `jni.h` (`struct JNINativeInterface_`, index 0 is the first
//! reserved slot); `tests` checks every index against the installed JDK's
//! header. Every call that can run Java code is followed by an exception
//! check, so a pending exception is cleared and reported, never left behind.

use std::ffi::{c_char, c_void, CStr};
use std::mem::MaybeUninit;

pub type JInt = i32;
pub const JNI_OK: JInt = 0;
pub const JNI_ERR: JInt = -1;

/// `JavaVM`: a pointer to the invocation interface.
#[repr(C)]
pub struct JavaVm {
    functions: *const InvokeInterface,
}

#[repr(C)]
struct InvokeInterface {
    reserved: [*const c_void; 3],
    destroy_java_vm: *const c_void,
    attach_current_thread: *const c_void,
    detach_current_thread: *const c_void,
    get_env: unsafe extern "system" fn(*mut JavaVm, *mut *mut c_void, JInt) -> JInt,
    attach_current_thread_as_daemon:
        unsafe extern "system" fn(*mut JavaVm, *mut *mut c_void, *mut c_void) -> JInt,
}

impl JavaVm {
    /// `GetEnv`: the environment of `version` (JNI or JVMTI) for the calling
    /// thread, which the JVM runs already.
    ///
    /// # Safety
    /// `vm` must be the JVM's `JavaVM` pointer.
    pub unsafe fn get_env(vm: *mut JavaVm, version: JInt) -> Result<*mut c_void, JInt> {
        let mut env: *mut c_void = std::ptr::null_mut();
        let result = ((*(*vm).functions).get_env)(vm, &mut env, version);
        if result != JNI_OK || env.is_null() {
            return Err(result);
        }
        Ok(env)
    }

    /// `AttachCurrentThreadAsDaemon`.
    ///
    /// # Safety
    /// `vm` must be the JVM's `JavaVM` pointer; `args` a `JavaVMAttachArgs` or null.
    pub unsafe fn attach_current_thread_as_daemon(
        vm: *mut JavaVm,
        env: *mut *mut c_void,
        args: *mut c_void,
    ) -> JInt {
        ((*(*vm).functions).attach_current_thread_as_daemon)(vm, env, args)
    }
}

pub type JObject = *mut c_void;
pub type JMethodId = *mut c_void;
const JNI_VERSION_1_8: JInt = 0x0001_0008;

/// An argument or result of a Java call (`jvalue`).
#[repr(C)]
#[derive(Clone, Copy)]
pub union JValue {
    pub z: u8,
    pub i: i32,
    pub j: i64,
    pub l: JObject,
}

/// `JNIEnv`: a pointer to the function table.
#[repr(C)]
pub struct RawJniEnv {
    functions: *const *const c_void,
}

/// Longest string (in modified UTF-8 bytes) [`Jni::string_bytes`] copies
/// onto the stack.
pub const SHORT_STRING: usize = 512;

/// Indexes into `JNINativeInterface_` (from `jni.h`).
pub(crate) mod slot {
    pub const DEFINE_CLASS: usize = 5;
    pub const FIND_CLASS: usize = 6;
    pub const EXCEPTION_CLEAR: usize = 17;
    pub const PUSH_LOCAL_FRAME: usize = 19;
    pub const POP_LOCAL_FRAME: usize = 20;
    pub const NEW_GLOBAL_REF: usize = 21;
    pub const GET_METHOD_ID: usize = 33;
    pub const CALL_OBJECT_METHOD_A: usize = 36;
    pub const CALL_INT_METHOD_A: usize = 51;
    pub const CALL_LONG_METHOD_A: usize = 54;
    pub const CALL_VOID_METHOD_A: usize = 63;
    pub const GET_STATIC_METHOD_ID: usize = 113;
    pub const CALL_STATIC_OBJECT_METHOD_A: usize = 116;
    pub const CALL_STATIC_INT_METHOD_A: usize = 131;
    pub const GET_STRING_LENGTH: usize = 164;
    pub const NEW_STRING_UTF: usize = 167;
    pub const GET_STRING_UTF_LENGTH: usize = 168;
    pub const GET_STRING_UTF_CHARS: usize = 169;
    pub const RELEASE_STRING_UTF_CHARS: usize = 170;
    pub const REGISTER_NATIVES: usize = 215;
    pub const GET_STRING_UTF_REGION: usize = 221;
    pub const EXCEPTION_CHECK: usize = 228;
}

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
    id: JMethodId,
    what: &'static str,
}

// SAFETY: method ids stay valid for as long as their class is loaded, on any
// thread; the classes looked up here are JDK classes that are never unloaded.
unsafe impl Send for Method {}

/// A global reference, valid on every thread until deleted (never, here: the
/// agent keeps these for the JVM's life).
#[derive(Clone, Copy)]
pub struct Global(JObject);

// SAFETY: global references may be used from any thread attached to the JVM.
unsafe impl Send for Global {}
unsafe impl Sync for Global {}

impl Global {
    pub fn get(self) -> JObject {
        self.0
    }
}

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
        JavaVm::get_env(vm, JNI_VERSION_1_8).map(|env| Jni { env: env.cast() })
    }

    /// Attaches the current native thread to the JVM as a daemon thread named
    /// `name` (so it never holds the JVM's exit) and returns its environment.
    ///
    /// # Safety
    /// `vm` must be the JVM's `JavaVM` pointer and the JVM must be live.
    pub unsafe fn attach_daemon(vm: *mut JavaVm, name: &CStr) -> Result<Jni, JInt> {
        #[repr(C)]
        struct AttachArgs {
            version: JInt,
            name: *const c_char,
            group: JObject,
        }
        let mut args = AttachArgs {
            version: JNI_VERSION_1_8,
            name: name.as_ptr(),
            group: std::ptr::null_mut(),
        };
        let mut env: *mut c_void = std::ptr::null_mut();
        let result = JavaVm::attach_current_thread_as_daemon(
            vm,
            &mut env,
            (&mut args as *mut AttachArgs).cast(),
        );
        if result != JNI_OK || env.is_null() {
            return Err(result);
        }
        Ok(Jni { env: env.cast() })
    }

    unsafe fn function<F: Copy>(&self, index: usize) -> F {
        let entry = *(*self.env).functions.add(index);
        std::mem::transmute_copy(&entry)
    }

    /// Clears a pending exception and reports it as an error about `what`.
    fn check(&self, what: &str) -> JniResult<()> {
        type ExceptionCheck = unsafe extern "system" fn(*mut RawJniEnv) -> u8;
        type ExceptionClear = unsafe extern "system" fn(*mut RawJniEnv);
        // SAFETY: slots and signatures follow jni.h.
        unsafe {
            let check: ExceptionCheck = self.function(slot::EXCEPTION_CHECK);
            if check(self.env) == 0 {
                return Ok(());
            }
            let clear: ExceptionClear = self.function(slot::EXCEPTION_CLEAR);
            clear(self.env);
        }
        Err(JniError(format!("{what} threw an exception")))
    }

    fn non_null(&self, object: JObject, what: &str) -> JniResult<JObject> {
        self.check(what)?;
        if object.is_null() {
            return Err(JniError(format!("{what} returned null")));
        }
        Ok(object)
    }

    /// A class by its internal name (`java/lang/management/ManagementFactory`),
    /// as a global reference.
    pub fn class(&self, name: &'static CStr) -> JniResult<Global> {
        type FindClass = unsafe extern "system" fn(*mut RawJniEnv, *const c_char) -> JObject;
        // SAFETY: slot and signature follow jni.h; `name` is NUL-terminated.
        let local = unsafe {
            let find: FindClass = self.function(slot::FIND_CLASS);
            find(self.env, name.as_ptr())
        };
        let what = name.to_str().unwrap_or("a class");
        let local = self.non_null(local, what)?;
        self.global(local, what)
    }

    /// Defines class `name` from `bytes` in the boot loader, as a global reference.
    pub fn define_boot_class(&self, name: &CStr, bytes: &[u8]) -> JniResult<Global> {
        type DefineClass = unsafe extern "system" fn(
            *mut RawJniEnv,
            *const c_char,
            JObject,
            *const u8,
            JInt,
        ) -> JObject;
        // SAFETY: slot and signature follow jni.h; a null loader is the boot loader.
        let local = unsafe {
            let define: DefineClass = self.function(slot::DEFINE_CLASS);
            define(
                self.env,
                name.as_ptr(),
                std::ptr::null_mut(),
                bytes.as_ptr(),
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
        #[repr(C)]
        struct NativeMethod {
            name: *const c_char,
            signature: *const c_char,
            function: *mut c_void,
        }
        type RegisterNatives =
            unsafe extern "system" fn(*mut RawJniEnv, JObject, *const NativeMethod, JInt) -> JInt;
        let table: Vec<NativeMethod> = natives
            .iter()
            .map(|(name, signature, function)| NativeMethod {
                name: name.as_ptr(),
                signature: signature.as_ptr(),
                function: *function,
            })
            .collect();
        // SAFETY: slot and signature follow jni.h; the table outlives the call.
        let result = unsafe {
            let register: RegisterNatives = self.function(slot::REGISTER_NATIVES);
            register(self.env, class.0, table.as_ptr(), table.len() as JInt)
        };
        self.check("RegisterNatives")?;
        if result != JNI_OK {
            return Err(JniError(format!("RegisterNatives returned {result}")));
        }
        Ok(())
    }

    /// A global reference to `object`.
    pub fn global(&self, object: JObject, what: &str) -> JniResult<Global> {
        type NewGlobalRef = unsafe extern "system" fn(*mut RawJniEnv, JObject) -> JObject;
        // SAFETY: slot and signature follow jni.h; `object` is a live reference.
        let global = unsafe {
            let new: NewGlobalRef = self.function(slot::NEW_GLOBAL_REF);
            new(self.env, object)
        };
        if global.is_null() {
            return Err(JniError(format!("no global reference for {what}")));
        }
        Ok(Global(global))
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
        self.method_id(slot::GET_METHOD_ID, class, name, signature, what)
    }

    /// A static method of `class`.
    pub fn static_method(
        &self,
        class: Global,
        name: &CStr,
        signature: &CStr,
        what: &'static str,
    ) -> JniResult<Method> {
        self.method_id(slot::GET_STATIC_METHOD_ID, class, name, signature, what)
    }

    fn method_id(
        &self,
        index: usize,
        class: Global,
        name: &CStr,
        signature: &CStr,
        what: &'static str,
    ) -> JniResult<Method> {
        type GetMethodId = unsafe extern "system" fn(
            *mut RawJniEnv,
            JObject,
            *const c_char,
            *const c_char,
        ) -> JMethodId;
        // SAFETY: slot and signature follow jni.h (GetMethodID and
        // GetStaticMethodID share one signature).
        let id = unsafe {
            let get: GetMethodId = self.function(index);
            get(self.env, class.0, name.as_ptr(), signature.as_ptr())
        };
        let id = self.non_null(id, what)?;
        Ok(Method { id, what })
    }

    /// Calls an instance method returning an object; null is an error.
    pub fn call_object(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<JObject> {
        // SAFETY: slot and signature follow jni.h; the method id fits the object.
        let result = unsafe { self.call::<JObject>(slot::CALL_OBJECT_METHOD_A, object, m, args) };
        self.non_null(result, m.what)
    }

    pub fn call_int(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<i32> {
        // SAFETY: as in `call_object`.
        let result = unsafe { self.call::<i32>(slot::CALL_INT_METHOD_A, object, m, args) };
        self.check(m.what)?;
        Ok(result)
    }

    pub fn call_long(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<i64> {
        // SAFETY: as in `call_object`.
        let result = unsafe { self.call::<i64>(slot::CALL_LONG_METHOD_A, object, m, args) };
        self.check(m.what)?;
        Ok(result)
    }

    pub fn call_void(&self, object: JObject, m: Method, args: &[JValue]) -> JniResult<()> {
        // SAFETY: as in `call_object`; the unit result is a C `void`.
        unsafe { self.call::<()>(slot::CALL_VOID_METHOD_A, object, m, args) };
        self.check(m.what)
    }

    /// Calls a static method returning an object; null is an error.
    pub fn call_static_object(
        &self,
        class: Global,
        m: Method,
        args: &[JValue],
    ) -> JniResult<JObject> {
        // SAFETY: as in `call_object`, with a class for a static method.
        let result =
            unsafe { self.call::<JObject>(slot::CALL_STATIC_OBJECT_METHOD_A, class.0, m, args) };
        self.non_null(result, m.what)
    }

    pub fn call_static_int(&self, class: Global, m: Method, args: &[JValue]) -> JniResult<i32> {
        // SAFETY: as in `call_static_object`.
        let result = unsafe { self.call::<i32>(slot::CALL_STATIC_INT_METHOD_A, class.0, m, args) };
        self.check(m.what)?;
        Ok(result)
    }

    /// One `Call<Type>MethodA` or `CallStatic<Type>MethodA`: the target is an
    /// object or a class, the arguments an array of `jvalue`.
    unsafe fn call<R>(&self, index: usize, target: JObject, m: Method, args: &[JValue]) -> R {
        type CallA<R> =
            unsafe extern "system" fn(*mut RawJniEnv, JObject, JMethodId, *const JValue) -> R;
        let call: CallA<R> = self.function(index);
        call(self.env, target, m.id, args.as_ptr())
    }

    /// The text of a Java string (modified UTF-8, read lossily).
    pub fn string(&self, string: JObject) -> JniResult<String> {
        self.string_bytes(string, |bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    /// Hands the modified UTF-8 bytes of a Java string to `read`. Strings of
    /// up to [`SHORT_STRING`] bytes are copied onto the stack, so the JVM
    /// allocates nothing for them.
    pub fn string_bytes<R>(&self, string: JObject, read: impl FnOnce(&[u8]) -> R) -> JniResult<R> {
        type Length = unsafe extern "system" fn(*mut RawJniEnv, JObject) -> i32;
        type Region = unsafe extern "system" fn(*mut RawJniEnv, JObject, i32, i32, *mut u8);
        type GetChars =
            unsafe extern "system" fn(*mut RawJniEnv, JObject, *mut u8) -> *const c_char;
        type ReleaseChars = unsafe extern "system" fn(*mut RawJniEnv, JObject, *const c_char);
        // SAFETY: slots and signatures follow jni.h; the region call writes
        // GetStringUTFLength bytes and a NUL, which the buffer has room for;
        // long strings' chars are released right after they are read.
        unsafe {
            let utf_length: Length = self.function(slot::GET_STRING_UTF_LENGTH);
            let bytes = utf_length(self.env, string);
            if let Ok(bytes @ 0..=SHORT_STRING) = usize::try_from(bytes) {
                let length: Length = self.function(slot::GET_STRING_LENGTH);
                let region: Region = self.function(slot::GET_STRING_UTF_REGION);
                let mut buf = [0u8; SHORT_STRING + 1];
                region(
                    self.env,
                    string,
                    0,
                    length(self.env, string),
                    buf.as_mut_ptr(),
                );
                self.check("GetStringUTFRegion")?;
                return Ok(read(&buf[..bytes]));
            }
            let get: GetChars = self.function(slot::GET_STRING_UTF_CHARS);
            let chars = get(self.env, string, std::ptr::null_mut());
            if chars.is_null() {
                self.check("GetStringUTFChars")?;
                return Err(JniError("GetStringUTFChars returned null".into()));
            }
            let result = read(CStr::from_ptr(chars).to_bytes());
            let release: ReleaseChars = self.function(slot::RELEASE_STRING_UTF_CHARS);
            release(self.env, string, chars);
            Ok(result)
        }
    }

    /// Copies the modified UTF-8 bytes of a Java string into `buf` and
    /// returns how many there are: the whole string when it fits in
    /// `buf.len() - 1` bytes (the JVM writes a NUL after them), else a
    /// prefix of whole characters. Nothing is allocated.
    pub fn string_prefix(&self, string: JObject, buf: &mut [MaybeUninit<u8>]) -> JniResult<usize> {
        type Length = unsafe extern "system" fn(*mut RawJniEnv, JObject) -> i32;
        type Region = unsafe extern "system" fn(*mut RawJniEnv, JObject, i32, i32, *mut u8);
        let Some(room) = buf.len().checked_sub(1) else {
            return Ok(0);
        };
        // SAFETY: slots and signatures follow jni.h. The region call writes
        // the UTF-8 of the chars asked for and a NUL: at most 3 bytes a char
        // plus one, which the buffer has room for in both cases; the bytes
        // returned are ones it wrote (modified UTF-8 holds no 0 byte).
        unsafe {
            let utf_length: Length = self.function(slot::GET_STRING_UTF_LENGTH);
            let length: Length = self.function(slot::GET_STRING_LENGTH);
            let region: Region = self.function(slot::GET_STRING_UTF_REGION);
            let bytes = usize::try_from(utf_length(self.env, string)).unwrap_or(0);
            let chars = length(self.env, string).max(0);
            let out = buf.as_mut_ptr().cast::<u8>();
            if bytes <= room {
                region(self.env, string, 0, chars, out);
                self.check("GetStringUTFRegion")?;
                return Ok(bytes);
            }
            let prefix = chars.min(i32::try_from(room / 3).unwrap_or(i32::MAX));
            region(self.env, string, 0, prefix, out);
            self.check("GetStringUTFRegion")?;
            let mut written = 0;
            while written < room && *out.add(written) != 0 {
                written += 1;
            }
            Ok(written)
        }
    }

    /// A new Java string (the text must not hold NUL).
    pub fn new_string(&self, text: &str) -> JniResult<JObject> {
        type NewStringUtf = unsafe extern "system" fn(*mut RawJniEnv, *const c_char) -> JObject;
        let text = std::ffi::CString::new(text)
            .map_err(|_| JniError(format!("{text:?} holds a NUL character")))?;
        // SAFETY: slot and signature follow jni.h; `text` is NUL-terminated.
        let string = unsafe {
            let new: NewStringUtf = self.function(slot::NEW_STRING_UTF);
            new(self.env, text.as_ptr())
        };
        self.non_null(string, "NewStringUTF")
    }

    /// Runs `body` inside a local frame of `capacity` references, so every
    /// local reference it makes is freed when it returns.
    pub fn with_local_frame<T>(
        &self,
        capacity: i32,
        body: impl FnOnce(&Jni) -> JniResult<T>,
    ) -> JniResult<T> {
        type PushLocalFrame = unsafe extern "system" fn(*mut RawJniEnv, JInt) -> JInt;
        type PopLocalFrame = unsafe extern "system" fn(*mut RawJniEnv, JObject) -> JObject;
        // SAFETY: slots and signatures follow jni.h; every push is popped.
        unsafe {
            let push: PushLocalFrame = self.function(slot::PUSH_LOCAL_FRAME);
            if push(self.env, capacity) != JNI_OK {
                self.check("PushLocalFrame")?;
                return Err(JniError("PushLocalFrame failed".into()));
            }
            let result = body(self);
            let pop: PopLocalFrame = self.function(slot::POP_LOCAL_FRAME);
            pop(self.env, std::ptr::null_mut());
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot;
    use crate::header_check::indexes_in;

    /// Every index used here matches `struct JNINativeInterface_` in the
    /// installed JDK's `jni.h`.
    #[test]
    fn slots_match_jni_h() {
        let indexes = indexes_in("jni.h", "struct JNINativeInterface_ {", "};");
        for (name, used) in [
            ("DefineClass", slot::DEFINE_CLASS),
            ("FindClass", slot::FIND_CLASS),
            ("ExceptionClear", slot::EXCEPTION_CLEAR),
            ("PushLocalFrame", slot::PUSH_LOCAL_FRAME),
            ("PopLocalFrame", slot::POP_LOCAL_FRAME),
            ("NewGlobalRef", slot::NEW_GLOBAL_REF),
            ("GetMethodID", slot::GET_METHOD_ID),
            ("CallObjectMethodA", slot::CALL_OBJECT_METHOD_A),
            ("CallIntMethodA", slot::CALL_INT_METHOD_A),
            ("CallLongMethodA", slot::CALL_LONG_METHOD_A),
            ("CallVoidMethodA", slot::CALL_VOID_METHOD_A),
            ("GetStaticMethodID", slot::GET_STATIC_METHOD_ID),
            ("CallStaticObjectMethodA", slot::CALL_STATIC_OBJECT_METHOD_A),
            ("CallStaticIntMethodA", slot::CALL_STATIC_INT_METHOD_A),
            ("GetStringLength", slot::GET_STRING_LENGTH),
            ("NewStringUTF", slot::NEW_STRING_UTF),
            ("GetStringUTFLength", slot::GET_STRING_UTF_LENGTH),
            ("GetStringUTFRegion", slot::GET_STRING_UTF_REGION),
            ("GetStringUTFChars", slot::GET_STRING_UTF_CHARS),
            ("ReleaseStringUTFChars", slot::RELEASE_STRING_UTF_CHARS),
            ("RegisterNatives", slot::REGISTER_NATIVES),
            ("ExceptionCheck", slot::EXCEPTION_CHECK),
        ] {
            assert_eq!(indexes.get(name), Some(&used), "{name}");
        }
    }
}
