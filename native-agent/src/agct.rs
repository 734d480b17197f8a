//! A benchmark probe, built only with the feature `agct-probe`: the
//! profiler's samples taken with HotSpot's `AsyncGetCallTrace` from a
//! `SIGPROF` handler on the sampled thread instead of JVMTI's handshake, so
//! that `bench/agent-profile.py` can measure the two methods side by side
//! and the README's choice rests on figures. It is not in the agent users
//! get, and it takes shortcuts a product could not:
//!
//! - the sampled thread's OS id is found by its name in `/proc/self/task`
//!   (HotSpot names a started Java thread's OS thread after it), so a
//!   thread whose name is not unique in its first 15 bytes is not sampled;
//! - `AsyncGetCallTrace` reports a frame's method only when its `jmethodID`
//!   exists already. async-profiler makes every method's id at class
//!   prepare; here a JVMTI sample of the thread makes the ids of the frames
//!   on its stack whenever a sample meets a frame without one (counted in
//!   the log);
//! - one sample is in flight at a time, through statics the handler writes.
//!
//! The CPU of a sample is the profiler thread's (signal sent, answer
//! awaited) plus the handler's on the sampled thread, which the log gives
//! apart: the profiler's in the usual "profile sample took" line, the
//! handler's in "agct handler took" after it.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::clock;
use crate::jni::{self, Global, JObject, JavaVm, Jni, Method};
use crate::jvmti::{FrameInfo, Jvmti};
use crate::log;

/// The deepest stack the handler asks for.
const DEPTH: usize = 129;
/// The longest wait for a handler to answer.
const ANSWER_WITHIN: Duration = Duration::from_millis(10);
/// How long the profiler spins for an answer before it yields its CPU.
const SPIN_FOR: Duration = Duration::from_micros(20);
const JNI_VERSION_1_6: i32 = 0x0001_0006;

/// `ASGCT_CallFrame`: a bytecode index (negative in native code) and a
/// method.
#[repr(C)]
#[derive(Clone, Copy)]
struct CallFrame {
    bci: i32,
    method: *mut c_void,
}

/// `ASGCT_CallTrace`: the sampled thread's JNI environment, the frames
/// found (or a negative error code), and where to put them.
#[repr(C)]
struct CallTrace {
    env: *mut c_void,
    frames_found: i32,
    frames: *mut CallFrame,
}

type AsyncGetCallTrace = unsafe extern "C" fn(*mut CallTrace, i32, *mut c_void);

/// The one sample in flight: the frames the handler writes, read by the
/// profiler only after [`ANSWERED`] equals the request it made.
struct Answer(UnsafeCell<[CallFrame; DEPTH]>);
// SAFETY: one writer (the handler for the current request), one reader
// (the profiler after the handler published `ANSWERED` with Release).
unsafe impl Sync for Answer {}

static FRAMES: Answer = Answer(UnsafeCell::new(
    [CallFrame {
        bci: 0,
        method: std::ptr::null_mut(),
    }; DEPTH],
));
static FRAMES_FOUND: AtomicI32 = AtomicI32::new(0);
static HANDLER_NS: AtomicU64 = AtomicU64::new(0);
static REQUESTED: AtomicU64 = AtomicU64::new(0);
static ANSWERED: AtomicU64 = AtomicU64::new(0);
static VM: AtomicPtr<JavaVm> = AtomicPtr::new(std::ptr::null_mut());
static CALL_TRACE: AtomicUsize = AtomicUsize::new(0);

/// The `SIGPROF` handler: walks this thread's stack into [`FRAMES`] when
/// a sample is requested. Only async-signal-safe calls: clock reads,
/// `GetEnv` (a thread-local read) and `AsyncGetCallTrace`.
extern "C" fn on_signal(_: libc::c_int, _: *mut libc::siginfo_t, context: *mut c_void) {
    let request = REQUESTED.load(Ordering::Acquire);
    let call_trace = CALL_TRACE.load(Ordering::Acquire);
    if request == ANSWERED.load(Ordering::Acquire) || call_trace == 0 {
        return;
    }
    let started = clock::thread_cpu_ns();
    // SAFETY: `VM` is the JVM's JavaVM, set before the handler was
    // installed; GetEnv only reads the calling thread's state.
    let env = unsafe { jni::get_env(VM.load(Ordering::Acquire), JNI_VERSION_1_6) }
        .unwrap_or(std::ptr::null_mut());
    let mut trace = CallTrace {
        env,
        frames_found: 0,
        frames: FRAMES.0.get().cast(),
    };
    // SAFETY: `call_trace` is HotSpot's AsyncGetCallTrace (non-zero only
    // once `dlsym` found it); `trace` points at DEPTH writable frames that
    // nobody reads until ANSWERED says so; `context` is this signal's.
    unsafe {
        let walk: AsyncGetCallTrace = std::mem::transmute::<usize, AsyncGetCallTrace>(call_trace);
        walk(&mut trace, DEPTH as i32, context);
    }
    FRAMES_FOUND.store(trace.frames_found, Ordering::Relaxed);
    HANDLER_NS.store(
        clock::thread_cpu_ns().saturating_sub(started),
        Ordering::Relaxed,
    );
    ANSWERED.store(request, Ordering::Release);
}

