//! Instrumentation at class load: which classes and methods make
//! transactions (and the calls inside them: JDBC, outgoing HTTP; the JDK
//! executors that carry them to other threads are `executors`), the
//! ClassFileLoadHook that wraps them, and the helper class
//! (`jvmapm.agent.Hooks`) the wrappers call, defined in the boot loader with
//! its natives bound. The hook returns at once for every class not named
//! here; for a class it cannot rewrite it hands back nothing (the JVM keeps
//! the original bytes) and says so once.

use std::collections::HashSet;
use std::ffi::{c_char, CStr};
use std::sync::OnceLock;

use crate::classfile::{self, ClassFile, Method, Probe, Refusal};
use crate::executors;
use crate::guard;
use crate::jni::{Global, JInt, JObject, Jni, JniResult};
use crate::jvmti::{JniEnvPtr, Jvmti, RawEnv};
use crate::log::line;
use crate::options::{LogLevel, MethodHook};
use crate::probe::{
    CallProbe, Client, ConnectionProbe, HttpProbe, MethodProbe, PrepareProbe, SqlProbe,
    STATEMENT_SQL,
};
use crate::transaction::{self, Site, SiteKind};

/// An HTTP entry point: a class, a method and descriptor, and which
/// parameters are the request and the response.
struct HttpEntry {
    class: &'static str,
    method: &'static str,
    descriptor: &'static str,
    request: usize,
    response: usize,
}

/// The JDK HTTP server's filter chain (every exchange passes through it:
/// user filters, then the handler) and the servlet API's `service`, in both
/// the jakarta and the javax namespaces.
const HTTP_ENTRIES: [HttpEntry; 3] = [
    HttpEntry {
        class: "com/sun/net/httpserver/Filter$Chain",
        method: "doFilter",
        descriptor: "(Lcom/sun/net/httpserver/HttpExchange;)V",
        request: 0,
        response: 0,
    },
    HttpEntry {
        class: "jakarta/servlet/http/HttpServlet",
        method: "service",
        descriptor: "(Ljakarta/servlet/ServletRequest;Ljakarta/servlet/ServletResponse;)V",
        request: 0,
        response: 1,
    },
    HttpEntry {
        class: "javax/servlet/http/HttpServlet",
        method: "service",
        descriptor: "(Ljavax/servlet/ServletRequest;Ljavax/servlet/ServletResponse;)V",
        request: 0,
        response: 1,
    },
];

/// An outgoing HTTP call of a client library: the one method every call of
/// the library passes through once (the outermost, where a call nests in
/// another of its own methods), and where its request and host are.
struct OutgoingEntry {
    class: &'static str,
    method: &'static str,
    descriptor: &'static str,
    client: Client,
    target: Option<usize>,
    request: usize,
    /// The request cannot take another header: the call sends a copy.
    replace: bool,
}

/// Apache HttpClient's `doExecute`, which every `execute` of its clients
/// calls once: for 4.x and for 5.x (classic), the client that
/// `HttpClients.custom().build()` makes and the minimal one.
const fn apache(class: &'static str, client: Client) -> OutgoingEntry {
    OutgoingEntry {
        class,
        method: "doExecute",
        descriptor: match client {
            Client::Apache4 => "(Lorg/apache/http/HttpHost;Lorg/apache/http/HttpRequest;Lorg/apache/http/protocol/HttpContext;)Lorg/apache/http/client/methods/CloseableHttpResponse;",
            _ => "(Lorg/apache/hc/core5/http/HttpHost;Lorg/apache/hc/core5/http/ClassicHttpRequest;Lorg/apache/hc/core5/http/protocol/HttpContext;)Lorg/apache/hc/client5/http/impl/classic/CloseableHttpResponse;",
        },
        client,
        target: Some(0),
        request: 1,
        replace: false,
    }
}

