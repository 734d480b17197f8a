package jvmapm.agent;

import com.sun.management.GarbageCollectionNotificationInfo;
import com.sun.management.GcInfo;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.util.concurrent.ConcurrentHashMap;
import javax.management.NotificationEmitter;
import javax.management.NotificationListener;
import javax.management.openmbean.CompositeData;

/**
 * The helper that instrumented methods call. The agent defines it in the
 * boot loader at VMInit and binds its natives with RegisterNatives, so every
 * class loader finds it. It keeps "is a transaction open on this thread" in
 * a ThreadLocal, which follows virtual threads across carriers, so only the
 * outermost instrumented entry on a thread makes a transaction. One native
 * call at entry (it takes the clocks) and one at exit. A hooked method
 * entered inside a transaction is a step of it: its start is taken here and
 * one native call at its exit writes it.
 *
 * HTTP requests arrive as plain objects (a servlet request and response, or
 * a JDK HttpExchange as both): this class is in the boot loader and cannot
 * link against a web application's servlet API, so it reads them through
 * method handles looked up once per request class.
 *
 * Compiled into Hooks.class by build.sh next to this file; the agent embeds
 * that class file.
 */
public final class Hooks {
    /** What the helper keeps per thread. */
    private static final class State {
        /** The open transaction's token; 0 when none. */
        long token;
        /** True while a JDBC statement runs inside it (a driver's statements that call each other make one SQL call). */
        boolean inSql;
        /** The thread name the agent has, so it is sent once (and again after a rename). */
        String nameSent;
        /** Steps entered in the open transaction, counted on past {@link #MAX_STEPS}. */
        long steps;
    }

    private static final ThreadLocal<State> STATE = ThreadLocal.withInitial(State::new);

    /**
     * Marks what enter returns for a step: its start (System.nanoTime, which
     * on Linux counts from boot and is never negative) with the sign bit
     * set, never a transaction's token (those are positive).
     */
    private static final long STEP = Long.MIN_VALUE;

    /**
     * Steps a transaction sends; the ones after are only counted here, so a
     * hooked method called in a tight loop does not flood the agent's rings,
     * and its calls past the bound cost no more than the count.
     */
    private static final long MAX_STEPS = 256;

    /**
     * The agent's number for each string a transaction ends with (HTTP
     * method, route, exception class), so its record carries numbers, not
     * text. Filled as strings are first seen; bounded by the agent's table,
     * which gives 0 once full.
     */
    private static final ConcurrentHashMap<String, Integer> IDS = new ConcurrentHashMap<>();

    /** Set once the agent's table of strings is full: new strings get 0 without asking. */
    private static volatile boolean idsFull;

    /**
     * Whether a class is a java.sql.Statement (this class, in the boot
     * loader, cannot name the java.sql module's types: it asks the class's
     * own loader).
     */
    private static final ClassValue<Boolean> IS_STATEMENT = new ClassValue<>() {
        @Override
        protected Boolean computeValue(Class<?> type) {
            ClassLoader loader = type.getClassLoader();
            try {
                Class<?> statement = Class.forName("java.sql.Statement", false,
                        loader == null ? ClassLoader.getPlatformClassLoader() : loader);
                return statement.isAssignableFrom(type);
            } catch (ClassNotFoundException | LinkageError notJdbc) {
                return false;
            }
        }
    };

    private Hooks() {
    }

    /**
     * Entry of a hooked method of the given site; returns what to hand to
     * exit: the token of the transaction it opens, its start tagged
     * {@link #STEP} when a transaction is already open on this thread, or 0
     * when the agent is not taking any (or the transaction has its
     * {@link #MAX_STEPS}).
     */
    public static long enter(int site) {
        State state = STATE.get();
        if (state.token != 0L) {
            return state.steps++ < MAX_STEPS ? System.nanoTime() | STEP : 0L;
        }
        return open(state, site, null);
    }

