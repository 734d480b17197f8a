//! Hand-written bindings for the few JNI invocation and JVMTI functions the
//! agent calls, with safe wrappers that return `Result`. JVMTI's function
//! table is read by slot number, as numbered in `jvmti.h` (slot 1 is the
//! first entry), so only the functions used need declaring.

use std::ffi::{c_char, c_void, CStr};

pub type JInt = i32;
pub const JNI_OK: JInt = 0;
pub const JNI_ERR: JInt = -1;
const JVMTI_VERSION_1_2: JInt = 0x3001_0200;

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
    attach_current_thread_as_daemon: *const c_void,
}

/// `jvmtiEnv`: a pointer to the function table.
#[repr(C)]
struct RawEnv {
    functions: *const *const c_void,
}

/// Slots of the JVMTI function table used here (numbers from `jvmti.h`).
const DEALLOCATE: usize = 47;
const GET_SYSTEM_PROPERTY: usize = 131;

/// A JVMTI error code (`jvmtiError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JvmtiError(pub u32);

/// A JVMTI environment of this agent.
pub struct Jvmti {
    env: *mut RawEnv,
}

impl Jvmti {
    /// Gets a JVMTI 1.2 environment from the VM.
    ///
    /// # Safety
    /// `vm` must be the `JavaVM` pointer the JVM passed to an agent entry point.
    pub unsafe fn from_vm(vm: *mut JavaVm) -> Result<Jvmti, JInt> {
        if vm.is_null() {
            return Err(JNI_ERR);
        }
        let mut env: *mut c_void = std::ptr::null_mut();
        let result = ((*(*vm).functions).get_env)(vm, &mut env, JVMTI_VERSION_1_2);
        if result != JNI_OK || env.is_null() {
            return Err(result);
        }
        Ok(Jvmti { env: env.cast() })
    }

    /// The function in `slot`, as `F` (a matching `extern "system"` fn pointer type).
    unsafe fn function<F: Copy>(&self, slot: usize) -> F {
        let entry = *(*self.env).functions.add(slot - 1);
        std::mem::transmute_copy(&entry)
    }

    /// A system property of the VM (`java.vm.name`, `java.version`, ...).
    pub fn system_property(&self, name: &CStr) -> Result<String, JvmtiError> {
        type GetSystemProperty =
            unsafe extern "system" fn(*mut RawEnv, *const c_char, *mut *mut c_char) -> u32;
        type Deallocate = unsafe extern "system" fn(*mut RawEnv, *mut u8) -> u32;
        let mut value: *mut c_char = std::ptr::null_mut();
        // SAFETY: slots and signatures follow jvmti.h; the JVM owns `value`
        // until it is handed back with Deallocate.
        unsafe {
            let get: GetSystemProperty = self.function(GET_SYSTEM_PROPERTY);
            let error = get(self.env, name.as_ptr(), &mut value);
            if error != 0 || value.is_null() {
                return Err(JvmtiError(error));
            }
            let text = CStr::from_ptr(value).to_string_lossy().into_owned();
            let deallocate: Deallocate = self.function(DEALLOCATE);
            deallocate(self.env, value.cast());
            Ok(text)
        }
    }
}
