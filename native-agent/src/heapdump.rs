//! Heap dumps the agent writes by itself when the Finalizer backlog or the
//! heap passes a threshold (options `heapdump_*`): the decision (`Trigger`,
//! at most one dump per `heapdump_min_interval`) and the dump itself, through
//! `HotSpotDiagnosticMXBean.dumpHeap`, from the sampler thread.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::jni::{Global, JValue, Jni, JniResult, Method};
use crate::options::HeapDumpSettings;

/// Decides when a threshold trips, at most once per interval.
pub struct Trigger {
    on_finalizer_pending: Option<u64>,
    on_heap_used: Option<u8>,
    min_interval: Duration,
    last: Option<Instant>,
}

impl Trigger {
    pub fn new(settings: &HeapDumpSettings) -> Trigger {
        Trigger {
            on_finalizer_pending: settings.on_finalizer_pending,
            on_heap_used: settings.on_heap_used,
            min_interval: settings.min_interval,
            last: None,
        }
    }

    /// Whether any threshold is set at all.
    pub fn armed(&self) -> bool {
        self.on_finalizer_pending.is_some() || self.on_heap_used.is_some()
    }

    /// The reason to dump now, if a threshold is passed and no dump was
    /// attempted within the interval. A returned reason counts as an attempt.
    pub fn check(
        &mut self,
        now: Instant,
        finalizer_pending: Option<i64>,
        heap_used: Option<(i64, i64)>,
    ) -> Option<String> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.min_interval)
        {
            return None;
        }
        let pending = match (self.on_finalizer_pending, finalizer_pending) {
            (Some(limit), Some(pending)) if pending >= 0 && pending as u64 >= limit => Some(
                format!("Finalizer pending count {pending} reached heapdump_on_finalizer_pending={limit}"),
            ),
            _ => None,
        };
        let heap = match (self.on_heap_used, heap_used) {
            (Some(percent), Some((used, limit))) if limit > 0 => {
                let used_percent = used as f64 * 100.0 / limit as f64;
                (used_percent >= f64::from(percent)).then(|| {
                    format!(
                        "heap used {used_percent:.1}% of {limit} bytes reached heapdump_on_heap_used={percent}"
                    )
                })
            }
            _ => None,
        };
        let reason = pending.or(heap)?;
        self.last = Some(now);
        Some(reason)
    }
}

/// The file a dump goes to: the directory, the service (made safe for a
/// file name), the pid and the time, so dumps never overwrite each other.
pub fn file_name(dir: &Path, service: &str, pid: u32, unix_seconds: u64) -> PathBuf {
    let service: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("jvmapm-{service}-{pid}-{unix_seconds}.hprof"))
}

/// `HotSpotDiagnosticMXBean.dumpHeap`, looked up on first use.
pub struct Dumper {
    bean: Global,
    dump_heap: Method,
}

// SAFETY: a Dumper is a global reference and a method id of a JDK class
// never unloaded: both stay valid on every thread attached to the JVM, and
// only such a thread (the sampler) uses it.
unsafe impl Send for Dumper {}

impl Dumper {
    pub fn look_up(jni: &Jni) -> JniResult<Dumper> {
        jni.with_local_frame(16, |jni| {
            let factory = jni.class(c"java/lang/management/ManagementFactory")?;
            let bean_class = jni.class(c"com/sun/management/HotSpotDiagnosticMXBean")?;
            let get = jni.static_method(
                factory,
                c"getPlatformMXBean",
                c"(Ljava/lang/Class;)Ljava/lang/management/PlatformManagedObject;",
                "ManagementFactory.getPlatformMXBean",
            )?;
            let bean = jni.call_static_object(
                factory,
                get,
                &[JValue {
                    l: bean_class.get(),
                }],
            )?;
            Ok(Dumper {
                bean: jni.global(bean, "HotSpotDiagnosticMXBean")?,
                dump_heap: jni.method(
                    bean_class,
                    c"dumpHeap",
                    c"(Ljava/lang/String;Z)V",
                    "HotSpotDiagnosticMXBean.dumpHeap",
                )?,
            })
        })
    }

    /// Writes a dump of the live objects to `path` (which must end in `.hprof`
    /// and must not exist).
    pub fn dump(&self, jni: &Jni, path: &Path) -> JniResult<()> {
        jni.with_local_frame(4, |jni| {
            let path = jni.new_string(&path.to_string_lossy())?;
            jni.call_void(
                self.bean.get(),
                self.dump_heap,
                &[JValue { l: path }, JValue { z: true }],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(pending: Option<u64>, heap: Option<u8>) -> Trigger {
        Trigger::new(&HeapDumpSettings {
            dir: None,
            on_finalizer_pending: pending,
            on_heap_used: heap,
            min_interval: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_finalizer_backlog_trips_once_per_interval() {
        let mut t = trigger(Some(100), None);
        let start = Instant::now();
        assert_eq!(t.check(start, Some(99), None), None);
        let reason = t.check(start, Some(100), None).unwrap();
        assert!(reason.contains("Finalizer pending count 100"), "{reason}");
        assert_eq!(
            t.check(start + Duration::from_secs(59), Some(500), None),
            None
        );
        assert!(t
            .check(start + Duration::from_secs(60), Some(500), None)
            .is_some());
    }

    #[test]
    fn heap_use_trips_at_its_percentage_of_the_limit() {
        let mut t = trigger(None, Some(90));
        let now = Instant::now();
        assert_eq!(t.check(now, Some(10_000), Some((89, 100))), None);
        let reason = t.check(now, None, Some((90, 100))).unwrap();
        assert!(reason.contains("heap used 90.0%"), "{reason}");
    }

    #[test]
    fn nothing_trips_without_numbers_or_thresholds() {
        let now = Instant::now();
        assert_eq!(trigger(Some(1), Some(1)).check(now, None, None), None);
        assert_eq!(
            trigger(Some(1), Some(1)).check(now, None, Some((5, -1))),
            None
        );
        assert!(!trigger(None, None).armed());
        assert_eq!(trigger(None, None).check(now, Some(9), Some((9, 10))), None);
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        let name = file_name(Path::new("/dumps"), "orders/eu west", 42, 1_700_000_000);
        assert_eq!(
            name,
            Path::new("/dumps/jvmapm-orders_eu_west-42-1700000000.hprof")
        );
    }
}
