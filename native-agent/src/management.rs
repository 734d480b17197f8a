//! Reads the JVM's own numbers through JNI from the sampler thread: memory
//! pools, collectors, threads, classes and the Finalizer pending count. The
//! beans come from `java.lang.management.ManagementFactory`'s getters, which
//! never start the platform MBean server (that breaks some app servers'
//! logging set-up). Classes, beans and method ids are looked up once.

use std::ffi::CStr;

use crate::jni::{Global, JObject, JValue, Jni, JniError, JniResult, Method};

/// Heap or not, as `jvm.memory.type` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Heap,
    NonHeap,
}

impl MemoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Heap => jvmapm_contract::names::metric::MEMORY_TYPE_HEAP,
            MemoryKind::NonHeap => jvmapm_contract::names::metric::MEMORY_TYPE_NON_HEAP,
        }
    }
}

/// A `java.lang.management.MemoryUsage`, in bytes; `limit` is absent when the
/// JVM leaves it undefined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub used: i64,
    pub committed: i64,
    pub limit: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolReading {
    pub name: String,
    pub kind: MemoryKind,
    pub usage: Usage,
}

/// A collector's totals since the JVM started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorReading {
    pub name: String,
    pub count: i64,
    pub time_ms: i64,
}

/// One sampling round's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JvmReading {
    pub heap: Usage,
    pub pools: Vec<PoolReading>,
    pub collectors: Vec<CollectorReading>,
    pub threads: i64,
    pub classes_loaded: i64,
    pub classes_loaded_total: i64,
    /// Objects waiting for the Finalizer thread; absent if the JVM cannot say.
    pub finalizer_pending: Option<i64>,
}

struct Pool {
    bean: Global,
    name: String,
    kind: MemoryKind,
}

struct Collector {
    bean: Global,
    name: String,
}

/// Where the Finalizer pending count comes from.
enum FinalizerSource {
    /// `jdk.internal.misc.VM.getFinalRefCount()` (JNI is not bound by module
    /// access checks).
    Vm(Global, Method),
    /// `MemoryMXBean.getObjectPendingFinalizationCount()`.
    MemoryBean(Method),
    Unavailable,
}

/// The beans and methods one sampling round calls.
pub struct Management {
    memory: Global,
    threads: Global,
    classes: Global,
    pools: Vec<Pool>,
    collectors: Vec<Collector>,
    finalizer: FinalizerSource,
    heap_usage: Method,
    pool_usage: Method,
    usage: UsageMethods,
    collection: CollectionMethods,
    thread_count: Method,
    loaded_class_count: Method,
    total_loaded_class_count: Method,
}

// SAFETY: every field is a global reference or a method id of a JDK class
// never unloaded: both stay valid on every thread attached to the JVM, and
// only such a thread (the sampler) uses them.
unsafe impl Send for Management {}

const FACTORY: &CStr = c"java/lang/management/ManagementFactory";

impl Management {
    /// Looks up the beans; done once, on the first sampling round.
    pub fn look_up(jni: &Jni) -> JniResult<Management> {
        jni.with_local_frame(64, |jni| {
            let factory = jni.class(FACTORY)?;
            let bean = |getter: &CStr, signature: &CStr, what| -> JniResult<Global> {
                let m = jni.static_method(factory, getter, signature, what)?;
                let local = jni.call_static_object(factory, m, &[])?;
                jni.global(local, what)
            };
            let memory = bean(
                c"getMemoryMXBean",
                c"()Ljava/lang/management/MemoryMXBean;",
                "ManagementFactory.getMemoryMXBean",
            )?;
            let threads = bean(
                c"getThreadMXBean",
                c"()Ljava/lang/management/ThreadMXBean;",
                "ManagementFactory.getThreadMXBean",
            )?;
            let classes = bean(
                c"getClassLoadingMXBean",
                c"()Ljava/lang/management/ClassLoadingMXBean;",
                "ManagementFactory.getClassLoadingMXBean",
            )?;
            let pool_beans = bean(
                c"getMemoryPoolMXBeans",
                c"()Ljava/util/List;",
                "ManagementFactory.getMemoryPoolMXBeans",
            )?;
            let collector_beans = bean(
                c"getGarbageCollectorMXBeans",
                c"()Ljava/util/List;",
                "ManagementFactory.getGarbageCollectorMXBeans",
            )?;

            let memory_class = jni.class(c"java/lang/management/MemoryMXBean")?;
            let pool_class = jni.class(c"java/lang/management/MemoryPoolMXBean")?;
            let usage_class = jni.class(c"java/lang/management/MemoryUsage")?;
            let manager_class = jni.class(c"java/lang/management/MemoryManagerMXBean")?;
            let gc_class = jni.class(c"java/lang/management/GarbageCollectorMXBean")?;
            let type_class = jni.class(c"java/lang/management/MemoryType")?;
            let thread_class = jni.class(c"java/lang/management/ThreadMXBean")?;
            let class_class = jni.class(c"java/lang/management/ClassLoadingMXBean")?;
            let list_class = jni.class(c"java/util/List")?;

            let list = Lists::look_up(jni, list_class)?;
            let pools = memory_pools(jni, &list, pool_beans, pool_class, type_class)?;
            let collectors = garbage_collectors(jni, &list, collector_beans, manager_class)?;
            let finalizer = finalizer_source(jni, memory_class);
            Ok(Management {
                memory,
                threads,
                classes,
                pools,
                collectors,
                finalizer,
                heap_usage: jni.method(
                    memory_class,
                    c"getHeapMemoryUsage",
                    c"()Ljava/lang/management/MemoryUsage;",
                    "MemoryMXBean.getHeapMemoryUsage",
                )?,
                pool_usage: jni.method(
                    pool_class,
                    c"getUsage",
                    c"()Ljava/lang/management/MemoryUsage;",
                    "MemoryPoolMXBean.getUsage",
                )?,
                usage: UsageMethods::look_up(jni, usage_class)?,
                collection: CollectionMethods::look_up(jni, gc_class)?,
                thread_count: jni.method(
                    thread_class,
                    c"getThreadCount",
                    c"()I",
                    "ThreadMXBean.getThreadCount",
                )?,
                loaded_class_count: jni.method(
                    class_class,
                    c"getLoadedClassCount",
                    c"()I",
                    "ClassLoadingMXBean.getLoadedClassCount",
                )?,
                total_loaded_class_count: jni.method(
                    class_class,
                    c"getTotalLoadedClassCount",
                    c"()J",
                    "ClassLoadingMXBean.getTotalLoadedClassCount",
                )?,
            })
        })
    }