    /**
     * Entry of an HTTP transaction: the request carries the traceparent. A
     * servlet request dispatched again by its container (to an error page,
     * or after async processing) makes no transaction of its own: its first
     * dispatch already made the point.
     */
    public static long enterHttp(int site, Object request) {
        State state = STATE.get();
        if (state.token != 0L) {
            return 0L;
        }
        String traceparent = null;
        try {
            Http http = Http.of(request);
            if (http.redispatched(request)) {
                return 0L;
            }
            traceparent = http.header(request, "traceparent");
        } catch (Throwable ignored) {
            // An unknown request type: no incoming trace.
        }
        return open(state, site, traceparent);
    }

    private static long open(State state, int site, String traceparent) {
        long token = begin(site, Thread.currentThread().getId(), traceparent);
        state.token = token;
        state.steps = 0;
        return token;
    }

    /**
     * Ends the open transaction of this thread: sends the thread's name
     * first if the agent does not have it yet.
     */
    private static void close(long token, int status, String method, String route, Throwable error, String path) {
        State state = STATE.get();
        state.token = 0L;
        state.inSql = false;
        Thread thread = Thread.currentThread();
        String name = thread.getName();
        if (name != state.nameSent && threadName(thread.getId(), name)) {
            state.nameSent = name;
        }
        int routeId = id(route);
        int stepsTruncated = (int) Math.min(Integer.MAX_VALUE, Math.max(0L, state.steps - MAX_STEPS));
        end(token, status, id(method), routeId, id(errorType(error)), stepsTruncated,
                routeId != 0 && path != null && path.equals(route), path);
    }

    /** The agent's number for a string; 0 for null or when its table is full. */
    private static int id(String text) {
        if (text == null) {
            return 0;
        }
        Integer known = IDS.get(text);
        if (known != null) {
            return known;
        }
        if (idsFull) {
            return 0;
        }
        int id = intern(text);
        if (id == 0) {
            idsFull = true;
            return 0;
        }
        IDS.putIfAbsent(text, id);
        return id;
    }

    /**
     * Entry of a method shaped like a JDBC statement's execute: measured
     * only inside a transaction, not inside another statement call, and when
     * the receiver is a java.sql.Statement. Returns the start time
     * (System.nanoTime), or 0 when this call is not measured.
     */
    public static long enterSql(Object statement) {
        State state = STATE.get();
        if (state.token == 0L || state.inSql || !IS_STATEMENT.get(statement.getClass())) {
            return 0L;
        }
        state.inSql = true;
        long start = System.nanoTime();
        return start == 0L ? 1L : start;
    }

    /**
     * Exit of a JDBC statement's execute method: sql is the statement text
     * when the method took it, else the text the application prepared the
     * statement with, else the statement's own description (what a driver
     * says of a statement prepared before the agent came in), else nothing.
     */
    public static void exitSql(long start, int site, Object statement, String sql, Throwable error) {
        if (start == 0L) {
            return;
        }
        State state = STATE.get();
        state.inSql = false;
        String text = sql;
        if (text == null && statement instanceof SqlText prepared) {
            text = prepared.jvmapm$sql();
        }
        if (text == null) {
            try {
                text = String.valueOf(statement);
                if (text.startsWith(statement.getClass().getName() + "@")) {
                    text = null; // Object's own toString: nothing of the SQL
                }
            } catch (Throwable ignored) {
                text = null;
            }
        }
        endSql(state.token, site, text, start, id(errorType(error)));
    }

    /**
     * Exit of a Connection's prepareStatement or prepareCall: the statement
     * keeps the SQL text the application passed, which its execute methods
     * then report (a driver's own description of a prepared statement is
     * often its rewritten form, e.g. pgjdbc's "(?::int4)").
     */
    public static void prepared(Object statement, String sql) {
        if (statement instanceof SqlText prepared) {
            prepared.jvmapm$setSql(sql);
        }
    }

    /**
     * What the agent adds to every JDBC statement class when it loads: a
     * field for the SQL text the statement was prepared with.
     */
    public interface SqlText {
        String jvmapm$sql();

        void jvmapm$setSql(String sql);
    }

    /**
     * Exit of a hooked method of the given site: ends its transaction, or
     * the step it was (a negative token); error is what it throws, or null.
     */
    public static void exit(long token, int site, Throwable error) {
        if (token == 0L) {
            return;
        }
        if (token < 0L) {
            endStep(STATE.get().token, site, token & ~STEP, id(errorType(error)));
            return;
        }
        close(token, -1, null, null, error, null);
    }

