//! Every name that crosses the wire between the agent and the analyzer:
//! resource and span attribute keys, the JVM event kinds, metric names and
//! the keys and values of their attributes. The agent writes them; the
//! analyzer and the viewer read them. Both take them from here, so a rename
//! cannot reach only one side.
//!
//! Keys from the OpenTelemetry semantic conventions are here too when both
//! sides spell them, or when the analyzer reads them from any OpenTelemetry
//! SDK; `jvmapm.*` keys are this project's own. Each entry says what it
//! means, its unit, who writes it and who reads it ("analyzer" includes what
//! its query API hands on to the viewer).

/// Resource attributes: which JVM sent an export, for spans and metrics alike.
pub mod resource {
    /// The service (string). Agent: its `service` option. Analyzer: the
    /// service a point is filed under, `unknown_service` when absent.
    pub const SERVICE_NAME: &str = "service.name";
    /// This run of this JVM (string). Agent: 32 random hex digits a start.
    /// Analyzer: the instance; `host.name:process.pid` when absent.
    pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
    /// The machine's host name (string). Agent writes; analyzer lists it with
    /// the instance, and the viewer labels an instance `service@host:pid`.
    pub const HOST_NAME: &str = "host.name";
    /// The JVM's process id (int). Written and read like [`HOST_NAME`].
    pub const PROCESS_PID: &str = "process.pid";
    /// The JVM's name, e.g. `OpenJDK 64-Bit Server VM` (string). Agent
    /// writes; analyzer lists it with the instance.
    pub const PROCESS_RUNTIME_NAME: &str = "process.runtime.name";
    /// The JVM's version (string). Written and read like [`PROCESS_RUNTIME_NAME`].
    pub const PROCESS_RUNTIME_VERSION: &str = "process.runtime.version";
    /// The SDK that exported (string): `jvmapm-agent` from the agent.
    pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
    /// That SDK's version (string); the agent writes its crate version.
    pub const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";
    /// The SDK's language (string). Other SDKs write it; the analyzer lists
    /// it with the instance.
    pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";
}

/// Attributes of transaction spans and of the spans inside them (SQL calls).
/// The analyzer's XLog reads the route, method, status, CPU and SQL keys of
/// every span; the others reach the viewer in a transaction's detail.
pub mod span {
    /// The route template, e.g. `/orders/{id}` (string). Agent: HTTP
    /// transactions whose framework names one. Analyzer: the endpoint.
    pub const HTTP_ROUTE: &str = "http.route";
    /// The HTTP method, `GET`, ... or `_OTHER` (string). Agent writes;
    /// analyzer strips it from the span name to find the endpoint.
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// [`HTTP_REQUEST_METHOD`] as SDKs before semantic conventions 1.21
    /// spell it. Analyzer reads only.
    pub const HTTP_METHOD_LEGACY: &str = "http.method";
    /// The status the client received (int). Agent writes when there was
    /// one; analyzer: the point's status, an error from 500 up.
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// [`HTTP_RESPONSE_STATUS_CODE`] as older SDKs spell it. Analyzer reads only.
    pub const HTTP_STATUS_CODE_LEGACY: &str = "http.status_code";
    /// The request path, e.g. `/orders/7` (string). Agent: on transactions
    /// kept in full detail. Shown in the detail.
    pub const URL_PATH: &str = "url.path";
    /// The thread that ran the transaction (string). Agent: in full detail.
    pub const THREAD_NAME: &str = "thread.name";
    /// The JVM's id of a thread (int). Agent: on stuck events.
    pub const THREAD_ID: &str = "thread.id";
    /// The hooked class, e.g. `com.acme.Batch` (string). Agent: on method
    /// transactions, steps, SQL calls and stuck events.
    pub const CODE_NAMESPACE: &str = "code.namespace";
    /// The hooked method, e.g. `run` (string). Written like [`CODE_NAMESPACE`].
    pub const CODE_FUNCTION: &str = "code.function";
    /// A SQL call's first word in capitals, `SELECT`, ... or `SQL` (string).
    /// Agent writes on SQL call spans.
    pub const DB_OPERATION_NAME: &str = "db.operation.name";
    /// A SQL call's statement, parameters left as `?` (string). Agent writes;
    /// the viewer lists it among a transaction's calls.
    pub const DB_QUERY_TEXT: &str = "db.query.text";
    /// Why a span failed: the exception's class, or the HTTP status (string).
    /// Agent writes on failed transactions and SQL calls.
    pub const ERROR_TYPE: &str = "error.type";

