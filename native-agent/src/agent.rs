//! The running agent: what `Agent_OnLoad`/`Agent_OnAttach` set up (the
//! exporter thread, the metric pipeline, the JVMTI events) and the JVMTI
//! callbacks that start the sampler at VMInit and flush at VMDeath. Every
//! callback runs inside `guard::guarded`; a caught panic disables the agent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::exporter::{self, Exporter, Queue};
use crate::gc;
use crate::guard;
use crate::instrument::{self, Targets};
use crate::jni::{JInt, JObject, JavaVm, Jni, SharedVm};
use crate::jvmti::{Capability, Event, EventCallbacks, JniEnvPtr, Jvmti, RawEnv};
use crate::log::line;
use crate::metrics;
use crate::options::{LogLevel, ProfileSettings, Settings};
use crate::profiler;
use crate::resource::{self, JvmFacts};
use crate::sampler::{self, Sampler};
use crate::transaction;

/// How long VMDeath waits for the last export.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);
/// How long the JVM's end waits for the profiler's last profiles.
const PROFILER_FINISH_LIMIT: Duration = Duration::from_millis(500);

struct Agent {
    vm: SharedVm,
    jvmti: Jvmti,
    /// What to instrument; taken when the helper class is installed.
    targets: Mutex<Option<Targets>>,
    interval: Duration,
    sampler: Arc<Mutex<Sampler>>,
    /// How to profile slow transactions, and where profiles go; `None`
    /// with `profile_after=off`.
    profile: Option<(ProfileSettings, Queue)>,
    exporter: Exporter,
    stop: Arc<AtomicBool>,
    /// Kept alive so the instruments keep recording.
    _provider: SdkMeterProvider,
}

static AGENT: OnceLock<Agent> = OnceLock::new();
/// The profiler thread, when it runs.
static PROFILER: OnceLock<profiler::Handle> = OnceLock::new();

/// Whether an agent already runs in this JVM (a second load is ignored).
pub fn running() -> bool {
    AGENT.get().is_some()
}

/// Before JDK 17, a JVMTI stack trace of another thread stops every thread
/// of the JVM (a global safepoint; JDK 17 made it a handshake with that one
/// thread): taken every few milliseconds, that would pause the whole
/// application. There the agent does not profile, and says so once.
fn profiles_allowed(java_version: &str) -> bool {
    let feature = java_version
        .split('.')
        .next()
        .and_then(|v| v.parse::<u32>().ok());
    let allowed = feature.is_some_and(|v| v >= 17);
    if !allowed {
        line(
            LogLevel::Warn,
            &format!(
                "no transaction profiles on Java {java_version}: its stack traces stop every thread (profiles need JDK 17 or later)"
            ),
        );
    }
    allowed
}

/// Sets the agent up. `live` is true when attaching to a running JVM (the
/// sampler starts now) and false at start-up (it starts at VMInit).
pub fn start(
    vm: *mut JavaVm,
    jvmti: Jvmti,
    settings: &Settings,
    jvm: &JvmFacts,
    live: bool,
) -> Result<(), String> {
    let dropped = Arc::new(AtomicU64::new(0));
    let resource = resource::build(settings, jvm);
    let metrics = metrics::pipeline(resource.clone(), dropped.clone());
    let _ = transaction::DROPPED.set(dropped.clone());
    let (queue, exporter) = exporter::start(settings, &resource, metrics.reader, dropped)
        .map_err(|e| format!("cannot start the exporter thread: {e}"))?;
    transaction::set_sample(settings.sample);
    transaction::set_cpu_time(settings.cpu);
    let stop = Arc::new(AtomicBool::new(false));
    let agent = Agent {
        vm: SharedVm::new(vm),
        jvmti,
        targets: Mutex::new(Some(Targets::new(&settings.hooks))),
        interval: settings.interval,
        profile: settings
            .profile
            .filter(|_| profiles_allowed(&jvm.java_version))
            .map(|p| (p, queue.clone())),
        sampler: Arc::new(Mutex::new(Sampler::new(
            settings,
            metrics.instruments,
            queue,
        ))),
        exporter,
        stop: stop.clone(),
        _provider: metrics.provider,
    };
    if AGENT.set(agent).is_err() {
        return Err("the agent is already running in this JVM".into());
    }
    guard::stop_on_disable(stop);
    subscribe(jvmti, live)?;
    if live {
        // SAFETY: `vm` is the JavaVM the JVM passed to Agent_OnAttach, which
        // runs on a thread the JVM runs (the attach listener).
        start_on_attach(unsafe { Jni::current(vm) });
    }
    Ok(())
}