    /// How many memory pools are read.
    pub fn pools(&self) -> usize {
        self.pools.len()
    }

    /// How many collectors are read.
    pub fn collectors(&self) -> usize {
        self.collectors.len()
    }

    /// Whether the Finalizer pending count can be read, and how.
    pub fn finalizer_source(&self) -> &'static str {
        match self.finalizer {
            FinalizerSource::Vm(..) => "jdk.internal.misc.VM.getFinalRefCount()",
            FinalizerSource::MemoryBean(_) => "MemoryMXBean.getObjectPendingFinalizationCount()",
            FinalizerSource::Unavailable => "unavailable",
        }
    }

    /// One round of readings.
    pub fn read(&self, jni: &Jni) -> JniResult<JvmReading> {
        jni.with_local_frame(16 + 2 * self.pools.len() as i32, |jni| {
            let heap = self.usage.read(
                jni,
                jni.call_object(self.memory.get(), self.heap_usage, &[])?,
            )?;
            let mut pools = Vec::with_capacity(self.pools.len());
            for pool in &self.pools {
                let usage = jni.call_object(pool.bean.get(), self.pool_usage, &[])?;
                pools.push(PoolReading {
                    name: pool.name.clone(),
                    kind: pool.kind,
                    usage: self.usage.read(jni, usage)?,
                });
            }
            let mut collectors = Vec::with_capacity(self.collectors.len());
            for collector in &self.collectors {
                collectors.push(CollectorReading {
                    name: collector.name.clone(),
                    count: jni.call_long(collector.bean.get(), self.collection.count, &[])?,
                    time_ms: jni.call_long(collector.bean.get(), self.collection.time, &[])?,
                });
            }
            let finalizer_pending = match self.finalizer {
                FinalizerSource::Vm(class, m) => Some(jni.call_static_int(class, m, &[])?),
                FinalizerSource::MemoryBean(m) => Some(jni.call_int(self.memory.get(), m, &[])?),
                FinalizerSource::Unavailable => None,
            };
            Ok(JvmReading {
                heap,
                pools,
                collectors,
                threads: jni
                    .call_int(self.threads.get(), self.thread_count, &[])?
                    .into(),
                classes_loaded: jni
                    .call_int(self.classes.get(), self.loaded_class_count, &[])?
                    .into(),
                classes_loaded_total: jni.call_long(
                    self.classes.get(),
                    self.total_loaded_class_count,
                    &[],
                )?,
                finalizer_pending: finalizer_pending.map(i64::from),
            })
        })
    }
}

/// The getters of `java.lang.management.MemoryUsage`.
struct UsageMethods {
    used: Method,
    committed: Method,
    max: Method,
}

impl UsageMethods {
    fn look_up(jni: &Jni, usage_class: Global) -> JniResult<UsageMethods> {
        Ok(UsageMethods {
            used: jni.method(usage_class, c"getUsed", c"()J", "MemoryUsage.getUsed")?,
            committed: jni.method(
                usage_class,
                c"getCommitted",
                c"()J",
                "MemoryUsage.getCommitted",
            )?,
            max: jni.method(usage_class, c"getMax", c"()J", "MemoryUsage.getMax")?,
        })
    }