/// The outgoing calls of client libraries. `java.net.http`: the private
/// `sendAsync` that `send` and both public `sendAsync` call (the call ends
/// when its future completes). OkHttp 3: the interceptor chain's
/// `proceed(Request)`, whose outermost call on a thread is a whole call
/// (`execute`, or `enqueue`'s on the dispatcher's thread).
const OUTGOING: [OutgoingEntry; 6] = [
    OutgoingEntry {
        class: "jdk/internal/net/http/HttpClientImpl",
        method: "sendAsync",
        descriptor: "(Ljava/net/http/HttpRequest;Ljava/net/http/HttpResponse$BodyHandler;Ljava/net/http/HttpResponse$PushPromiseHandler;Ljava/util/concurrent/Executor;)Ljava/util/concurrent/CompletableFuture;",
        client: Client::Jdk,
        target: None,
        request: 0,
        replace: true,
    },
    apache("org/apache/http/impl/client/InternalHttpClient", Client::Apache4),
    apache("org/apache/http/impl/client/MinimalHttpClient", Client::Apache4),
    apache("org/apache/hc/client5/http/impl/classic/InternalHttpClient", Client::Apache5),
    apache("org/apache/hc/client5/http/impl/classic/MinimalHttpClient", Client::Apache5),
    OutgoingEntry {
        class: "okhttp3/internal/http/RealInterceptorChain",
        method: "proceed",
        descriptor: "(Lokhttp3/Request;)Lokhttp3/Response;",
        client: Client::OkHttp,
        target: None,
        request: 0,
        replace: true,
    },
];

/// The JDK's `HttpURLConnection` (also under HTTPS, whose connection
/// delegates to one): a call begins in the first of these methods on a
/// connection and ends when `getInputStream` (which `getResponseCode`
/// calls) has the response, or when any of them throws.
const URL_CONNECTION: &str = "sun/net/www/protocol/http/HttpURLConnection";
const URL_CONNECTION_METHODS: [(&str, &str, bool); 3] = [
    ("connect", "()V", false),
    ("getOutputStream", "()Ljava/io/OutputStream;", false),
    ("getInputStream", "()Ljava/io/InputStream;", true),
];

/// Servlet filters: every `doFilter(request, response, chain)` with code,
/// wherever it sits in the filter's hierarchy (a filter extending
/// `GenericFilter`, `HttpFilter` or a framework's base filter declares no
/// `Filter` of its own), is wrapped; the outermost entry on a thread makes
/// the transaction. No other method has this name and descriptor.
const FILTER_DESCRIPTORS: [&str; 2] = [
    "(Ljakarta/servlet/ServletRequest;Ljakarta/servlet/ServletResponse;Ljakarta/servlet/FilterChain;)V",
    "(Ljavax/servlet/ServletRequest;Ljavax/servlet/ServletResponse;Ljavax/servlet/FilterChain;)V",
];

/// JDBC statements: the execute methods, recognised by name and shape in
/// any class (a driver's statement often declares no `java.sql` interface
/// of its own: pgjdbc's `PgStatement` implements its `BaseStatement`); the
/// helper measures a call only when its receiver is a `java.sql.Statement`.
const EXECUTE_METHODS: [&str; 6] = [
    "execute",
    "executeQuery",
    "executeUpdate",
    "executeLargeUpdate",
    "executeBatch",
    "executeLargeBatch",
];

/// Whether `method` has the shape of a JDBC execute method: public, of an
/// instance, no parameters or the SQL text first, returning a value.
fn is_execute(method: &Method) -> bool {
    method.is_public_instance()
        && EXECUTE_METHODS.contains(&method.name.as_str())
        && (method.descriptor.starts_with("()")
            || method.descriptor.starts_with("(Ljava/lang/String;"))
        && !method.descriptor.ends_with(")V")
}

/// JDBC connections: the SQL text given to `prepareStatement` and
/// `prepareCall` (recognised by name and shape, like the execute methods)
/// is kept in the statement they return.
const PREPARE_METHODS: [&str; 2] = ["prepareStatement", "prepareCall"];

fn is_prepare(method: &Method) -> bool {
    method.is_public_instance()
        && PREPARE_METHODS.contains(&method.name.as_str())
        && method.descriptor.starts_with("(Ljava/lang/String;")
        && method.descriptor.contains(")L")
}

