//! The agent's entry points: `Agent_OnLoad` (`-agentpath` at JVM start) and
//! `Agent_OnAttach` (`jcmd PID JVMTI.agent_load`). Both run inside
//! `catch_unwind`. A bad option string is one line on stderr and a non-zero
//! return, so the JVM refuses to start (or the attach fails) as users expect;
//! an internal panic disables the agent and lets the JVM run on.

use std::ffi::{c_char, c_void, CStr};

use crate::agent;
use crate::guard;
use crate::jni::{JInt, JavaVm, JNI_ERR, JNI_OK};
use crate::jvmti::Jvmti;
use crate::log::{self, line};
use crate::options::{self, LogLevel, Protocol, Settings};
use crate::resource::JvmFacts;

const LOADED: &str = "loaded";
const ATTACHED: &str = "attached";

/// Called by the JVM for `-agentpath:libjvmapm_agent.so=OPTIONS`.
#[no_mangle]
pub extern "system" fn Agent_OnLoad(
    vm: *mut JavaVm,
    options: *const c_char,
    _reserved: *mut c_void,
) -> JInt {
    start(vm, options, LOADED)
}

/// Called by the JVM for `jcmd PID JVMTI.agent_load /path/libjvmapm_agent.so OPTIONS`.
#[no_mangle]
pub extern "system" fn Agent_OnAttach(
    vm: *mut JavaVm,
    options: *const c_char,
    _reserved: *mut c_void,
) -> JInt {
    start(vm, options, ATTACHED)
}

fn start(vm: *mut JavaVm, options: *const c_char, how: &str) -> JInt {
    let outcome = guard::caught(|| {
        let options = if options.is_null() {
            String::new()
        } else {
            // SAFETY: the JVM passes a NUL-terminated option string (or
            // null, handled above) that lives through this call.
            unsafe { CStr::from_ptr(options) }
                .to_string_lossy()
                .into_owned()
        };
        load(vm, &options, how)
    });
    match outcome {
        Some(Ok(())) => JNI_OK,
        Some(Err(message)) => {
            eprintln!("jvmapm agent: {message}");
            JNI_ERR
        }
        None => {
            guard::disable();
            eprintln!("jvmapm agent: internal error while loading; the agent is disabled and the JVM runs on");
            JNI_OK
        }
    }
}

fn load(vm: *mut JavaVm, options: &str, how: &str) -> Result<(), String> {
    let settings =
        options::resolve(options, |name| std::env::var(name).ok()).map_err(|e| e.to_string())?;
    log::init(&settings.log, settings.log_level)
        .map_err(|e| format!("option log: cannot open the log: {e}"))?;
    // SAFETY: `vm` is the JavaVM the JVM passed to this entry point.
    let jvmti = unsafe { Jvmti::from_vm(vm) }.map_err(|code| {
        format!("the JVM offers no JVMTI 1.2 environment (GetEnv returned {code})")
    })?;
    let property = |name: &CStr| {
        jvmti
            .system_property(name)
            .unwrap_or_else(|_| "?".to_string())
    };
    if agent::running() {
        line(
            LogLevel::Warn,
            "the agent is already running in this JVM; this second load is ignored",
        );
        return Ok(());
    }
    let jvm = JvmFacts {
        vm_name: property(c"java.vm.name"),
        vm_version: property(c"java.vm.version"),
        java_version: property(c"java.specification.version"),
    };
    line(
        LogLevel::Info,
        &format!(
            "jvmapm agent {} {how} in {} {} (pid {}); {}",
            env!("CARGO_PKG_VERSION"),
            jvm.vm_name,
            jvm.vm_version,
            std::process::id(),
            describe(&settings)
        ),
    );
    agent::start(vm, jvmti, &settings, &jvm, how == ATTACHED)
}

/// The settings in one line, without header values (they may hold secrets).
fn describe(s: &Settings) -> String {
    let protocol = match s.protocol {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
    };
    let headers: Vec<&str> = s.headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "service={} endpoint={} protocol={protocol} headers=[{}] interval={:?} export_interval={:?}",
        s.service,
        s.endpoint,
        headers.join(","),
        s.interval,
        s.export_interval
    )
}
