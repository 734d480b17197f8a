package jvmapm.agent;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.net.URI;

/**
 * The helper that instrumented methods call. The agent defines it in the
 * boot loader at VMInit and binds its natives with RegisterNatives, so every
 * class loader finds it. It keeps "is a transaction open on this thread" in
 * a ThreadLocal, which follows virtual threads across carriers, so only the
 * outermost instrumented entry on a thread makes a transaction. One native
 * call at entry (it takes the clocks) and one at exit.
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
    /**
     * Per thread: [0] the open transaction's token (0 when none), [1] 1 while
     * a JDBC statement runs inside it (a driver's statements that call each
     * other make one SQL call).
     */
    private static final ThreadLocal<long[]> STATE = ThreadLocal.withInitial(() -> new long[2]);

    private Hooks() {
    }

    /**
     * Entry of a hooked method of the given site; returns the token to hand
     * to exit, 0 when a transaction is already open on this thread (or the
     * agent is not taking any).
     */
    public static long enter(int site) {
        return open(site, null);
    }

    /** Entry of an HTTP transaction: the request carries the traceparent. */
    public static long enterHttp(int site, Object request) {
        if (STATE.get()[0] != 0L) {
            return 0L;
        }
        String traceparent = null;
        try {
            traceparent = Http.of(request).header(request, "traceparent");
        } catch (Throwable ignored) {
            // An unknown request type: no incoming trace.
        }
        return open(site, traceparent);
    }

    private static long open(int site, String traceparent) {
        long[] state = STATE.get();
        if (state[0] != 0L) {
            return 0L;
        }
        long token = begin(site, Thread.currentThread().getId(), traceparent);
        state[0] = token;
        return token;
    }

    private static void close() {
        long[] state = STATE.get();
        state[0] = 0L;
        state[1] = 0L;
    }

    /**
     * Entry of a JDBC statement's execute method: only inside a transaction,
     * and not inside another statement call. Returns the start time
     * (System.nanoTime), or 0 when this call is not measured.
     */
    public static long enterSql() {
        long[] state = STATE.get();
        if (state[0] == 0L || state[1] != 0L) {
            return 0L;
        }
        state[1] = 1L;
        long start = System.nanoTime();
        return start == 0L ? 1L : start;
    }

    /**
     * Exit of a JDBC statement's execute method: sql is the statement text
     * when the method took it, else the statement's own description (most
     * drivers' prepared statements describe themselves by their SQL).
     */
    public static void exitSql(long start, int site, Object statement, String sql, Throwable error) {
        if (start == 0L) {
            return;
        }
        long[] state = STATE.get();
        state[1] = 0L;
        String text = sql;
        if (text == null) {
            try {
                text = String.valueOf(statement);
            } catch (Throwable ignored) {
                text = null;
            }
        }
        endSql(state[0], site, text, start, errorType(error));
    }

    /** Exit of a hooked method; error is what it throws, or null. */
    public static void exit(long token, Throwable error) {
        if (token == 0L) {
            return;
        }
        close();
        end(token, null, null, null, -1, errorType(error), Thread.currentThread().getName());
    }

    /** Exit of an HTTP transaction. */
    public static void exitHttp(long token, Object request, Object response, Throwable error) {
        if (token == 0L) {
            return;
        }
        close();
        String method = null;
        String path = null;
        String route = null;
        int status = -1;
        try {
            Http http = Http.of(request);
            method = http.method(request);
            path = http.path(request);
            route = http.route(request);
            status = http.status(response);
        } catch (Throwable ignored) {
            // An unknown request type: the transaction is still counted.
        }
        end(token, method, path, route, status, errorType(error), Thread.currentThread().getName());
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

    private static String errorType(Throwable error) {
        return error == null ? null : error.getClass().getName();
    }

    /** How to read one kind of HTTP request. */
    private static final class Http {
        private static final MethodType STRING = MethodType.methodType(String.class, Object.class);
        private static final MethodType HEADER =
                MethodType.methodType(String.class, Object.class, String.class);
        private static final MethodType INT = MethodType.methodType(int.class, Object.class);
        private static final Http NONE = new Http(null, null, null, null, null, null);

        private static final ClassValue<Http> BY_CLASS = new ClassValue<>() {
            @Override
            protected Http computeValue(Class<?> type) {
                for (String servlet : new String[] {"jakarta.servlet.http", "javax.servlet.http"}) {
                    try {
                        return servlet(type, servlet);
                    } catch (ReflectiveOperationException | RuntimeException notThisOne) {
                        // try the next API
                    }
                }
                try {
                    return exchange(type);
                } catch (ReflectiveOperationException | RuntimeException notAnExchange) {
                    return NONE;
                }
            }
        };

        final MethodHandle method;
        final MethodHandle path;
        final MethodHandle route;
        final MethodHandle status;
        final MethodHandle header;
        final MethodHandle uriPath;

        private Http(MethodHandle method, MethodHandle path, MethodHandle route, MethodHandle status,
                MethodHandle header, MethodHandle uriPath) {
            this.method = method;
            this.path = path;
            this.route = route;
            this.status = status;
            this.header = header;
            this.uriPath = uriPath;
        }

        static Http of(Object request) {
            return request == null ? NONE : BY_CLASS.get(request.getClass());
        }

        private static Class<?> api(Class<?> type, String name) throws ClassNotFoundException {
            Class<?> api = Class.forName(name, false, type.getClassLoader());
            if (!api.isAssignableFrom(type)) {
                throw new ClassNotFoundException(name);
            }
            return api;
        }

        private static MethodHandle find(Class<?> api, String name, Class<?> returns, Class<?>... params)
                throws ReflectiveOperationException {
            return MethodHandles.publicLookup().findVirtual(api, name, MethodType.methodType(returns, params));
        }

        /** A servlet request (its response is read through the sibling API). */
        private static Http servlet(Class<?> type, String pkg) throws ReflectiveOperationException {
            Class<?> request = api(type, pkg + ".HttpServletRequest");
            Class<?> response = Class.forName(pkg + ".HttpServletResponse", false, type.getClassLoader());
            return new Http(
                    find(request, "getMethod", String.class).asType(STRING),
                    find(request, "getRequestURI", String.class).asType(STRING),
                    find(request, "getServletPath", String.class).asType(STRING),
                    find(response, "getStatus", int.class).asType(INT),
                    find(request, "getHeader", String.class, String.class).asType(HEADER),
                    null);
        }

        /** A com.sun.net.httpserver.HttpExchange (request and response at once). */
        private static Http exchange(Class<?> type) throws ReflectiveOperationException {
            Class<?> exchange = api(type, "com.sun.net.httpserver.HttpExchange");
            Class<?> headers = Class.forName("com.sun.net.httpserver.Headers", false, exchange.getClassLoader());
            Class<?> context = Class.forName("com.sun.net.httpserver.HttpContext", false, exchange.getClassLoader());
            MethodHandle getHeaders = find(exchange, "getRequestHeaders", headers);
            MethodHandle getFirst = find(headers, "getFirst", String.class, String.class);
            MethodHandle getContext = find(exchange, "getHttpContext", context);
            MethodHandle contextPath = find(context, "getPath", String.class);
            return new Http(
                    find(exchange, "getRequestMethod", String.class).asType(STRING),
                    null,
                    MethodHandles.filterReturnValue(getContext, contextPath).asType(STRING),
                    find(exchange, "getResponseCode", int.class).asType(INT),
                    MethodHandles.filterArguments(getFirst, 0, getHeaders).asType(HEADER),
                    find(exchange, "getRequestURI", URI.class).asType(MethodType.methodType(URI.class, Object.class)));
        }

        String header(Object request, String name) throws Throwable {
            return header == null ? null : (String) header.invokeExact(request, name);
        }

        String method(Object request) throws Throwable {
            return method == null ? null : (String) method.invokeExact(request);
        }

        String path(Object request) throws Throwable {
            if (uriPath != null) {
                return ((URI) uriPath.invokeExact(request)).getPath();
            }
            return path == null ? null : (String) path.invokeExact(request);
        }

        String route(Object request) throws Throwable {
            String route = this.route == null ? null : (String) this.route.invokeExact(request);
            return route == null || route.isEmpty() ? null : route;
        }

        int status(Object response) throws Throwable {
            return status == null || response == null ? -1 : (int) status.invokeExact(response);
        }
    }

    private static native long begin(int site, long threadId, String traceparent);

    private static native void endSql(long transaction, int site, String sql, long startNanos, String errorType);

    private static native void end(long token, String method, String path, String route, int status,
            String errorType, String thread);
}
