//! Finds the thread of a transaction for the profiler. The in-flight table
//! knows a transaction's thread by its Java id (`Thread.getId()`, which the
//! helper passes to `begin` already); JVMTI needs a `jthread`. This registry
//! maps ids to weak global references and lives on the profiler thread
//! alone: an id it does not know yet makes it list the JVM's threads once
//! (`GetAllThreads`, no safepoint) and register every thread it has not seen,
//! at most once a tick. So each thread is registered once, and application
//! threads pay nothing: no call, no store, no lock (a weak reference made
//! in `begin` would take the JVM's handle lock on their side). Java ids are
//! never reused, so an entry stays right until its thread ends; threads
//! that end are forgotten at the next listing. Virtual threads are not
//! listed, so their transactions are not sampled.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::jni::{Global, JObject, Jni, JniResult, Method, Weak};
use crate::jvmti::Jvmti;

/// The most threads remembered; past it, new threads are not sampled.
const MAX_THREADS: usize = 1 << 14;

/// The registry of threads by Java id.
pub struct Threads {
    jvmti: Jvmti,
    get_id: Method,
    known: HashMap<u64, Weak>,
    /// When the JVM's threads were last listed.
    listed: Option<Instant>,
    /// The least time between two listings.
    every: Duration,
}

impl Threads {
    /// A registry that lists the JVM's threads at most once per `every`.
    pub fn new(jni: &Jni, jvmti: Jvmti, every: Duration) -> JniResult<Threads> {
        let class: Global = jni.class(c"java/lang/Thread")?;
        Ok(Threads {
            jvmti,
            get_id: jni.method(class, c"getId", c"()J", "Thread.getId")?,
            known: HashMap::new(),
            listed: None,
            every,
        })
    }

    /// A local reference to the live thread whose Java id is `id`, made in
    /// the caller's local frame; `None` when it is unknown or has ended.
    pub fn find(&mut self, jni: &Jni, id: u64) -> Option<JObject> {
        if !self.known.contains_key(&id) && self.may_list() {
            self.list(jni);
        }
        jni.local_of(*self.known.get(&id)?)
    }

    fn may_list(&self) -> bool {
        self.listed.is_none_or(|at| at.elapsed() >= self.every)
    }

    /// Registers the threads not yet known and forgets those that ended.
    fn list(&mut self, jni: &Jni) {
        self.listed = Some(Instant::now());
        let _ = jni.with_local_frame(1024, |jni| {
            let threads = self
                .jvmti
                .all_threads()
                .map_err(|e| crate::jni::JniError(format!("GetAllThreads: error {}", e.0)))?;
            let mut alive = HashSet::with_capacity(threads.len());
            for thread in threads {
                if let Ok(id) = jni.call_long(thread, self.get_id, &[]) {
                    let id = id as u64;
                    alive.insert(id);
                    if !self.known.contains_key(&id) && self.known.len() < MAX_THREADS {
                        if let Ok(weak) = jni.weak(thread, "a thread") {
                            self.known.insert(id, weak);
                        }
                    }
                }
                jni.delete_local(thread);
            }
            self.known.retain(|id, weak| {
                let keep = alive.contains(id);
                if !keep {
                    jni.delete_weak(*weak);
                }
                keep
            });
            Ok(())
        });
    }
}
