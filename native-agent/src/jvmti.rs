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
    ($($name:ident = $number:literal,)*) => {
        /// Slots of the JVMTI function table used here, named and numbered
        /// as in `jvmti.h`.
        #[derive(Clone, Copy, Debug)]
        enum Slot {
            $($name = $number,)*
        }

        #[cfg(test)]
        const ALL_SLOTS: &[Slot] = &[$(Slot::$name,)*];
    };
}

slots! {
    SetEventNotificationMode = 2,
    GetNamedModule = 40,
    Allocate = 46,
    Deallocate = 47,
    AddModuleReads = 94,
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
    GarbageCollectionStart = 81,
    GarbageCollectionFinish = 82,
}

/// Bits of `jvmtiCapabilities` the agent asks for (bit 0 is `can_tag_objects`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
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
        type Deallocate = unsafe extern "system" fn(*mut RawEnv, *mut u8) -> u32;
        let mut value: *mut c_char = std::ptr::null_mut();
        // SAFETY: the types are those of jvmti.h; `name` is NUL-terminated
        // and `value` writable. On success the JVM hands over a
        // NUL-terminated string, which is copied and then given back with
        // Deallocate, once.
        unsafe {
            let get: GetSystemProperty = self.function(Slot::GetSystemProperty);
            let error = get(self.env, name.as_ptr(), &mut value);
            if error != 0 || value.is_null() {
                return Err(JvmtiError(error));
            }
            let text = CStr::from_ptr(value).to_string_lossy().into_owned();
            let deallocate: Deallocate = self.function(Slot::Deallocate);
            deallocate(self.env, value.cast());
            Ok(text)
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
}

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