    /** Exit of an HTTP transaction. */
    public static void exitHttp(long token, Object request, Object response, Throwable error) {
        if (token == 0L) {
            return;
        }
        String method = null;
        String path = null;
        String route = null;
        int status = -1;
        try {
            Http http = Http.of(request);
            method = http.method(request);
            path = http.path(request);
            status = http.status(response, error);
            route = http.route(request, status, path);
        } catch (Throwable ignored) {
            // An unknown request type: the transaction is still counted.
        }
        close(token, status, method, route, error, path);
    }

    /**
     * The stack of the platform thread with this id, one "at frame" per
     * line, or null when it is gone (or is a virtual thread, which
     * getAllStackTraces does not list). Called by the agent's sampler for a
     * stuck transaction.
     */
    public static String stackOf(long threadId) {
        for (var entry : Thread.getAllStackTraces().entrySet()) {
            if (entry.getKey().getId() == threadId) {
                StringBuilder stack = new StringBuilder();
                for (StackTraceElement frame : entry.getValue()) {
                    stack.append("at ").append(frame).append('\n');
                }
                return stack.toString();
            }
        }
        return null;
    }

    /**
     * Asks every garbage collector's bean to tell the agent of each
     * collection it counts: its collector, action, start and end (Unix ms),
     * so the agent names each JVMTI pause by the collection it was. Called
     * once by the agent's sampler thread; returns how many collectors
     * listen. The beans come from ManagementFactory's getter, which does
     * not start the platform MBean server.
     */
    public static int watchCollections() {
        long vmStart = ManagementFactory.getRuntimeMXBean().getStartTime();
        NotificationListener listener = (notification, handback) -> {
            if (!GarbageCollectionNotificationInfo.GARBAGE_COLLECTION_NOTIFICATION.equals(notification.getType())) {
                return;
            }
            GarbageCollectionNotificationInfo info =
                    GarbageCollectionNotificationInfo.from((CompositeData) notification.getUserData());
            GcInfo gc = info.getGcInfo();
            collection(info.getGcName(), info.getGcAction(), vmStart + gc.getStartTime(), vmStart + gc.getEndTime());
        };
        int watched = 0;
        for (GarbageCollectorMXBean bean : ManagementFactory.getGarbageCollectorMXBeans()) {
            if (bean instanceof NotificationEmitter emitter) {
                emitter.addNotificationListener(listener, null, null);
                watched++;
            }
        }
        return watched;
    }

    private static String errorType(Throwable error) {
        return error == null ? null : error.getClass().getName();
    }

    /** How to read one kind of HTTP request: a servlet's or a JDK HttpExchange. */
    private abstract static class Http {
        static final MethodType STRING = MethodType.methodType(String.class, Object.class);
        static final MethodType OBJECT = MethodType.methodType(Object.class, Object.class);
        static final MethodType HEADER = MethodType.methodType(String.class, Object.class, String.class);
        static final MethodType INT = MethodType.methodType(int.class, Object.class);
        static final MethodType BOOLEAN = MethodType.methodType(boolean.class, Object.class);

        private static final Http NONE = new Http() {
        };

        private static final ClassValue<Http> BY_CLASS = new ClassValue<>() {
            @Override
            protected Http computeValue(Class<?> type) {
                for (String servlet : new String[] {"jakarta.servlet", "javax.servlet"}) {
                    try {
                        return new Servlet(type, servlet);
                    } catch (ReflectiveOperationException | RuntimeException notThisOne) {
                        // try the next API
                    }
                }
                try {
                    return new Exchange(type);
                } catch (ReflectiveOperationException | RuntimeException notAnExchange) {
                    return NONE;
                }
            }
        };

        static Http of(Object request) {
            return request == null ? NONE : BY_CLASS.get(request.getClass());
        }

        static Class<?> api(Class<?> type, String name) throws ClassNotFoundException {
            Class<?> api = Class.forName(name, false, type.getClassLoader());
            if (!api.isAssignableFrom(type)) {
                throw new ClassNotFoundException(name);
            }
            return api;
        }

        static MethodHandle find(Class<?> api, String name, Class<?> returns, Class<?>... params)
                throws ReflectiveOperationException {
            return MethodHandles.publicLookup().findVirtual(api, name, MethodType.methodType(returns, params));
        }