    /// The CPU time of the transaction's thread. Agent: int microseconds,
    /// unless `cpu=off`. Analyzer: the point's CPU time, also from other
    /// senders as double seconds.
    pub const CPU_TIME: &str = "jvmapm.cpu.time";
    /// How many SQL statements the transaction ran (int). Agent writes when
    /// it ran any; analyzer: the point's SQL count.
    pub const SQL_COUNT: &str = "jvmapm.sql.count";
    /// Their total time. Agent: int microseconds. Analyzer: the point's SQL
    /// time, also from other senders as double seconds.
    pub const SQL_TIME: &str = "jvmapm.sql.time";
    /// How many outgoing HTTP calls the transaction made (int). Agent writes
    /// when it made any; analyzer: the point's outgoing call count.
    pub const HTTP_COUNT: &str = "jvmapm.http.count";
    /// Their total time. Agent: int microseconds. Analyzer: the point's
    /// outgoing time, also from other senders as double seconds.
    pub const HTTP_TIME: &str = "jvmapm.http.time";
    /// The full URL of an outgoing call, credentials and query values
    /// stripped (string). Agent writes on CLIENT spans.
    pub const URL_FULL: &str = "url.full";
    /// The host an outgoing call went to (string). Agent writes on CLIENT
    /// spans; analyzer: the callee of a service map edge when no SERVER
    /// span of the callee arrived.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// The port an outgoing call went to (int). Written like
    /// [`SERVER_ADDRESS`].
    pub const SERVER_PORT: &str = "server.port";
    /// How much detail a transaction carries (string): [`DETAIL_THINNED`]
    /// when `sample=` left out its path and thread. Agent writes.
    pub const DETAIL: &str = "jvmapm.detail";
    /// The value of [`DETAIL`] on a thinned transaction.
    pub const DETAIL_THINNED: &str = "thinned";
    /// True on a transaction the agent reported stuck while it ran (bool).
    /// Agent writes; the viewer then looks for the [`super::event::STUCK`]
    /// event with the same trace id to show its stack.
    pub const STUCK: &str = "jvmapm.stuck";
    /// Steps the transaction took past the agent's bound (256), counted but
    /// not sent (int). A step is a `hook=` method called inside a
    /// transaction: an INTERNAL child span named `Class.method` with
    /// [`CODE_NAMESPACE`] and [`CODE_FUNCTION`]. Agent writes when any were
    /// left out.
    pub const STEPS_TRUNCATED: &str = "jvmapm.steps.truncated";
    /// Where a slow transaction spent its time: stack samples of its
    /// thread, merged as folded stacks (string), one line a distinct stack,
    /// `root;frame;...;leaf;[state] count`, root first, the thread's state
    /// (see [`super::profile`]) as the last frame, hottest lines first and
    /// at most 64 KiB. A frame is `package.Class.method` or
    /// `package.Class.method:line`. Agent writes on transactions open longer
    /// than `profile_after`; analyzer keeps and merges them.
    pub const PROFILE: &str = "jvmapm.profile";
    /// Sampling intervals the profile stands for (int): the sum of its
    /// counts. A sample the agent took late counts for every interval since
    /// the one before it, so a count times [`PROFILE_INTERVAL`] is time.
    pub const PROFILE_SAMPLES: &str = "jvmapm.profile.samples";
    /// Samples due but not taken: over the agent's budget of samples a
    /// second, or the thread could not be read (int).
    pub const PROFILE_DROPPED: &str = "jvmapm.profile.dropped";
    /// Samples taken but left out of [`PROFILE`] by its size bound (int).
    pub const PROFILE_TRUNCATED: &str = "jvmapm.profile.truncated";
    /// The sampling interval, microseconds (int): a count times it is time.
    pub const PROFILE_INTERVAL: &str = "jvmapm.profile.interval";
}

/// The thread states that end each stack of a [`span::PROFILE`], as its
/// last frame.
pub mod profile {
    /// On a CPU, running Java code.
    pub const RUNNING: &str = "[running]";
    /// Waiting to enter a monitor (`synchronized`).
    pub const BLOCKED: &str = "[blocked]";
    /// In `Object.wait`, parked (`LockSupport.park`) or joining.
    pub const WAITING: &str = "[waiting]";
    /// In `Thread.sleep`.
    pub const SLEEPING: &str = "[sleeping]";
    /// In native code: socket and file I/O, JNI.
    pub const NATIVE: &str = "[native]";
    /// The root of a stack cut at the agent's depth limit.
    pub const TRUNCATED: &str = "[truncated]";
    /// Every state, for readers that tell a state from a frame.
    pub const STATES: [&str; 5] = [RUNNING, BLOCKED, WAITING, SLEEPING, NATIVE];
}

/// JVM events: spans the agent marks with [`event::KIND`], which the analyzer
/// keeps as events of the instance instead of XLog points.
pub mod event {
    /// Marks a span as a JVM event (string); its value is the kind, one of the
    /// kinds below, which the agent also uses as the span's name. Agent
    /// writes; analyzer files the span as an event with this `kind`.
    pub const KIND: &str = "jvmapm.event";

    /// A stop-the-world GC pause: the span lasts the pause, with
    /// [`super::metric::GC_NAME`] and [`super::metric::GC_ACTION`] when a
    /// collector's bean told them. The analyzer's JVM query lists these apart.
    pub const GC_PAUSE: &str = "gc.pause";
    /// A heap dump the agent wrote: the span lasts the dump, with
    /// [`HEAP_DUMP_PATH`] and [`HEAP_DUMP_REASON`].
    pub const HEAP_DUMP: &str = "heapdump";
    /// A transaction open past the `stuck` threshold, a child of its span, with
    /// [`super::span::THREAD_ID`], [`OPEN_MS`], the hooked class and method
    /// and [`STACK`]. The viewer shows its stack with the transaction.
    pub const STUCK: &str = "stuck";