    /// The numbers of a `MemoryUsage`.
    fn read(&self, jni: &Jni, usage: JObject) -> JniResult<Usage> {
        let max = jni.call_long(usage, self.max, &[])?;
        Ok(Usage {
            used: jni.call_long(usage, self.used, &[])?,
            committed: jni.call_long(usage, self.committed, &[])?,
            limit: (max >= 0).then_some(max),
        })
    }
}

/// The totals of a `GarbageCollectorMXBean`.
struct CollectionMethods {
    count: Method,
    time: Method,
}

impl CollectionMethods {
    fn look_up(jni: &Jni, gc_class: Global) -> JniResult<CollectionMethods> {
        Ok(CollectionMethods {
            count: jni.method(
                gc_class,
                c"getCollectionCount",
                c"()J",
                "GarbageCollectorMXBean.getCollectionCount",
            )?,
            time: jni.method(
                gc_class,
                c"getCollectionTime",
                c"()J",
                "GarbageCollectorMXBean.getCollectionTime",
            )?,
        })
    }
}

/// `java.util.List` access.
struct Lists {
    size: Method,
    get: Method,
}

impl Lists {
    fn look_up(jni: &Jni, list_class: Global) -> JniResult<Lists> {
        Ok(Lists {
            size: jni.method(list_class, c"size", c"()I", "List.size")?,
            get: jni.method(list_class, c"get", c"(I)Ljava/lang/Object;", "List.get")?,
        })
    }

    /// The elements of `list`, as local references.
    fn items(&self, jni: &Jni, list: Global) -> JniResult<Vec<JObject>> {
        let size = jni.call_int(list.get(), self.size, &[])?;
        (0..size)
            .map(|i| jni.call_object(list.get(), self.get, &[JValue { i }]))
            .collect()
    }
}

/// The memory pools in `pool_beans` (a list of `MemoryPoolMXBean`), each
/// with its name and whether it is heap.
fn memory_pools(
    jni: &Jni,
    list: &Lists,
    pool_beans: Global,
    pool_class: Global,
    type_class: Global,
) -> JniResult<Vec<Pool>> {
    let pool_name = jni.method(
        pool_class,
        c"getName",
        c"()Ljava/lang/String;",
        "MemoryPoolMXBean.getName",
    )?;
    let pool_type = jni.method(
        pool_class,
        c"getType",
        c"()Ljava/lang/management/MemoryType;",
        "MemoryPoolMXBean.getType",
    )?;
    let type_name = jni.method(
        type_class,
        c"name",
        c"()Ljava/lang/String;",
        "MemoryType.name",
    )?;
    let mut pools = Vec::new();
    for item in list.items(jni, pool_beans)? {
        let name = jni.call_object(item, pool_name, &[])?;
        let kind = jni.call_object(item, pool_type, &[])?;
        let kind = match jni.string(jni.call_object(kind, type_name, &[])?)?.as_str() {
            "HEAP" => MemoryKind::Heap,
            _ => MemoryKind::NonHeap,
        };
        pools.push(Pool {
            bean: jni.global(item, "a memory pool bean")?,
            name: jni.string(name)?,
            kind,
        });
    }
    Ok(pools)
}

/// The collectors in `collector_beans` (a list of
/// `GarbageCollectorMXBean`), each with its name.
fn garbage_collectors(
    jni: &Jni,
    list: &Lists,
    collector_beans: Global,
    manager_class: Global,
) -> JniResult<Vec<Collector>> {
    let manager_name = jni.method(
        manager_class,
        c"getName",
        c"()Ljava/lang/String;",
        "MemoryManagerMXBean.getName",
    )?;
    let mut collectors = Vec::new();
    for item in list.items(jni, collector_beans)? {
        let name = jni.call_object(item, manager_name, &[])?;
        collectors.push(Collector {
            bean: jni.global(item, "a garbage collector bean")?,
            name: jni.string(name)?,
        });
    }
    Ok(collectors)
}

/// `jdk.internal.misc.VM.getFinalRefCount()` if this JVM has it (and it
/// answers), else the MemoryMXBean's count, else nothing.
fn finalizer_source(jni: &Jni, memory_class: Global) -> FinalizerSource {
    let vm = || -> JniResult<FinalizerSource> {
        let class = jni.class(c"jdk/internal/misc/VM")?;
        let m = jni.static_method(
            class,
            c"getFinalRefCount",
            c"()I",
            "jdk.internal.misc.VM.getFinalRefCount",
        )?;
        jni.call_static_int(class, m, &[])?;
        Ok(FinalizerSource::Vm(class, m))
    };
    let bean = || -> JniResult<FinalizerSource> {
        let m = jni.method(
            memory_class,
            c"getObjectPendingFinalizationCount",
            c"()I",
            "MemoryMXBean.getObjectPendingFinalizationCount",
        )?;
        Ok(FinalizerSource::MemoryBean(m))
    };
    vm().or_else(|_: JniError| bean())
        .unwrap_or(FinalizerSource::Unavailable)
}
