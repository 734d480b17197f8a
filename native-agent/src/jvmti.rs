//! Hand-written bindings for the few JVMTI functions the agent calls, with
//! safe wrappers that return `Result` (`jni-sys` covers JNI, not JVMTI).
//! The function table is read by slot number, as numbered in `jvmti.h` (slot
//! 1 is the first entry), so only the functions used need declaring; `tests`
//! checks every slot, event number and capability bit against the installed
//! JDK's header.

use std::ffi::{c_char, c_void, CStr};

use crate::jni::{self, JInt, JObject, JavaVm, RawJniEnv, JNI_ERR};

const JVMTI_VERSION_1_2: JInt = 0x3001_0200;

/// `jvmtiEnv`: a pointer to the function table.
#[repr(C)]
pub struct RawEnv {
    functions: *const *const c_void,
}

/// Declares [`Slot`] from one list, so the header test sees every slot used.
macro_rules! slots {
    ($($(#[$only:meta])* $name:ident = $number:literal,)*) => {
        /// Slots of the JVMTI function table used here, named and numbered
        /// as in `jvmti.h`.
        #[derive(Clone, Copy, Debug)]
        enum Slot {
            $($(#[$only])* $name = $number,)*
        }

        #[cfg(test)]
        const ALL_SLOTS: &[Slot] = &[$($(#[$only])* Slot::$name,)*];
    };
}

slots! {
    SetEventNotificationMode = 2,
    GetAllThreads = 4,
    #[cfg(feature = "agct-probe")]
    GetThreadState = 17,
    GetNamedModule = 40,
    Allocate = 46,
    Deallocate = 47,
    GetClassSignature = 48,
    GetMethodName = 64,
    GetMethodDeclaringClass = 65,
    GetLineNumberTable = 70,
    AddModuleReads = 94,
    GetThreadListStackTraces = 101,
    SetEventCallbacks = 122,
    GetSystemProperty = 131,
    AddCapabilities = 142,
}

/// Events the agent asks for (`jvmtiEvent` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Event {
    VmInit = 50,
    VmDeath = 51,
    ClassFileLoadHook = 54,
    /// Only so that `AsyncGetCallTrace` works (it refuses to walk unless
    /// class loads are posted).
    #[cfg(feature = "agct-probe")]
    ClassLoad = 55,
    GarbageCollectionStart = 81,
    GarbageCollectionFinish = 82,
}

/// Bits of `jvmtiCapabilities` the agent asks for (bit 0 is `can_tag_objects`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Line numbers of a method's bytecode (`GetLineNumberTable`), for
    /// the frames of profiles.
    GetLineNumbers = 12,
    /// ClassFileLoadHook also for classes from the CDS archive.
    GenerateAllClassHookEvents = 26,
    GenerateGarbageCollectionEvents = 31,
}

/// The `JNIEnv*` a callback receives.
pub type JniEnvPtr = *mut RawJniEnv;
type Thread = JObject;
pub type VmInitCallback = unsafe extern "system" fn(*mut RawEnv, JniEnvPtr, Thread);
pub type VmDeathCallback = unsafe extern "system" fn(*mut RawEnv, JniEnvPtr);
pub type GcCallback = unsafe extern "system" fn(*mut RawEnv);
pub type ClassFileLoadHookCallback = unsafe extern "system" fn(
    *mut RawEnv,
    JniEnvPtr,
    JObject,
    JObject,
    *const c_char,
    JObject,
    JInt,
    *const u8,
    *mut JInt,
    *mut *mut u8,
);

/// `jvmtiEventCallbacks`, one slot per event from VMInit (50) through
/// SampledObjectAlloc (86); only the callbacks the agent uses are typed.
#[repr(C)]
#[derive(Default)]
pub struct EventCallbacks {
    pub vm_init: Option<VmInitCallback>,
    pub vm_death: Option<VmDeathCallback>,
    untyped_52_to_53: [Option<unsafe extern "system" fn()>; 2],
    pub class_file_load_hook: Option<ClassFileLoadHookCallback>,
    untyped_55_to_80: [Option<unsafe extern "system" fn()>; 26],
    pub garbage_collection_start: Option<GcCallback>,
    pub garbage_collection_finish: Option<GcCallback>,
    untyped_83_to_86: [Option<unsafe extern "system" fn()>; 4],
}

/// A method, as JVMTI and JNI name it (`jmethodID`).
pub type MethodId = jni_sys::jmethodID;

/// `jvmtiFrameInfo`: one frame of a stack, its method and the bytecode
/// index in it (-1 in a native method).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub method: MethodId,
    pub location: i64,
}

/// `jvmtiStackInfo`: a thread's stack as `GetThreadListStackTraces` gives it.
#[repr(C)]
struct StackInfo {
    thread: JObject,
    state: JInt,
    frame_buffer: *mut FrameInfo,
    frame_count: JInt,
}

/// `jvmtiLineNumberEntry`: from this bytecode index on, this source line.
#[repr(C)]
#[derive(Clone, Copy)]
struct LineNumberEntry {
    start_location: i64,
    line_number: JInt,
}

/// Bits of a thread's state (`JVMTI_THREAD_STATE_*`).
pub mod thread_state {
    pub const RUNNABLE: u32 = 0x4;
    pub const SLEEPING: u32 = 0x40;
    pub const WAITING: u32 = 0x80;
    pub const BLOCKED_ON_MONITOR_ENTER: u32 = 0x400;
    pub const IN_NATIVE: u32 = 0x40_0000;
}

/// A JVMTI error code (`jvmtiError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JvmtiError(pub u32);

/// A JVMTI environment of this agent. Its functions may be called from any thread.
#[derive(Clone, Copy)]
pub struct Jvmti {
    env: *mut RawEnv,
}

// SAFETY: JVMTI functions may be called from any thread (the spec says
// which phase each works in, not which thread), and the environment lives
// as long as the JVM.
unsafe impl Send for Jvmti {}
// SAFETY: as for `Send`: sharing one only copies the pointer.
unsafe impl Sync for Jvmti {}

impl Jvmti {
    /// Gets a JVMTI 1.2 environment from the VM.
    ///
    /// # Safety
    /// `vm` must be the `JavaVM` pointer the JVM passed to an agent entry point.
    pub unsafe fn from_vm(vm: *mut JavaVm) -> Result<Jvmti, JInt> {
        if vm.is_null() {
            return Err(JNI_ERR);
        }
        // SAFETY: the caller passes the JVM's JavaVM.
        unsafe { jni::get_env(vm, JVMTI_VERSION_1_2) }.map(|env| Jvmti { env: env.cast() })
    }

    /// The function in `slot`, as `F`.
    ///
    /// # Safety
    /// `F` must be the `extern` fn pointer type of that function in `jvmti.h`.
    unsafe fn function<F: Copy>(&self, slot: Slot) -> F {
        // SAFETY: `env` is a live JVMTI 1.2 environment (see `from_vm`),
        // whose table has every slot listed in `Slot` (all are in JVMTI 1.2
        // or, for the module functions, in the JVMs of Java 9 and later
        // that the agent needs); the caller vouches for `F`, a fn pointer
        // of the same size as the entry.
        unsafe {
            let entry = *(*self.env).functions.add(slot as usize - 1);
            std::mem::transmute_copy(&entry)
        }
    }

    /// A system property of the VM (`java.vm.name`, `java.version`, ...).
    pub fn system_property(&self, name: &CStr) -> Result<String, JvmtiError> {
        type GetSystemProperty =
            unsafe extern "system" fn(*mut RawEnv, *const c_char, *mut *mut c_char) -> u32;
        let mut value: *mut c_char = std::ptr::null_mut();
        // SAFETY: the types are those of jvmti.h; `name` is NUL-terminated
        // and `value` writable.
        let error = unsafe {
            let get: GetSystemProperty = self.function(Slot::GetSystemProperty);
            get(self.env, name.as_ptr(), &mut value)
        };
        result(error)?;
        // SAFETY: on success the JVM handed over a string of its own.
        unsafe { self.take_string(value) }
    }

    /// Copies a NUL-terminated string the JVM allocated and gives it back.
    ///
    /// # Safety
    /// `text` must be null or a string a JVMTI function of this environment
    /// just handed over, not yet deallocated.
    unsafe fn take_string(&self, text: *mut c_char) -> Result<String, JvmtiError> {
        if text.is_null() {
            return Err(JvmtiError(NULL_POINTER));
        }
        // SAFETY: the caller vouches for `text`, NUL-terminated (jvmti.h's
        // strings are modified UTF-8), copied before it is given back once.
        unsafe {
            let copy = CStr::from_ptr(text).to_string_lossy().into_owned();
            self.deallocate(text.cast());
            Ok(copy)
        }
    }

    /// Gives back memory a JVMTI function of this environment allocated.
    ///
    /// # Safety
    /// `memory` must be null or such memory, not yet given back, and
    /// unused afterwards.
    unsafe fn deallocate(&self, memory: *mut u8) {
        type Deallocate = unsafe extern "system" fn(*mut RawEnv, *mut u8) -> u32;
        if memory.is_null() {
            return;
        }
        // SAFETY: the type is that of jvmti.h; the caller vouches for `memory`.
        unsafe {
            let deallocate: Deallocate = self.function(Slot::Deallocate);
            deallocate(self.env, memory);
        }
    }

    /// Memory the JVM may take ownership of (new class bytes).
    pub fn allocate(&self, size: usize) -> Result<*mut u8, JvmtiError> {
        type Allocate = unsafe extern "system" fn(*mut RawEnv, i64, *mut *mut u8) -> u32;
        let mut memory: *mut u8 = std::ptr::null_mut();
        // SAFETY: the type is that of jvmti.h and `memory` is writable.
        let error = unsafe {
            let allocate: Allocate = self.function(Slot::Allocate);
            allocate(self.env, size as i64, &mut memory)
        };
        result(error)?;
        Ok(memory)
    }

    /// The named module of `package` (`com/sun/net/httpserver`) in `loader`
    /// (null: the boot loader); null when the package is in no named module.
    pub fn named_module(&self, loader: JObject, package: &CStr) -> Result<JObject, JvmtiError> {
        type GetNamedModule =
            unsafe extern "system" fn(*mut RawEnv, JObject, *const c_char, *mut JObject) -> u32;
        let mut module: JObject = std::ptr::null_mut();
        // SAFETY: the type is that of jvmti.h; `loader` is null or the
        // reference the JVM passed to the running callback, `package` is
        // NUL-terminated and `module` writable.
        let error = unsafe {
            let get: GetNamedModule = self.function(Slot::GetNamedModule);
            get(self.env, loader, package.as_ptr(), &mut module)
        };
        result(error)?;
        Ok(module)
    }

    /// Lets `module` read `other` (as `Module.addReads` would).
    pub fn add_module_reads(&self, module: JObject, other: JObject) -> Result<(), JvmtiError> {
        type AddModuleReads = unsafe extern "system" fn(*mut RawEnv, JObject, JObject) -> u32;
        // SAFETY: the type is that of jvmti.h; both are live references to
        // modules (the JVM checks, and says so in the error it returns).
        let error = unsafe {
            let add: AddModuleReads = self.function(Slot::AddModuleReads);
            add(self.env, module, other)
        };
        result(error)
    }

    /// Asks for `capabilities`; fails if the JVM cannot give one of them
    /// (some are only available while the agent loads at start-up).
    pub fn add_capabilities(&self, capabilities: &[Capability]) -> Result<(), JvmtiError> {
        type AddCapabilities = unsafe extern "system" fn(*mut RawEnv, *const [u32; 4]) -> u32;
        let mut bits = [0u32; 4];
        for &capability in capabilities {
            let bit = capability as usize;
            bits[bit / 32] |= 1 << (bit % 32);
        }
        // SAFETY: the type is that of jvmti.h, where `jvmtiCapabilities` is
        // 128 bits laid out from bit 0 of the first word, as `bits` is.
        let error = unsafe {
            let add: AddCapabilities = self.function(Slot::AddCapabilities);
            add(self.env, &bits)
        };
        result(error)
    }

    /// Installs the event callbacks (replacing any installed before).
    pub fn set_event_callbacks(&self, callbacks: &EventCallbacks) -> Result<(), JvmtiError> {
        type SetEventCallbacks =
            unsafe extern "system" fn(*mut RawEnv, *const EventCallbacks, JInt) -> u32;
        // SAFETY: the type is that of jvmti.h and `EventCallbacks` lays out
        // `jvmtiEventCallbacks` (see the tests); the JVM copies the struct,
        // and the functions in it live as long as the library.
        let error = unsafe {
            let set: SetEventCallbacks = self.function(Slot::SetEventCallbacks);
            set(
                self.env,
                callbacks,
                std::mem::size_of::<EventCallbacks>() as JInt,
            )
        };
        result(error)
    }

    /// Turns delivery of `event` on for every thread.
    pub fn enable_event(&self, event: Event) -> Result<(), JvmtiError> {
        type SetEventNotificationMode =
            unsafe extern "C" fn(*mut RawEnv, u32, u32, JObject, ...) -> u32;
        const JVMTI_ENABLE: u32 = 1;
        // SAFETY: the type is that of jvmti.h (a C variadic function; "C" is
        // the JNICALL convention on the platforms the agent builds for);
        // `event` is a jvmtiEvent number (see the tests) and a null thread
        // means all threads.
        let error = unsafe {
            let set: SetEventNotificationMode = self.function(Slot::SetEventNotificationMode);
            set(self.env, JVMTI_ENABLE, event as u32, std::ptr::null_mut())
        };
        result(error)
    }

    /// Posts class loads to a callback that does nothing, on this
    /// environment's callbacks (which it replaces): `AsyncGetCallTrace`
    /// walks no stack otherwise.
    #[cfg(feature = "agct-probe")]
    pub fn post_class_loads(&self) -> Result<(), JvmtiError> {
        unsafe extern "system" fn ignore() {}
        let mut callbacks = EventCallbacks::default();
        // Slot 55, ClassLoad: called with arguments this one ignores.
        callbacks.untyped_55_to_80[0] = Some(ignore);
        self.set_event_callbacks(&callbacks)?;
        self.enable_event(Event::ClassLoad)
    }

    /// Every live platform thread, as local references of the calling
    /// thread (which must be attached, and should make them in a local frame).
    pub fn all_threads(&self) -> Result<Vec<JObject>, JvmtiError> {
        type GetAllThreads =
            unsafe extern "system" fn(*mut RawEnv, *mut JInt, *mut *mut JObject) -> u32;
        let mut count: JInt = 0;
        let mut threads: *mut JObject = std::ptr::null_mut();
        // SAFETY: the type is that of jvmti.h and both outputs are writable.
        let error = unsafe {
            let get: GetAllThreads = self.function(Slot::GetAllThreads);
            get(self.env, &mut count, &mut threads)
        };
        result(error)?;
        // SAFETY: on success `threads` holds `count` references, in an
        // array the JVM allocated, copied and then given back once.
        unsafe {
            let list = slice_of(threads, count).to_vec();
            self.deallocate(threads.cast());
            Ok(list)
        }
    }

    /// The stack of one `thread` (a live reference to a platform thread),
    /// leaf first, at most `max_frames` of its frames, into `frames`; and
    /// its state bits (see [`thread_state`]). One thread only: HotSpot then
    /// reads it through a handshake with that thread alone, never a
    /// safepoint of all of them.
    pub fn stack_of(
        &self,
        thread: JObject,
        max_frames: usize,
        frames: &mut Vec<FrameInfo>,
    ) -> Result<u32, JvmtiError> {
        type GetThreadListStackTraces = unsafe extern "system" fn(
            *mut RawEnv,
            JInt,
            *const JObject,
            JInt,
            *mut *mut StackInfo,
        ) -> u32;
        let mut info: *mut StackInfo = std::ptr::null_mut();
        let max = JInt::try_from(max_frames).unwrap_or(JInt::MAX);
        // SAFETY: the type is that of jvmti.h; the list is this one
        // reference and `info` is writable.
        let error = unsafe {
            let get: GetThreadListStackTraces = self.function(Slot::GetThreadListStackTraces);
            get(self.env, 1, &thread, max, &mut info)
        };
        result(error)?;
        if info.is_null() {
            return Err(JvmtiError(NULL_POINTER));
        }
        // SAFETY: on success `info` is one StackInfo, its frames in the
        // same block the JVM allocated, read and then given back once.
        unsafe {
            let stack = &*info;
            frames.clear();
            frames.extend_from_slice(slice_of(stack.frame_buffer, stack.frame_count));
            let state = stack.state as u32;
            self.deallocate(info.cast());
            Ok(state)
        }
    }

    /// The JVMTI state bits of `thread` (no handshake), for the
    /// `AsyncGetCallTrace` probe.
    #[cfg(feature = "agct-probe")]
    pub fn thread_state(&self, thread: JObject) -> Result<u32, JvmtiError> {
        type GetThreadState = unsafe extern "system" fn(*mut RawEnv, JObject, *mut JInt) -> u32;
        let mut state: JInt = 0;
        // SAFETY: the type is that of jvmti.h; `state` is writable.
        let error = unsafe {
            let get: GetThreadState = self.function(Slot::GetThreadState);
            get(self.env, thread, &mut state)
        };
        result(error)?;
        Ok(state as u32)
    }

    /// The name of `method` (`run`, `<init>`).
    pub fn method_name(&self, method: MethodId) -> Result<String, JvmtiError> {
        type GetMethodName = unsafe extern "system" fn(
            *mut RawEnv,
            MethodId,
            *mut *mut c_char,
            *mut *mut c_char,
            *mut *mut c_char,
        ) -> u32;
        let mut name: *mut c_char = std::ptr::null_mut();
        // SAFETY: the type is that of jvmti.h; null signature and generic
        // pointers ask for neither; a stale id is an error code.
        let error = unsafe {
            let get: GetMethodName = self.function(Slot::GetMethodName);
            get(
                self.env,
                method,
                &mut name,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        result(error)?;
        // SAFETY: on success the JVM handed over the name.
        unsafe { self.take_string(name) }
    }

    /// The class that declares `method`, as a local reference.
    pub fn declaring_class(&self, method: MethodId) -> Result<JObject, JvmtiError> {
        type GetMethodDeclaringClass =
            unsafe extern "system" fn(*mut RawEnv, MethodId, *mut JObject) -> u32;
        let mut class: JObject = std::ptr::null_mut();
        // SAFETY: the type is that of jvmti.h and `class` is writable.
        let error = unsafe {
            let get: GetMethodDeclaringClass = self.function(Slot::GetMethodDeclaringClass);
            get(self.env, method, &mut class)
        };
        result(error)?;
        Ok(class)
    }

    /// The JVM signature of `class` (`Lcom/acme/Orders;`).
    pub fn class_signature(&self, class: JObject) -> Result<String, JvmtiError> {
        type GetClassSignature = unsafe extern "system" fn(
            *mut RawEnv,
            JObject,
            *mut *mut c_char,
            *mut *mut c_char,
        ) -> u32;
        let mut signature: *mut c_char = std::ptr::null_mut();
        // SAFETY: the type is that of jvmti.h; `class` is a live reference
        // to a class and a null generic pointer asks for none.
        let error = unsafe {
            let get: GetClassSignature = self.function(Slot::GetClassSignature);
            get(self.env, class, &mut signature, std::ptr::null_mut())
        };
        result(error)?;
        // SAFETY: on success the JVM handed over the signature.
        unsafe { self.take_string(signature) }
    }

    /// The line table of `method`: (first bytecode index, source line),
    /// in the order the class file gives them. Needs
    /// [`Capability::GetLineNumbers`]; a native method or a class compiled
    /// without lines is an error.
    pub fn line_numbers(&self, method: MethodId) -> Result<Vec<(i64, i32)>, JvmtiError> {
        type GetLineNumberTable = unsafe extern "system" fn(
            *mut RawEnv,
            MethodId,
            *mut JInt,
            *mut *mut LineNumberEntry,
        ) -> u32;
        let mut count: JInt = 0;
        let mut table: *mut LineNumberEntry = std::ptr::null_mut();
        // SAFETY: the type is that of jvmti.h and both outputs are writable.
        let error = unsafe {
            let get: GetLineNumberTable = self.function(Slot::GetLineNumberTable);
            get(self.env, method, &mut count, &mut table)
        };
        result(error)?;
        // SAFETY: on success `table` holds `count` entries the JVM
        // allocated, copied and then given back once.
        unsafe {
            let lines = slice_of(table, count)
                .iter()
                .map(|e| (e.start_location, e.line_number))
                .collect();
            self.deallocate(table.cast());
            Ok(lines)
        }
    }
}

/// The `count` items at `items` (none when null or not positive).
///
/// # Safety
/// When not null, `items` must point to `count` initialised items that
/// outlive the slice.
unsafe fn slice_of<'a, T>(items: *const T, count: JInt) -> &'a [T] {
    match usize::try_from(count) {
        Ok(len) if len > 0 && !items.is_null() => {
            // SAFETY: the caller vouches for `len` items at `items`.
            unsafe { std::slice::from_raw_parts(items, len) }
        }
        _ => &[],
    }
}

/// `JVMTI_ERROR_NULL_POINTER`, for a success that handed over nothing.
const NULL_POINTER: u32 = 100;

fn result(error: u32) -> Result<(), JvmtiError> {
    if error == 0 {
        Ok(())
    } else {
        Err(JvmtiError(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_check::{capability_bits, enum_values, indexes_in};

    /// Every slot the agent calls through names the same function in the
    /// installed JDK's `jvmti.h`.
    #[test]
    fn every_slot_used_matches_jvmti_h() {
        let indexes = indexes_in(
            "jvmti.h",
            "typedef struct jvmtiInterface_1_ {",
            "} jvmtiInterface_1;",
        );
        for &slot in ALL_SLOTS {
            let name = format!("{slot:?}");
            // jvmti.h numbers its slots from 1.
            assert_eq!(
                indexes.get(&name).map(|i| i + 1),
                Some(slot as usize),
                "{name}"
            );
        }
    }

    /// The structs read from the JVM have jvmti.h's layout on 64-bit
    /// platforms (a pointer and a `jlong`; a pointer, a `jint`, a pointer
    /// and a `jint`; a `jlong` and a `jint`).
    #[test]
    fn structs_have_the_layout_of_jvmti_h() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<FrameInfo>(), 16);
        assert_eq!(offset_of!(FrameInfo, location), 8);
        assert_eq!(size_of::<StackInfo>(), 32);
        assert_eq!(offset_of!(StackInfo, state), 8);
        assert_eq!(offset_of!(StackInfo, frame_buffer), 16);
        assert_eq!(offset_of!(StackInfo, frame_count), 24);
        assert_eq!(size_of::<LineNumberEntry>(), 16);
        assert_eq!(offset_of!(LineNumberEntry, line_number), 8);
    }

    /// The thread state bits are jvmti.h's.
    #[test]
    fn thread_states_match_jvmti_h() {
        let states = enum_values("jvmti.h", "JVMTI_THREAD_STATE_ALIVE = 0x0001,", "};");
        for (name, bit) in [
            ("JVMTI_THREAD_STATE_RUNNABLE", thread_state::RUNNABLE),
            ("JVMTI_THREAD_STATE_SLEEPING", thread_state::SLEEPING),
            ("JVMTI_THREAD_STATE_WAITING", thread_state::WAITING),
            (
                "JVMTI_THREAD_STATE_BLOCKED_ON_MONITOR_ENTER",
                thread_state::BLOCKED_ON_MONITOR_ENTER,
            ),
            ("JVMTI_THREAD_STATE_IN_NATIVE", thread_state::IN_NATIVE),
        ] {
            assert_eq!(states.get(name), Some(&bit), "{name}");
        }
    }

    #[test]
    fn events_and_capabilities_match_jvmti_h() {
        let events = enum_values(
            "jvmti.h",
            "JVMTI_MIN_EVENT_TYPE_VAL = 50,",
            "JVMTI_MAX_EVENT_TYPE_VAL",
        );
        let bits = capability_bits();
        for (name, event) in [
            ("JVMTI_EVENT_VM_INIT", Event::VmInit),
            ("JVMTI_EVENT_VM_DEATH", Event::VmDeath),
            ("JVMTI_EVENT_CLASS_FILE_LOAD_HOOK", Event::ClassFileLoadHook),
            #[cfg(feature = "agct-probe")]
            ("JVMTI_EVENT_CLASS_LOAD", Event::ClassLoad),
            (
                "JVMTI_EVENT_GARBAGE_COLLECTION_START",
                Event::GarbageCollectionStart,
            ),
            (
                "JVMTI_EVENT_GARBAGE_COLLECTION_FINISH",
                Event::GarbageCollectionFinish,
            ),
        ] {
            assert_eq!(events.get(name), Some(&(event as u32)), "{name}");
        }
        assert_eq!(
            bits[Capability::GenerateGarbageCollectionEvents as usize],
            "can_generate_garbage_collection_events"
        );
        assert_eq!(
            bits[Capability::GenerateAllClassHookEvents as usize],
            "can_generate_all_class_hook_events"
        );
        assert_eq!(
            bits[Capability::GetLineNumbers as usize],
            "can_get_line_numbers"
        );
        // The callbacks struct puts each event at (number - 50).
        let offset = |field: usize| field / std::mem::size_of::<usize>() + 50;
        assert_eq!(
            offset(std::mem::offset_of!(
                EventCallbacks,
                garbage_collection_start
            )),
            Event::GarbageCollectionStart as usize
        );
        assert_eq!(
            offset(std::mem::offset_of!(EventCallbacks, vm_death)),
            Event::VmDeath as usize
        );
        assert_eq!(
            offset(std::mem::offset_of!(EventCallbacks, class_file_load_hook)),
            Event::ClassFileLoadHook as usize
        );
    }
}