    /// Where the heap dump was written (string). Agent writes.
    pub const HEAP_DUMP_PATH: &str = "jvmapm.heapdump.path";
    /// What triggered the heap dump (string). Agent writes.
    pub const HEAP_DUMP_REASON: &str = "jvmapm.heapdump.reason";
    /// How long the stuck transaction had been open (int milliseconds).
    /// Agent writes.
    pub const OPEN_MS: &str = "jvmapm.open_ms";
    /// The stuck thread's stack, one `at` line a frame (string). Agent
    /// writes when it could read it; the viewer shows it.
    pub const STACK: &str = "jvmapm.stack";
}

/// Metrics the agent exports and the analyzer keeps (it keeps every metric
/// whose name starts with [`metric::JVM_PREFIX`] or [`metric::JVMAPM_PREFIX`],
/// from any sender), as series named `name{key=value,...}`.
pub mod metric {
    /// Metrics of the JVM, from the semantic conventions.
    pub const JVM_PREFIX: &str = "jvm.";
    /// This project's own metrics.
    pub const JVMAPM_PREFIX: &str = "jvmapm.";

    /// Memory used per pool (gauge, bytes), with [`MEMORY_TYPE`] and
    /// [`MEMORY_POOL_NAME`]. Agent writes; the viewer shows heap pools.
    pub const MEMORY_USED: &str = "jvm.memory.used";
    /// Memory committed per pool (gauge, bytes), attributes as [`MEMORY_USED`].
    pub const MEMORY_COMMITTED: &str = "jvm.memory.committed";
    /// A pool's maximum, when the JVM defines one (gauge, bytes), attributes
    /// as [`MEMORY_USED`]. The viewer shows it beside the use.
    pub const MEMORY_LIMIT: &str = "jvm.memory.limit";
    /// Heap or not (string): [`MEMORY_TYPE_HEAP`] or [`MEMORY_TYPE_NON_HEAP`].
    pub const MEMORY_TYPE: &str = "jvm.memory.type";
    /// [`MEMORY_TYPE`] of a heap pool.
    pub const MEMORY_TYPE_HEAP: &str = "heap";
    /// [`MEMORY_TYPE`] of a pool outside the heap (metaspace, code cache).
    pub const MEMORY_TYPE_NON_HEAP: &str = "non_heap";
    /// The pool, e.g. `G1 Eden Space` (string).
    pub const MEMORY_POOL_NAME: &str = "jvm.memory.pool.name";

    /// Stop-the-world pauses (histogram, seconds), with [`GC_NAME`] and
    /// [`GC_ACTION`] when known. Agent writes.
    pub const GC_DURATION: &str = "jvm.gc.duration";
    /// Collections per collector (counter, `{collection}`), with [`GC_NAME`].
    pub const GC_COUNT: &str = "jvm.gc.count";
    /// Collection time per collector (counter, seconds), with [`GC_NAME`].
    pub const GC_TIME: &str = "jvm.gc.time";
    /// The collector, e.g. `G1 Old Generation` (string). Also on
    /// [`super::event::GC_PAUSE`] events, where the analyzer's JVM query reads it.
    pub const GC_NAME: &str = "jvm.gc.name";
    /// What the collection was, e.g. `end of major GC` (string). Written
    /// and read like [`GC_NAME`].
    pub const GC_ACTION: &str = "jvm.gc.action";

    /// Live threads (gauge, `{thread}`). Agent writes.
    pub const THREAD_COUNT: &str = "jvm.thread.count";
    /// Classes currently loaded (gauge, `{class}`). Agent writes.
    pub const CLASS_COUNT: &str = "jvm.class.count";
    /// Classes loaded since the JVM started (counter, `{class}`). Agent writes.
    pub const CLASS_LOADED: &str = "jvm.class.loaded";
    /// CPU time of the whole JVM process (counter, seconds). Agent writes.
    pub const CPU_TIME: &str = "jvm.cpu.time";
    /// Objects waiting for the Finalizer thread (gauge, `{object}`). Agent
    /// writes; the viewer charts it.
    pub const FINALIZER_PENDING: &str = "jvm.finalizer.pending";

    /// Open transactions by age (gauge, `{transaction}`), one series per
    /// [`AGE`] bucket. Agent writes; the viewer shows the buckets.
    pub const TRANSACTIONS_ACTIVE: &str = "jvmapm.transactions.active";
    /// The age bucket of [`TRANSACTIONS_ACTIVE`] (string), one of [`AGES`].
    pub const AGE: &str = "jvmapm.age";
    /// The buckets of [`AGE`], youngest first: under 3 s, 3 to 8 s, over 8 s.
    pub const AGES: [&str; 3] = ["<3s", "3-8s", ">8s"];
    /// Spans dropped since the agent started, because its queue was full or
    /// the backend failed (gauge of the total, `{span}`). Agent writes.
    pub const AGENT_DROPPED: &str = "jvmapm.agent.dropped";
}
