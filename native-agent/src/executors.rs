//! Context across threads: the methods of `java.util.concurrent` that hand
//! a task to another thread and those that run it, so that work a
//! transaction gives an executor keeps its transaction. The wrappers of the
//! first capture the open transaction into the task (`SubmitProbe`), those
//! of the second open it on the running thread around the run and close it
//! after (`RestoreProbe`); `FutureTask` and `ForkJoinTask` get a field for
//! it (`TASK_CONTEXT`). A class loaded before the agent (attached to a
//! running JVM) stays as it was: its tasks then carry nothing, and the
//! helper never hands an executor anything but what it takes.

use crate::classfile::{ClassFile, FieldAccess, Method, Probe};
use crate::probe::{RestoreProbe, SubmitProbe, TASK_CONTEXT};

const THREAD_POOL: &str = "java/util/concurrent/ThreadPoolExecutor";
const FORK_JOIN_POOL: &str = "java/util/concurrent/ForkJoinPool";
const FUTURE_TASK: &str = "java/util/concurrent/FutureTask";
const FORK_JOIN_TASK: &str = "java/util/concurrent/ForkJoinTask";
const COMPLETABLE: &str = "java/util/concurrent/CompletableFuture$";

/// Where tasks are handed to another thread, in JDK 17 to 25, each method
/// taking the task first: its class (after [`COMPLETABLE`] when it starts
/// with `$`), name and descriptor.
/// - `ThreadPoolExecutor.execute`, which its `submit` and `invokeAll`
///   and `CompletableFuture`'s async methods given such an executor call;
/// - `ScheduledThreadPoolExecutor.delayedExecute`, which every way of
///   scheduling (and its own `execute` and `submit`) calls;
/// - `ForkJoinPool`'s public `execute`, `submit` and `invoke` (the common
///   pool of `CompletableFuture`'s async methods);
/// - what `CompletableFuture`'s async methods use instead of the common
///   pool when its parallelism is 1 (two cores), up to JDK 18: a new
///   thread per task.
///
/// `ForkJoinTask.fork` hands over the task it is called on.
const SUBMITS: [(&str, &str, &str); 10] = [
    (THREAD_POOL, "execute", "(Ljava/lang/Runnable;)V"),
    (
        "java/util/concurrent/ScheduledThreadPoolExecutor",
        "delayedExecute",
        "(Ljava/util/concurrent/RunnableScheduledFuture;)V",
    ),
    (FORK_JOIN_POOL, "execute", "(Ljava/lang/Runnable;)V"),
    (
        FORK_JOIN_POOL,
        "execute",
        "(Ljava/util/concurrent/ForkJoinTask;)V",
    ),
    (
        FORK_JOIN_POOL,
        "submit",
        "(Ljava/util/concurrent/ForkJoinTask;)Ljava/util/concurrent/ForkJoinTask;",
    ),
    (
        FORK_JOIN_POOL,
        "submit",
        "(Ljava/util/concurrent/Callable;)Ljava/util/concurrent/ForkJoinTask;",
    ),
    (
        FORK_JOIN_POOL,
        "submit",
        "(Ljava/lang/Runnable;Ljava/lang/Object;)Ljava/util/concurrent/ForkJoinTask;",
    ),
    (
        FORK_JOIN_POOL,
        "submit",
        "(Ljava/lang/Runnable;)Ljava/util/concurrent/ForkJoinTask;",
    ),
    (
        FORK_JOIN_POOL,
        "invoke",
        "(Ljava/util/concurrent/ForkJoinTask;)Ljava/lang/Object;",
    ),
    (
        "$ThreadPerTaskExecutor",
        "execute",
        "(Ljava/lang/Runnable;)V",
    ),
];

const FORK: (&str, &str, &str) = (
    FORK_JOIN_TASK,
    "fork",
    "()Ljava/util/concurrent/ForkJoinTask;",
);

/// Where a task runs (`this`), named as [`SUBMITS`] are: `FutureTask`'s
/// `run` and `runAndReset` (a periodic task's), `ForkJoinTask.doExec`
/// (every run of a fork/join task, `()I` in JDK 17, `()V` later), and the
/// `run` of `CompletableFuture`'s tasks, which an executor other than a
/// `ForkJoinPool` calls.
const RUNS: [(&str, &str, &str); 7] = [
    (FUTURE_TASK, "run", "()V"),
    (FUTURE_TASK, "runAndReset", "()Z"),
    (FORK_JOIN_TASK, "doExec", "()I"),
    (FORK_JOIN_TASK, "doExec", "()V"),
    ("$AsyncSupply", "run", "()V"),
    ("$AsyncRun", "run", "()V"),
    ("$Completion", "run", "()V"),
];

/// Whether `hook` names `class`'s method `method`.
fn names(hook: &(&str, &str, &str), class: &ClassFile, method: &Method) -> bool {
    let (owner, name, descriptor) = *hook;
    let owner_matches = match owner.strip_prefix('$') {
        Some(nested) => class
            .name
            .strip_prefix(COMPLETABLE)
            .is_some_and(|rest| rest == nested),
        None => class.name == owner,
    };
    owner_matches && method.name == name && method.descriptor == descriptor
}

/// The internal names of the classes with hooks.
pub fn classes() -> impl Iterator<Item = String> {
    SUBMITS
        .iter()
        .chain(&RUNS)
        .chain([&FORK])
        .map(|(owner, _, _)| match owner.strip_prefix('$') {
            Some(nested) => format!("{COMPLETABLE}{nested}"),
            None => owner.to_string(),
        })
}

/// The methods of `class` to wrap, each with its probe.
pub fn select(class: &ClassFile) -> Vec<(usize, Box<dyn Probe>)> {
    let mut chosen: Vec<(usize, Box<dyn Probe>)> = Vec::new();
    for (index, method) in class.methods.iter().enumerate() {
        if class.wrappable(method).is_err() {
            continue;
        }
        let named = |hooks: &[(&str, &str, &str)]| hooks.iter().any(|h| names(h, class, method));
        if named(&SUBMITS) {
            chosen.push((index, Box::new(SubmitProbe { task: Some(0) })));
        } else if named(&[FORK]) {
            chosen.push((index, Box::new(SubmitProbe { task: None })));
        } else if named(&RUNS) {
            chosen.push((index, Box::new(RestoreProbe)));
        }
    }
    chosen
}

/// The field `class` gets for its tasks' context, if it is a task class.
pub fn field(class: &ClassFile) -> Option<&'static FieldAccess> {
    [FUTURE_TASK, FORK_JOIN_TASK]
        .contains(&class.name.as_str())
        .then_some(&TASK_CONTEXT)
}