/// Asks the JVM for the events the agent handles: class loads, VM start
/// (unless `live`) and death, and GC pauses when the JVM can tell them.
fn subscribe(jvmti: Jvmti, live: bool) -> Result<(), String> {
    let gc_events = match jvmti.add_capabilities(&[Capability::GenerateGarbageCollectionEvents]) {
        Ok(()) => true,
        Err(e) => {
            line(
                LogLevel::Warn,
                &format!("this JVM gives no GC pause events (JVMTI error {}); GC is read from its MXBeans only", e.0),
            );
            false
        }
    };
    // Profiles name the lines of their frames; without it, methods only.
    if let Err(e) = jvmti.add_capabilities(&[Capability::GetLineNumbers]) {
        line(
            LogLevel::Warn,
            &format!(
                "profiles name methods without their lines (JVMTI error {})",
                e.0
            ),
        );
    }
    // Only at start-up: without it, classes from the CDS archive (the JDK's
    // HTTP server among them) never reach the ClassFileLoadHook.
    if !live {
        if let Err(e) = jvmti.add_capabilities(&[Capability::GenerateAllClassHookEvents]) {
            line(
                LogLevel::Warn,
                &format!("JDK classes shared from the CDS archive cannot be instrumented (JVMTI error {})", e.0),
            );
        }
    }
    let mut callbacks = EventCallbacks::default();
    callbacks.vm_init = Some(on_vm_init);
    callbacks.vm_death = Some(on_vm_death);
    callbacks.class_file_load_hook = Some(instrument::on_class_file_load);
    if gc_events {
        callbacks.garbage_collection_start = Some(gc::on_gc_start);
        callbacks.garbage_collection_finish = Some(gc::on_gc_finish);
    }
    let fail =
        |what: &str, e: crate::jvmti::JvmtiError| format!("{what} failed (JVMTI error {})", e.0);
    jvmti
        .set_event_callbacks(&callbacks)
        .map_err(|e| fail("SetEventCallbacks", e))?;
    let mut events = vec![Event::VmDeath, Event::ClassFileLoadHook];
    if !live {
        events.push(Event::VmInit);
    }
    if gc_events {
        events.extend([
            Event::GarbageCollectionStart,
            Event::GarbageCollectionFinish,
        ]);
    }
    for event in events {
        jvmti
            .enable_event(event)
            .map_err(|e| fail(&format!("enabling {event:?}"), e))?;
    }
    Ok(())
}

/// What VMInit does at start-up, done at once when attaching to a running
/// JVM, with the attach listener's JNI environment.
fn start_on_attach(jni: Result<Jni, JInt>) {
    match jni {
        Ok(jni) => {
            install_hooks(&jni);
            line(
                LogLevel::Info,
                "attached to a running JVM: classes it has already loaded (a running server's among them, and the JDK's executors and tasks once used) are left as they were, and transactions are measured in classes loaded from now on (work they hand to such an executor's threads is not theirs); load the agent with -agentpath at start-up to measure everything",
            );
        }
        Err(code) => line(
            LogLevel::Warn,
            &format!("transactions are not measured: no JNI environment on attach (error {code})"),
        ),
    }
    start_sampler();
}

/// Defines the helper the instrumented methods call; from then on classes
/// that load are instrumented.
fn install_hooks(jni: &Jni) {
    let Some(agent) = AGENT.get() else { return };
    let Some(targets) = agent.targets.lock().ok().and_then(|mut t| t.take()) else {
        return;
    };
    if let Err(e) = instrument::install(jni, agent.jvmti, targets) {
        line(
            LogLevel::Warn,
            &format!("transactions are not measured: the helper class cannot be installed ({e})"),
        );
    }
}

fn start_sampler() {
    let Some(agent) = AGENT.get() else { return };
    if let Err(e) = sampler::start(
        agent.vm,
        agent.sampler.clone(),
        agent.interval,
        agent.stop.clone(),
    ) {
        line(
            LogLevel::Error,
            &format!("cannot start the sampler thread: {e}; no JVM numbers"),
        );
    }
    // Beside the sampler, not under its lock: a heap dump or a round slowed
    // by a GC must not hold profiles up.
    if let Some((settings, queue)) = &agent.profile {
        match profiler::start(
            agent.vm,
            agent.jvmti,
            *settings,
            queue.clone(),
            agent.stop.clone(),
        ) {
            Ok(handle) => {
                let _ = PROFILER.set(handle);
            }
            Err(e) => line(
                LogLevel::Error,
                &format!("cannot start the profiler thread: {e}; no profiles"),
            ),
        }
    }
}

unsafe extern "system" fn on_vm_init(_jvmti: *mut RawEnv, jni: JniEnvPtr, _thread: JObject) {
    guard::guarded("VMInit", || {
        // SAFETY: the JVM passes this thread's JNIEnv to the callback.
        install_hooks(&unsafe { Jni::from_raw(jni) });
        start_sampler();
    });
}

unsafe extern "system" fn on_vm_death(_jvmti: *mut RawEnv, jni: JniEnvPtr) {
    guard::guarded("VMDeath", || {
        let Some(agent) = AGENT.get() else { return };
        agent.stop.store(true, Ordering::Release);
        // The profiles of the last transactions, before the last flush.
        if let Some(profiler) = PROFILER.get() {
            profiler.finish_within(PROFILER_FINISH_LIMIT);
        }
        // A last round, so the pauses and numbers since the last one are not
        // lost; skipped if the sampler is busy (a heap dump in progress).
        if let Ok(mut sampler) = agent.sampler.try_lock() {
            // SAFETY: the JVM passes this thread's JNIEnv to the callback.
            sampler.round(&unsafe { Jni::from_raw(jni) }, true);
        }
        agent.exporter.flush(FLUSH_LIMIT);
    });
}

#[cfg(test)]
mod tests {
    use super::profiles_allowed;

    #[test]
    fn profiles_need_jdk_17_where_a_stack_trace_is_a_handshake() {
        for version in ["17", "21", "25"] {
            assert!(profiles_allowed(version), "{version}");
        }
        for version in ["11", "1.8", "?", ""] {
            assert!(!profiles_allowed(version), "{version}");
        }
    }
}
