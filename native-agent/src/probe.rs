//! The bytecode a wrapper runs around each kind of transaction (and around
//! JDBC calls inside one). It only loads what the helper needs (the site
//! number, the request and response objects, the statement and its SQL,
//! what was thrown) and calls `jvmapm.agent.Hooks`; the helper reads
//! the request itself, so the wrappers have no branches and need no frames
//! beyond the exception handler's.

use crate::classfile::{Code, FieldAccess, Frame, Kind, Pool, Probe, Refusal};

const HOOKS: &str = "jvmapm/agent/Hooks";

/// Pushes the site number.
fn site(pool: &mut Pool, code: &mut Code, site: i32) -> Result<(), Refusal> {
    let index = pool.integer(site)?;
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
        site(pool, code, self.site)?;
        call(pool, code, "enter", "(I)J")
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(Kind::Long, frame.token);
        site(pool, code, self.site)?;
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
        site(pool, code, self.site)?;
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
        site(pool, code, self.site)?;
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
