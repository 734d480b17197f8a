//! The bytecode a wrapper runs around each kind of transaction: what it
//! hands `Hooks.enter` (the site number and an incoming `traceparent`) and
//! `Hooks.exit` (the request's method, path, route and status, and what was
//! thrown). The values are read in the instrumented class itself, where the
//! framework's types are visible; the helper sees only strings and ints.

use crate::classfile::{Code, Frame, Pool, Probe, Refusal};

const HOOKS: &str = "jvmapm/agent/Hooks";
const ENTER: &str = "(ILjava/lang/String;)J";
const EXIT: &str =
    "(JLjava/lang/String;Ljava/lang/String;Ljava/lang/String;ILjava/lang/Throwable;)V";

/// Pushes the site number.
fn site(pool: &mut Pool, code: &mut Code, site: i32) -> Result<(), Refusal> {
    let index = pool.integer(site)?;
    code.constant(index);
    Ok(())
}

/// Pushes the Throwable in the exceptional exit, null in the normal one.
fn thrown(code: &mut Code, frame: &Frame) {
    match frame.thrown {
        Some(slot) => code.load(crate::classfile::Kind::Reference, slot),
        None => code.null(),
    }
}

/// A method named by the `hook=` option: nothing but timing and the outcome.
pub struct MethodProbe {
    pub site: i32,
}

impl Probe for MethodProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, _frame: &Frame) -> Result<(), Refusal> {
        site(pool, code, self.site)?;
        code.null();
        let enter = pool.method(HOOKS, "enter", ENTER)?;
        code.invoke_static(enter, ENTER)
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        code.load(crate::classfile::Kind::Long, frame.token);
        code.null();
        code.null();
        code.null();
        code.minus_one();
        thrown(code, frame);
        let exit = pool.method(HOOKS, "exit", EXIT)?;
        code.invoke_static(exit, EXIT)
    }
}

/// `com.sun.net.httpserver.Filter$Chain.doFilter(HttpExchange)`: the JDK's
/// HTTP server runs every exchange through it (user filters, then the
/// handler), so its outermost call is the whole exchange.
pub struct HttpExchangeProbe {
    pub site: i32,
}

const EXCHANGE: &str = "com/sun/net/httpserver/HttpExchange";

impl Probe for HttpExchangeProbe {
    fn enter(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        site(pool, code, self.site)?;
        frame.load_param(code, 0)?;
        let headers = pool.method(
            EXCHANGE,
            "getRequestHeaders",
            "()Lcom/sun/net/httpserver/Headers;",
        )?;
        code.invoke_virtual(headers, "()Lcom/sun/net/httpserver/Headers;")?;
        let name = pool.string("traceparent")?;
        code.constant(name);
        let first = pool.method(
            "com/sun/net/httpserver/Headers",
            "getFirst",
            "(Ljava/lang/String;)Ljava/lang/String;",
        )?;
        code.invoke_virtual(first, "(Ljava/lang/String;)Ljava/lang/String;")?;
        let enter = pool.method(HOOKS, "enter", ENTER)?;
        code.invoke_static(enter, ENTER)
    }

    fn exit(&self, pool: &mut Pool, code: &mut Code, frame: &Frame) -> Result<(), Refusal> {
        const STRING: &str = "()Ljava/lang/String;";
        code.load(crate::classfile::Kind::Long, frame.token);
        frame.load_param(code, 0)?;
        let method = pool.method(EXCHANGE, "getRequestMethod", STRING)?;
        code.invoke_virtual(method, STRING)?;
        frame.load_param(code, 0)?;
        let uri = pool.method(EXCHANGE, "getRequestURI", "()Ljava/net/URI;")?;
        code.invoke_virtual(uri, "()Ljava/net/URI;")?;
        let path = pool.method("java/net/URI", "getPath", STRING)?;
        code.invoke_virtual(path, STRING)?;
        frame.load_param(code, 0)?;
        let context = pool.method(
            EXCHANGE,
            "getHttpContext",
            "()Lcom/sun/net/httpserver/HttpContext;",
        )?;
        code.invoke_virtual(context, "()Lcom/sun/net/httpserver/HttpContext;")?;
        let route = pool.method("com/sun/net/httpserver/HttpContext", "getPath", STRING)?;
        code.invoke_virtual(route, STRING)?;
        frame.load_param(code, 0)?;
        let status = pool.method(EXCHANGE, "getResponseCode", "()I")?;
        code.invoke_virtual(status, "()I")?;
        thrown(code, frame);
        let exit = pool.method(HOOKS, "exit", EXIT)?;
        code.invoke_static(exit, EXIT)
    }
}