/// Samples threads with `AsyncGetCallTrace`.
pub struct Agct {
    jvmti: Jvmti,
    get_name: Method,
    /// OS thread ids by Java thread id (`None`: not found by name).
    tids: HashMap<u64, Option<i32>>,
    missing_ids: u64,
}

impl Agct {
    /// The CPU the handler of the last sample took on the sampled thread.
    pub fn handler_ns(&self) -> u64 {
        HANDLER_NS.load(Ordering::Relaxed)
    }

    /// Finds `AsyncGetCallTrace` and installs the handler; `None`, said in
    /// the log, when the JVM has no such function.
    pub fn new(vm: *mut JavaVm, jni: &Jni, jvmti: Jvmti) -> Option<Agct> {
        // SAFETY: a lookup by name in the loaded objects.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"AsyncGetCallTrace".as_ptr()) };
        if found.is_null() {
            log::line(
                crate::options::LogLevel::Error,
                "agct probe: no AsyncGetCallTrace",
            );
            return None;
        }
        // An environment of its own, so the agent's callbacks stay.
        // SAFETY: `vm` is the JVM's JavaVM.
        let own = unsafe { Jvmti::from_vm(vm) }.ok()?;
        if let Err(e) = own.post_class_loads() {
            log::debug(|| format!("agct probe: cannot post class loads (error {})", e.0));
            return None;
        }
        VM.store(vm, Ordering::Release);
        CALL_TRACE.store(found as usize, Ordering::Release);
        // SAFETY: a handler of the right signature for SA_SIGINFO, set
        // once; `action` is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut());
        }
        let class: Global = jni.class(c"java/lang/Thread").ok()?;
        let get_name = jni
            .method(class, c"getName", c"()Ljava/lang/String;", "Thread.getName")
            .ok()?;
        Some(Agct {
            jvmti,
            get_name,
            tids: HashMap::new(),
            missing_ids: 0,
        })
    }

    /// The stack of `thread` (Java id `id`) into `frames`, leaf first, and
    /// its JVMTI state bits.
    pub fn stack_of(
        &mut self,
        jni: &Jni,
        thread: JObject,
        id: u64,
        max_frames: usize,
        frames: &mut Vec<FrameInfo>,
    ) -> Option<u32> {
        let tid = match self.tids.get(&id) {
            Some(tid) => (*tid)?,
            None => {
                let tid = self.tid_of(jni, thread);
                self.tids.insert(id, tid);
                tid?
            }
        };
        let state = self.jvmti.thread_state(thread).ok()?;
        if REQUESTED.load(Ordering::Acquire) != ANSWERED.load(Ordering::Acquire) {
            // The last request was never answered; its handler may still run.
            return None;
        }
        let request = REQUESTED.load(Ordering::Relaxed) + 1;
        REQUESTED.store(request, Ordering::Release);
        // SAFETY: signals a thread of this process by its OS id.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGPROF) };
        let deadline = Instant::now() + ANSWER_WITHIN;
        let spin_until = Instant::now() + SPIN_FOR;
        while ANSWERED.load(Ordering::Acquire) != request {
            let now = Instant::now();
            if now < spin_until {
                std::hint::spin_loop();
            } else if now > deadline {
                return None;
            } else {
                std::thread::yield_now();
            }
        }
        let found = FRAMES_FOUND.load(Ordering::Relaxed);
        let Ok(found) = usize::try_from(found) else {
            log::debug(|| format!("agct sample failed: AsyncGetCallTrace code {found}"));
            return None;
        };
        let found = found.min(max_frames);
        // SAFETY: the handler of `request` wrote these frames and published
        // ANSWERED with Release; no handler writes until the next request.
        let answer = unsafe { &*FRAMES.0.get() };
        frames.clear();
        frames.extend(answer.iter().take(found).map(|frame| FrameInfo {
            method: frame.method.cast(),
            location: i64::from(frame.bci.max(-1)),
        }));
        if frames.iter().any(|frame| frame.method.is_null()) {
            // Make the missing jmethodIDs for the next samples.
            self.missing_ids += 1;
            log::debug(|| {
                format!(
                    "agct sample {} met a frame without jmethodID",
                    self.missing_ids
                )
            });
            let mut scratch = Vec::new();
            let _ = self.jvmti.stack_of(thread, max_frames, &mut scratch);
            return None;
        }
        Some(state)
    }

    /// The OS id of `thread`, by its name among this process's threads.
    fn tid_of(&self, jni: &Jni, thread: JObject) -> Option<i32> {
        let name = jni.call_object(thread, self.get_name, &[]).ok()?;
        let name = jni.string(name).ok()?;
        let short: String = name
            .chars()
            .scan(0, |bytes, c| {
                *bytes += c.len_utf8();
                (*bytes <= 15).then_some(c)
            })
            .collect();
        let mut found = None;
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end_matches('\n') == short {
                if found.is_some() {
                    log::debug(|| format!("agct probe: two threads named {short:?}"));
                    return None;
                }
                found = task.file_name().to_str()?.parse().ok();
            }
        }
        if found.is_none() {
            log::debug(|| format!("agct probe: no OS thread named {short:?}"));
        }
        found
    }
}