/// Bytes that every class implementing a servlet `Filter` or a JDBC
/// statement or connection holds in its constant pool: a cheap test before
/// parsing a class that is not named as a target.
const MARKS: [&[u8]; 2] = [b"servlet/Filter", b"java/sql/"];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a class holds JDBC execute methods: it gets the field for the
/// SQL text its statements were prepared with.
fn is_statement(class: &ClassFile) -> bool {
    !class.is_interface() && class.methods.iter().any(is_execute)
}

/// What the hook instruments, fixed when the agent starts.
pub struct Targets {
    /// Internal names of the classes named as targets (the fast filter).
    classes: HashSet<Vec<u8>>,
    hooks: Vec<MethodHook>,
}

impl Targets {
    pub fn new(hooks: &[MethodHook]) -> Targets {
        let mut classes: HashSet<Vec<u8>> = hooks
            .iter()
            .map(|h| h.class.replace('.', "/").into_bytes())
            .collect();
        classes.extend(HTTP_ENTRIES.iter().map(|e| e.class.as_bytes().to_vec()));
        classes.extend(OUTGOING.iter().map(|e| e.class.as_bytes().to_vec()));
        classes.insert(URL_CONNECTION.as_bytes().to_vec());
        classes.extend(executors::classes().map(String::into_bytes));
        Targets {
            classes,
            hooks: hooks.to_vec(),
        }
    }

    /// Whether a class may hold a target: it is named as one, or it may
    /// implement a servlet filter or a JDBC statement.
    fn worth_parsing(&self, name: &[u8], bytes: &[u8]) -> bool {
        self.classes.contains(name) || MARKS.iter().any(|mark| contains(bytes, mark))
    }

    /// The methods of `class` to wrap, each with its probe.
    fn select(&self, class: &ClassFile) -> Vec<(usize, Box<dyn Probe>)> {
        let handing_over = executors::select(class);
        if !handing_over.is_empty() {
            return handing_over;
        }
        let dotted = class.name.replace('/', ".");
        let mut chosen: Vec<(usize, Box<dyn Probe>)> = Vec::new();
        for (index, method) in class.methods.iter().enumerate() {
            let signature = (method.name.as_str(), method.descriptor.as_str());
            let http = HTTP_ENTRIES
                .iter()
                .find(|e| e.class == class.name && (e.method, e.descriptor) == signature)
                .map(|e| (e.request, e.response))
                .or_else(|| {
                    (method.name == "doFilter"
                        && FILTER_DESCRIPTORS.contains(&signature.1)
                        && !method.is_static())
                    .then_some((0, 1))
                });
            if let Some(probe) = class
                .wrappable(method)
                .ok()
                .and_then(|()| outgoing(class, method, &dotted))
            {
                chosen.push((index, probe));
                continue;
            }
            let statement = is_execute(method);
            let prepare = is_prepare(method);
            let hooked = self
                .hooks
                .iter()
                .any(|h| h.class == dotted && (h.method == "*" || h.method == method.name));
            if !(http.is_some() || statement || prepare || hooked)
                || class.wrappable(method).is_err()
            {
                continue;
            }
            if prepare && !hooked {
                chosen.push((index, Box::new(PrepareProbe)));
                continue;
            }
            let kind = if http.is_some() {
                SiteKind::Http
            } else if statement {
                SiteKind::Sql
            } else {
                SiteKind::Method
            };
            let Some(site) = transaction::register(Site {
                kind,
                class: dotted.clone(),
                method: method.name.clone(),
            }) else {
                continue;
            };
            let probe: Box<dyn Probe> = match (kind, http) {
                (SiteKind::Http, Some((request, response))) => Box::new(HttpProbe {
                    site,
                    request,
                    response,
                }),
                (SiteKind::Sql, _) => Box::new(SqlProbe {
                    site,
                    sql: method
                        .descriptor
                        .starts_with("(Ljava/lang/String;")
                        .then_some(0),
                }),
                _ => Box::new(MethodProbe { site }),
            };
            chosen.push((index, probe));
        }
        chosen
    }
}

