//! The bytecode a wrapper runs around each kind of transaction (and around
//! JDBC and outgoing HTTP calls inside one). It only loads what the helper
//! needs (the site number, the request and response objects, the statement
//! and its SQL, what was thrown) and calls `jvmapm.agent.Hooks`; the helper
//! reads the request itself, so the wrappers have no branches and need no
//! frames beyond the exception handler's. The one thing a wrapper may change
//! is an outgoing call's request, for a client whose requests cannot take
//! another header: the helper hands back a copy carrying it, and a task
//! handed to an executor inside a transaction: the helper hands back what
//! carries the transaction to the thread that runs it.

use crate::classfile::{Code, FieldAccess, Frame, Kind, Pool, Probe, Refusal};

/// The HTTP client libraries whose calls are outgoing calls, by the number
/// the helper knows each by (`Hooks.CLIENTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// `java.net.http.HttpClient`.
    Jdk = 0,
    /// Apache HttpClient 4.
    Apache4 = 1,
    /// Apache HttpClient 5 (classic).
    Apache5 = 2,
    /// OkHttp 3.
    OkHttp = 3,
}

const HOOKS: &str = "jvmapm/agent/Hooks";

/// Pushes an int: a site number, a client's number, a flag.
fn int_constant(pool: &mut Pool, code: &mut Code, value: i32) -> Result<(), Refusal> {
    let index = pool.integer(value)?;
    code.constant(index);
    Ok(())
}

/// Pushes the Throwable in the exceptional exit, null in the normal one.
fn thrown(code: &mut Code, frame: &Frame) {
    match frame.thrown {
        Some(slot) => code.load(Kind::Reference, slot),
        None => code.null(),
    }
}

fn call(pool: &mut Pool, code: &mut Code, name: &str, descriptor: &str) -> Result<(), Refusal> {
    let method = pool.method(HOOKS, name, descriptor)?;
    code.invoke_static(method, descriptor)
}

/// A method named by the `hook=` option: timing and the outcome. The exit
/// passes the site too: called inside a transaction, the method is a step
/// of it, named by its site.
pub struct MethodProbe {
    pub site: i32,
}

impl Probe for MethodProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, _frame: &Frame) -> Result<(), Refusal> {
        int_constant(pool, code, self.site)?;
        call(pool, code, "enter", "(I)J")
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(Kind::Long, frame.token);
        int_constant(pool, code, self.site)?;
        thrown(code, frame);
        call(pool, code, "exit", "(JILjava/lang/Throwable;)V")
    }
}

/// An HTTP request: a servlet's `service`, a filter's `doFilter`, or the
/// JDK HTTP server's filter chain; `request` and `response` are parameter
/// positions (the same one for a JDK HttpExchange).
pub struct HttpProbe {
    pub site: i32,
    pub request: usize,
    pub response: usize,
}

impl Probe for HttpProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        int_constant(pool, code, self.site)?;
        frame.load_param(code, self.request)?;
        call(pool, code, "enterHttp", "(ILjava/lang/Object;)J")
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(Kind::Long, frame.token);
        frame.load_param(code, self.request)?;
        frame.load_param(code, self.response)?;
        thrown(code, frame);
        call(
            pool,
            code,
            "exitHttp",
            "(JLjava/lang/Object;Ljava/lang/Object;Ljava/lang/Throwable;)V",
        )
    }
}

/// A JDBC `Statement`'s execute method: a child span of the open
/// transaction. `sql` is the position of the SQL text parameter, if the
/// method takes one.
pub struct SqlProbe {
    pub site: i32,
    pub sql: Option<usize>,
}

impl Probe for SqlProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        frame.load_receiver(code)?;
        call(pool, code, "enterSql", "(Ljava/lang/Object;)J")
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(Kind::Long, frame.token);
        int_constant(pool, code, self.site)?;
        frame.load_receiver(code)?;
        match self.sql {
            Some(n) => frame.load_param(code, n)?,
            None => code.null(),
        }
        thrown(code, frame);
        call(
            pool,
            code,
            "exitSql",
            "(JILjava/lang/Object;Ljava/lang/String;Ljava/lang/Throwable;)V",
        )
    }
}

/// An outgoing HTTP call of a client library: `request` is the position of
/// the request parameter, `target` that of the host it goes to when the
/// method takes it apart. With `replace`, the request is one the client
/// cannot add a header to: the wrapper passes on the copy the helper makes.
pub struct CallProbe {
    pub site: i32,
    pub client: Client,
    pub target: Option<usize>,
    pub request: usize,
    pub replace: bool,
}