        /** Whether this is a container's further dispatch of a request already measured. */
        boolean redispatched(Object request) throws Throwable {
            return false;
        }

        /** The request's header and method getters, each kind sets them; null for none. */
        MethodHandle header;
        MethodHandle method;

        String header(Object request, String name) throws Throwable {
            return header == null ? null : (String) header.invokeExact(request, name);
        }

        String method(Object request) throws Throwable {
            return method == null ? null : (String) method.invokeExact(request);
        }

        String path(Object request) throws Throwable {
            return null;
        }

        /** The status the client receives; -1 when it receives none. */
        int status(Object response, Throwable error) throws Throwable {
            return -1;
        }

        /**
         * The route (`http.route`), given the status the client receives and
         * the path it asked for (as {@link #path} read it).
         */
        String route(Object request, int status, String path) throws Throwable {
            return null;
        }
    }

    /** A servlet request and response (jakarta or javax), through the API's public methods. */
    private static final class Servlet extends Http {
        private final MethodHandle requestUri;
        private final MethodHandle contextPath;
        private final MethodHandle servletPath;
        private final MethodHandle pathInfo;
        private final MethodHandle dispatcherType;
        /** Servlet 4.0 and later; null before. */
        private final MethodHandle mapping;
        private final MethodHandle mappingMatch;
        private final MethodHandle mappingPattern;
        private final MethodHandle status;
        private final MethodHandle committed;

        Servlet(Class<?> type, String pkg) throws ReflectiveOperationException {
            Class<?> request = api(type, pkg + ".http.HttpServletRequest");
            ClassLoader loader = type.getClassLoader();
            Class<?> response = Class.forName(pkg + ".http.HttpServletResponse", false, loader);
            method = find(request, "getMethod", String.class).asType(STRING);
            requestUri = find(request, "getRequestURI", String.class).asType(STRING);
            contextPath = find(request, "getContextPath", String.class).asType(STRING);
            servletPath = find(request, "getServletPath", String.class).asType(STRING);
            pathInfo = find(request, "getPathInfo", String.class).asType(STRING);
            header = find(request, "getHeader", String.class, String.class).asType(HEADER);
            Class<?> dispatcher = Class.forName(pkg + ".DispatcherType", false, loader);
            dispatcherType = find(request, "getDispatcherType", dispatcher).asType(OBJECT);
            MethodHandle[] mappingHandles = mapping(request, pkg, loader);
            mapping = mappingHandles[0];
            mappingMatch = mappingHandles[1];
            mappingPattern = mappingHandles[2];
            status = find(response, "getStatus", int.class).asType(INT);
            committed = find(response, "isCommitted", boolean.class).asType(BOOLEAN);
        }

        /** getHttpServletMapping, getMappingMatch and getPattern, or nulls before Servlet 4.0. */
        private static MethodHandle[] mapping(Class<?> request, String pkg, ClassLoader loader) {
            try {
                Class<?> mapping = Class.forName(pkg + ".http.HttpServletMapping", false, loader);
                Class<?> match = Class.forName(pkg + ".http.MappingMatch", false, loader);
                return new MethodHandle[] {
                    find(request, "getHttpServletMapping", mapping).asType(OBJECT),
                    find(mapping, "getMappingMatch", match).asType(OBJECT),
                    find(mapping, "getPattern", String.class).asType(STRING),
                };
            } catch (ReflectiveOperationException | RuntimeException before40) {
                return new MethodHandle[3];
            }
        }

        @Override
        boolean redispatched(Object request) throws Throwable {
            Object type = dispatcherType.invokeExact(request);
            return type != null && !"REQUEST".equals(((Enum<?>) type).name());
        }

        @Override
        String path(Object request) throws Throwable {
            return (String) requestUri.invokeExact(request);
        }

        /**
         * An exception that escapes the servlet (or the outermost filter) is
         * answered by the container: 500 (503 for UnavailableException),
         * unless the response was already committed with its status.
         */
        @Override
        int status(Object response, Throwable error) throws Throwable {
            if (response == null) {
                return -1;
            }
            if (error == null || (boolean) committed.invokeExact(response)) {
                return (int) status.invokeExact(response);
            }
            return error.getClass().getName().endsWith(".UnavailableException") ? 503 : 500;
        }