/// The probe of `method` when it is an outgoing call's (its site
/// registered), else `None`.
fn outgoing(class: &ClassFile, method: &Method, dotted: &str) -> Option<Box<dyn Probe>> {
    let signature = (method.name.as_str(), method.descriptor.as_str());
    let register = || {
        transaction::register(Site {
            kind: SiteKind::Outgoing,
            class: dotted.to_string(),
            method: method.name.clone(),
        })
    };
    if class.name == URL_CONNECTION {
        let &(_, _, ends) = URL_CONNECTION_METHODS
            .iter()
            .find(|(name, descriptor, _)| (*name, *descriptor) == signature)?;
        return Some(Box::new(ConnectionProbe {
            site: register()?,
            ends,
        }));
    }
    let entry = OUTGOING
        .iter()
        .find(|e| e.class == class.name && (e.method, e.descriptor) == signature)?;
    Some(Box::new(CallProbe {
        site: register()?,
        client: entry.client,
        target: entry.target,
        request: entry.request,
        replace: entry.replace,
    }))
}

/// What the hook needs once the helper exists.
struct Ready {
    jvmti: Jvmti,
    targets: Targets,
    /// `jvmapm.agent.Hooks`, for the sampler's calls into it.
    hooks: Global,
    /// The helper's module (the boot loader's unnamed module): classes in
    /// named modules must be made to read it.
    hooks_module: Global,
}

static READY: OnceLock<Ready> = OnceLock::new();

