//! Instrumentation at class load: which classes and methods make
//! transactions, the ClassFileLoadHook that wraps them, and the helper class
//! (`jvmapm.agent.Hooks`) the wrappers call, defined in the boot loader with
//! its natives bound. The hook returns at once for every class not named
//! here; for a class it cannot rewrite it hands back nothing (the JVM keeps
//! the original bytes) and says so once.

use std::collections::HashSet;
use std::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

use crate::classfile::{self, ClassFile, Probe, Refusal};
use crate::jni::{Global, Jni, JniResult};
use crate::jvmti::{JInt, JniEnvPtr, Jvmti, RawEnv};
use crate::log::line;
use crate::options::{LogLevel, MethodHook};
use crate::probe::{HttpExchangeProbe, MethodProbe};
use crate::transaction::{self, Site, SiteKind};

/// The JDK HTTP server's filter chain: every exchange passes through it.
const HTTP_CHAIN: &str = "com/sun/net/httpserver/Filter$Chain";
const HTTP_DO_FILTER: (&str, &str) = ("doFilter", "(Lcom/sun/net/httpserver/HttpExchange;)V");

/// What the hook instruments, fixed when the agent starts.
pub struct Targets {
    /// Internal names of every class to look at (the fast filter).
    classes: HashSet<Vec<u8>>,
    hooks: Vec<MethodHook>,
}

impl Targets {
    pub fn new(hooks: &[MethodHook]) -> Targets {
        let mut classes: HashSet<Vec<u8>> = hooks
            .iter()
            .map(|h| h.class.replace('.', "/").into_bytes())
            .collect();
        classes.insert(HTTP_CHAIN.as_bytes().to_vec());
        Targets {
            classes,
            hooks: hooks.to_vec(),
        }
    }

    /// The methods of `class` to wrap, each with its probe.
    fn select(&self, class: &ClassFile) -> Vec<(usize, Box<dyn Probe>)> {
        let dotted = class.name.replace('/', ".");
        let mut chosen: Vec<(usize, Box<dyn Probe>)> = Vec::new();
        for (index, method) in class.methods.iter().enumerate() {
            let http = class.name == HTTP_CHAIN
                && (method.name.as_str(), method.descriptor.as_str()) == HTTP_DO_FILTER;
            let hooked = self
                .hooks
                .iter()
                .any(|h| h.class == dotted && (h.method == "*" || h.method == method.name));
            if !(http || hooked) || class.wrappable(method).is_err() {
                continue;
            }
            let kind = if http {
                SiteKind::HttpExchange
            } else {
                SiteKind::Method
            };
            let Some(site) = transaction::register(Site {
                kind,
                class: dotted.clone(),
                method: method.name.clone(),
            }) else {
                continue;
            };
            let probe: Box<dyn Probe> = match kind {
                SiteKind::HttpExchange => Box::new(HttpExchangeProbe { site }),
                SiteKind::Method => Box::new(MethodProbe { site }),
            };
            chosen.push((index, probe));
        }
        chosen
    }
}

/// What the hook needs once the helper exists.
struct Ready {
    jvmti: Jvmti,
    targets: Targets,
    /// The helper's module (the boot loader's unnamed module): classes in
    /// named modules must be made to read it.
    hooks_module: Global,
}

static READY: OnceLock<Ready> = OnceLock::new();

const HOOKS_CLASS: &[u8] = include_bytes!("../java/Hooks.class");

/// Defines the helper in the boot loader and binds its natives; from then
/// on the hook rewrites target classes. Called at VMInit (or on attach).
pub fn install(jni: &Jni, jvmti: Jvmti, targets: Targets) -> JniResult<()> {
    jni.with_local_frame(8, |jni| {
        let hooks = jni.define_boot_class(c"jvmapm/agent/Hooks", HOOKS_CLASS)?;
        jni.register_natives(hooks, &transaction::natives())?;
        let class = jni.class(c"java/lang/Class")?;
        let get_module = jni.method(
            class,
            c"getModule",
            c"()Ljava/lang/Module;",
            "Class.getModule",
        )?;
        let module = jni.call_object(hooks.get(), get_module, &[])?;
        let hooks_module = jni.global(module, "the helper's module")?;
        let _ = READY.set(Ready {
            jvmti,
            targets,
            hooks_module,
        });
        Ok(())
    })
}

/// JVMTI ClassFileLoadHook.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn on_class_file_load(
    _jvmti: *mut RawEnv,
    _jni: JniEnvPtr,
    class_being_redefined: *mut c_void,
    loader: *mut c_void,
    name: *const c_char,
    _protection_domain: *mut c_void,
    length: JInt,
    data: *const u8,
    new_length: *mut JInt,
    new_data: *mut *mut u8,
) {
    if name.is_null() || data.is_null() || !class_being_redefined.is_null() {
        return;
    }
    let Some(ready) = READY.get() else { return };
    let name = CStr::from_ptr(name);
    if !ready.targets.classes.contains(name.to_bytes()) {
        return;
    }
    crate::agent::guarded("ClassFileLoadHook", || {
        let original = std::slice::from_raw_parts(data, length.max(0) as usize);
        let class_name = name.to_string_lossy();
        match rewrite(ready, loader, name, original) {
            Ok(Some(bytes)) => match ready.jvmti.allocate(bytes.len()) {
                Ok(memory) => {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), memory, bytes.len());
                    *new_length = bytes.len() as JInt;
                    *new_data = memory;
                    line(LogLevel::Debug, &format!("instrumented {class_name}"));
                }
                Err(e) => line(
                    LogLevel::Warn,
                    &format!(
                        "left {class_name} as it was: no JVMTI memory (error {})",
                        e.0
                    ),
                ),
            },
            Ok(None) => {}
            Err(why) => line(
                LogLevel::Warn,
                &format!("left {class_name} as it was: {why}"),
            ),
        }
    });
}

/// The rewritten class, or `None` when nothing in it is a target.
unsafe fn rewrite(
    ready: &Ready,
    loader: *mut c_void,
    name: &CStr,
    original: &[u8],
) -> Result<Option<Vec<u8>>, Refusal> {
    let class = ClassFile::parse(original)?;
    let chosen = ready.targets.select(&class);
    if chosen.is_empty() {
        return Ok(None);
    }
    // A class in a named module reads only what its module reads: let it
    // read the helper's (unnamed) module.
    let name = name.to_bytes();
    let package = name[..name.iter().rposition(|&b| b == b'/').unwrap_or(0)].to_vec();
    let package =
        std::ffi::CString::new(package).map_err(|_| Refusal("bad package name".into()))?;
    let module = ready
        .jvmti
        .named_module(loader, &package)
        .map_err(|e| Refusal(format!("GetNamedModule failed (JVMTI error {})", e.0)))?;
    if !module.is_null() {
        ready
            .jvmti
            .add_module_reads(module, ready.hooks_module.get())
            .map_err(|e| Refusal(format!("AddModuleReads failed (JVMTI error {})", e.0)))?;
    }
    let targets: Vec<(usize, &dyn Probe)> = chosen.iter().map(|(i, p)| (*i, p.as_ref())).collect();
    classfile::wrap(&class, &targets).map(Some)
}