impl Probe for CallProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        int_constant(pool, code, self.site)?;
        int_constant(pool, code, self.client as i32)?;
        match self.target {
            Some(n) => frame.load_param(code, n)?,
            None => code.null(),
        }
        frame.load_param(code, self.request)?;
        call(
            pool,
            code,
            "enterCall",
            "(IILjava/lang/Object;Ljava/lang/Object;)J",
        )?;
        if self.replace {
            code.store(Kind::Long, frame.token);
            code.load(Kind::Long, frame.token);
            frame.load_param(code, self.request)?;
            call(
                pool,
                code,
                "callRequest",
                "(JLjava/lang/Object;)Ljava/lang/Object;",
            )?;
            frame.store_param(pool, code, self.request)?;
            code.load(Kind::Long, frame.token);
        }
        Ok(())
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(Kind::Long, frame.token);
        frame.load_param(code, self.request)?;
        match frame.result {
            Some((Kind::Reference, slot)) => code.load(Kind::Reference, slot),
            _ => code.null(),
        }
        thrown(code, frame);
        call(
            pool,
            code,
            "exitCall",
            "(JLjava/lang/Object;Ljava/lang/Object;Ljava/lang/Throwable;)V",
        )
    }
}

/// A method of the JDK's `HttpURLConnection` (`connect`,
/// `getOutputStream`, `getInputStream`): the helper is told whether the
/// connection is connected yet (a header can be added only before) and,
/// at the exit, the response code it has; `ends` when the method reads the
/// response, which ends the call.
pub struct ConnectionProbe {
    pub site: i32,
    pub ends: bool,
}

impl Probe for ConnectionProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        int_constant(pool, code, self.site)?;
        frame.load_receiver(code)?;
        frame.load_receiver(code)?;
        code.get_field(
            pool.field("java/net/URLConnection", "connected", "Z")?,
            Kind::Int,
        );
        call(pool, code, "enterConnection", "(ILjava/lang/Object;Z)J")
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(Kind::Long, frame.token);
        frame.load_receiver(code)?;
        frame.load_receiver(code)?;
        code.get_field(
            pool.field("java/net/HttpURLConnection", "responseCode", "I")?,
            Kind::Int,
        );
        int_constant(pool, code, i32::from(self.ends))?;
        thrown(code, frame);
        call(
            pool,
            code,
            "exitConnection",
            "(JLjava/lang/Object;IZLjava/lang/Throwable;)V",
        )
    }
}

/// A method that hands a task to an executor: `task` is the position of
/// the task parameter, `None` when the task is `this` (a `ForkJoinTask`'s
/// `fork`). The wrapper passes on what `Hooks.submit` hands back: the task
/// itself, or (for a plain `Runnable` or `Callable` inside a transaction)
/// a helper's task that carries the transaction.
pub struct SubmitProbe {
    pub task: Option<usize>,
}

impl Probe for SubmitProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        match self.task {
            Some(n) => frame.load_param(code, n)?,
            None => frame.load_receiver(code)?,
        }
        call(
            pool,
            code,
            "submit",
            "(Ljava/lang/Object;)Ljava/lang/Object;",
        )?;
        match self.task {
            Some(n) => frame.store_param(pool, code, n)?,
            None => code.pop(),
        }
        code.long_zero();
        Ok(())
    }

    fn exit(&self, _pool: &mut Pool, _code: &mut Code, _frame: &Frame) -> Result<(), Refusal> {
        Ok(())
    }
}

/// A task's run (`this` is the task): the transaction the task carries is
/// open on the running thread from entry to exit (see [`TASK_CONTEXT`]).
pub struct RestoreProbe;

impl Probe for RestoreProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        frame.load_receiver(code)?;
        call(pool, code, "restore", "(Ljava/lang/Object;)J")
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(Kind::Long, frame.token);
        call(pool, code, "leave", "(J)V")
    }
}

/// A `Connection`'s `prepareStatement` or `prepareCall`: hands the statement
/// it returns and the SQL text it was given to the helper, which keeps the
/// text in the statement (see [`STATEMENT_SQL`]). Runs inside or outside a
/// transaction (statements are often prepared ahead); nothing after a throw.
pub struct PrepareProbe;

impl Probe for PrepareProbe {
    fn enter(&self, _pool: &mut Pool, code: &mut Code, _frame: &Frame) -> Result<(), Refusal> {
        code.long_zero();
        Ok(())
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        let Some((Kind::Reference, slot)) = frame.result else {
            return Ok(());
        };
        code.load(Kind::Reference, slot);
        frame.load_param(code, 0)?;
        call(
            pool,
            code,
            "prepared",
            "(Ljava/lang/Object;Ljava/lang/String;)V",
        )
    }
}

/// The field every JDBC statement class gets for the SQL text the
/// application prepared it with (read back by `Hooks.exitSql`).
pub const STATEMENT_SQL: FieldAccess = FieldAccess {
    interface: "jvmapm/agent/Hooks$SqlText",
    field: "jvmapm$sql",
    descriptor: "Ljava/lang/String;",
    getter: "jvmapm$sql",
    setter: "jvmapm$setSql",
};

/// The field `FutureTask` and `ForkJoinTask` get for the context of the
/// transaction their task was submitted in (set by `Hooks.submit`, read by
/// `Hooks.restore`).
pub const TASK_CONTEXT: FieldAccess = FieldAccess {
    interface: "jvmapm/agent/Hooks$Carrier",
    field: "jvmapm$context",
    descriptor: "Ljava/lang/Object;",
    getter: "jvmapm$context",
    setter: "jvmapm$setContext",
};