/// The helper's classes (compiled by `native-agent/java/build.sh`), the
/// class with the natives first, and each superclass before its subclasses.
const HELPER_CLASSES: [(&CStr, &[u8]); 18] = [
    (
        c"jvmapm/agent/Hooks",
        include_bytes!("../java/classes/Hooks.class"),
    ),
    (
        c"jvmapm/agent/Hooks$1",
        include_bytes!("../java/classes/Hooks$1.class"),
    ),
    (
        c"jvmapm/agent/Hooks$State",
        include_bytes!("../java/classes/Hooks$State.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Transaction",
        include_bytes!("../java/classes/Hooks$Transaction.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Snapshot",
        include_bytes!("../java/classes/Hooks$Snapshot.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Call",
        include_bytes!("../java/classes/Hooks$Call.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Carrier",
        include_bytes!("../java/classes/Hooks$Carrier.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Task",
        include_bytes!("../java/classes/Hooks$Task.class"),
    ),
    (
        c"jvmapm/agent/Hooks$SqlText",
        include_bytes!("../java/classes/Hooks$SqlText.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Http",
        include_bytes!("../java/classes/Hooks$Http.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Http$1",
        include_bytes!("../java/classes/Hooks$Http$1.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Http$2",
        include_bytes!("../java/classes/Hooks$Http$2.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Servlet",
        include_bytes!("../java/classes/Hooks$Servlet.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Exchange",
        include_bytes!("../java/classes/Hooks$Exchange.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Client",
        include_bytes!("../java/classes/Hooks$Client.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Client$Readers",
        include_bytes!("../java/classes/Hooks$Client$Readers.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Copying",
        include_bytes!("../java/classes/Hooks$Copying.class"),
    ),
    (
        c"jvmapm/agent/Hooks$Apache",
        include_bytes!("../java/classes/Hooks$Apache.class"),
    ),
];

/// Defines the helper in the boot loader and binds its natives; from then
/// on the hook rewrites target classes. Called at VMInit (or on attach).
pub fn install(jni: &Jni, jvmti: Jvmti, targets: Targets) -> JniResult<()> {
    jni.with_local_frame(32, |jni| {
        let mut defined = Vec::new();
        for (name, bytes) in HELPER_CLASSES {
            defined.push(jni.define_boot_class(name, bytes)?);
        }
        let hooks = defined[0];
        let mut natives = transaction::natives().to_vec();
        natives.extend(crate::gc::natives());
        jni.register_natives(hooks, &natives)?;
        let class = jni.class(c"java/lang/Class")?;
        let get_module = jni.method(
            class,
            c"getModule",
            c"()Ljava/lang/Module;",
            "Class.getModule",
        )?;
        let module = jni.call_object(hooks.get(), get_module, &[])?;
        let hooks_module = jni.global(module, "the helper's module")?;
        let _ = READY.set(Ready {
            jvmti,
            targets,
            hooks,
            hooks_module,
        });
        Ok(())
    })
}

/// The helper class, once installed.
pub fn hooks_class() -> Option<Global> {
    READY.get().map(|ready| ready.hooks)
}

/// JVMTI ClassFileLoadHook.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn on_class_file_load(
    _jvmti: *mut RawEnv,
    _jni: JniEnvPtr,
    class_being_redefined: JObject,
    loader: JObject,
    name: *const c_char,
    _protection_domain: JObject,
    length: JInt,
    data: *const u8,
    new_length: *mut JInt,
    new_data: *mut *mut u8,
) {
    if name.is_null() || data.is_null() || !class_being_redefined.is_null() {
        return;
    }
    let Some(ready) = READY.get() else { return };
    // SAFETY: the JVM passes the class's NUL-terminated name and its
    // `length` bytes, both alive and unchanged for the whole callback.
    let (name, original) = unsafe {
        (
            CStr::from_ptr(name),
            std::slice::from_raw_parts(data, length.max(0) as usize),
        )
    };
    if !ready.targets.worth_parsing(name.to_bytes(), original) {
        return;
    }
    guard::guarded("ClassFileLoadHook", || {
        let class_name = name.to_string_lossy();
        match rewrite(ready, loader, name, original) {
            Ok(Some(bytes)) => match ready.jvmti.allocate(bytes.len()) {
                Ok(memory) => {
                    // SAFETY: `memory` is a fresh JVMTI allocation of
                    // `bytes.len()` bytes, apart from `bytes`; the JVM passes
                    // `new_length` and `new_data` to write the new class
                    // to, and takes the memory over.
                    unsafe {
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), memory, bytes.len());
                        *new_length = bytes.len() as JInt;
                        *new_data = memory;
                    }
                    line(LogLevel::Debug, &format!("instrumented {class_name}"));
                }
                Err(e) => line(
                    LogLevel::Warn,
                    &format!(
                        "left {class_name} as it was: no JVMTI memory (error {})",
                        e.0
                    ),
                ),
            },
            Ok(None) => {}
            Err(why) => line(
                LogLevel::Warn,
                &format!("left {class_name} as it was: {why}"),
            ),
        }
    });
}

/// The rewritten class, or `None` when nothing in it is a target.
fn rewrite(
    ready: &Ready,
    loader: JObject,
    name: &CStr,
    original: &[u8],
) -> Result<Option<Vec<u8>>, Refusal> {
    let class = ClassFile::parse(original)?;
    let chosen = ready.targets.select(&class);
    let field = is_statement(&class)
        .then_some(&STATEMENT_SQL)
        .or_else(|| executors::field(&class));
    if chosen.is_empty() && field.is_none() {
        return Ok(None);
    }
    // A class in a named module reads only what its module reads: let it
    // read the helper's (unnamed) module.
    let name = name.to_bytes();
    let package = name[..name.iter().rposition(|&b| b == b'/').unwrap_or(0)].to_vec();
    let package =
        std::ffi::CString::new(package).map_err(|_| Refusal("bad package name".into()))?;
    let module = ready
        .jvmti
        .named_module(loader, &package)
        .map_err(|e| Refusal(format!("GetNamedModule failed (JVMTI error {})", e.0)))?;
    if !module.is_null() {
        ready
            .jvmti
            .add_module_reads(module, ready.hooks_module.get())
            .map_err(|e| Refusal(format!("AddModuleReads failed (JVMTI error {})", e.0)))?;
    }
    let targets: Vec<(usize, &dyn Probe)> = chosen.iter().map(|(i, p)| (*i, p.as_ref())).collect();
    classfile::rewrite(&class, &targets, field).map(Some)
}