        /**
         * The context path and the servlet's mapping: the pattern of a path
         * mapping (`/api/*`), the path itself for exact, extension and
         * default-servlet mappings, `/` for the context root. A welcome file
         * keeps the directory the client asked for; a default servlet's 404
         * is `/*` (every mistyped path would otherwise be an endpoint).
         */
        @Override
        String route(Object request, int status, String path) throws Throwable {
            String context = (String) contextPath.invokeExact(request);
            String servlet = (String) servletPath.invokeExact(request);
            String match = null;
            String pattern = null;
            if (mapping != null) {
                Object found = mapping.invokeExact(request);
                if (found != null) {
                    Object kind = mappingMatch.invokeExact(found);
                    match = kind == null ? null : ((Enum<?>) kind).name();
                    pattern = (String) mappingPattern.invokeExact(found);
                }
            }
            String route;
            if ("PATH".equals(match) && pattern != null) {
                route = pattern;
            } else if ("CONTEXT_ROOT".equals(match)) {
                route = "/";
            } else if ("DEFAULT".equals(match) && status == 404) {
                route = "/*";
            } else if (match == null && (String) pathInfo.invokeExact(request) != null) {
                // Before Servlet 4.0: a path mapping leaves the rest in the path info.
                route = servlet + "/*";
            } else {
                if (path != null && path.endsWith("/") && !servlet.endsWith("/")
                        && path.startsWith(context)) {
                    return path; // a welcome file: the directory the client asked for
                }
                route = servlet.isEmpty() ? "/" : servlet;
            }
            return context == null || context.isEmpty() ? route : context + route;
        }
    }

    /** A com.sun.net.httpserver.HttpExchange (request and response at once). */
    private static final class Exchange extends Http {
        private final MethodHandle uri;
        private final MethodHandle contextPath;
        private final MethodHandle status;

        Exchange(Class<?> type) throws ReflectiveOperationException {
            Class<?> exchange = api(type, "com.sun.net.httpserver.HttpExchange");
            ClassLoader loader = exchange.getClassLoader();
            Class<?> headers = Class.forName("com.sun.net.httpserver.Headers", false, loader);
            Class<?> context = Class.forName("com.sun.net.httpserver.HttpContext", false, loader);
            MethodHandle getHeaders = find(exchange, "getRequestHeaders", headers);
            MethodHandle getFirst = find(headers, "getFirst", String.class, String.class);
            MethodHandle getContext = find(exchange, "getHttpContext", context);
            method = find(exchange, "getRequestMethod", String.class).asType(STRING);
            header = MethodHandles.filterArguments(getFirst, 0, getHeaders).asType(HEADER);
            uri = find(exchange, "getRequestURI", URI.class).asType(MethodType.methodType(URI.class, Object.class));
            contextPath = MethodHandles.filterReturnValue(getContext, find(context, "getPath", String.class))
                    .asType(STRING);
            status = find(exchange, "getResponseCode", int.class).asType(INT);
        }

        @Override
        String path(Object request) throws Throwable {
            return ((URI) uri.invokeExact(request)).getPath();
        }

        /**
         * The status the handler sent; -1 when it sent none (after a throw
         * the server closes the connection without an answer).
         */
        @Override
        int status(Object response, Throwable error) throws Throwable {
            return (int) status.invokeExact(response);
        }

        /** The context the exchange was handed to. */
        @Override
        String route(Object request, int status, String path) throws Throwable {
            String route = (String) contextPath.invokeExact(request);
            return route == null || route.isEmpty() ? null : route;
        }
    }

    private static native long begin(int site, long threadId, String traceparent);

    private static native void collection(String collector, String action, long startMillis, long endMillis);

    private static native void endSql(long transaction, int site, String sql, long startNanos, int error);

    private static native void endStep(long transaction, int site, long startNanos, int error);

    private static native void end(long token, int status, int method, int route, int error, int stepsTruncated,
            boolean pathIsRoute, String path);

    private static native boolean threadName(long threadId, String name);

    private static native int intern(String text);
}
