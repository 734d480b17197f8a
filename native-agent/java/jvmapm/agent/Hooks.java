package jvmapm.agent;

import com.sun.management.GarbageCollectionNotificationInfo;
import com.sun.management.GcInfo;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.net.HttpURLConnection;
import java.net.URI;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.BiPredicate;
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
 * method handles looked up once per request class. Outgoing HTTP calls of
 * client libraries are read and given their traceparent the same way (see
 * {@link Client}); the JDK's HttpURLConnection directly.
 *
 * What a call inside a transaction needs to be its child is in one place,
 * the thread's {@link Transaction}, so that it can be handed to another
 * thread: a task given to a JDK executor inside a transaction carries a
 * {@link Snapshot} of it ({@link #submit}), which the thread that runs the
 * task opens there for as long as the task runs ({@link #restore},
 * {@link #leave}).
 *
 * Compiled into Hooks.class by build.sh next to this file; the agent embeds
 * that class file.
 */
public final class Hooks {
    /**
     * The transaction open on a thread: its token (what the agent knows it
     * by while it is open) and its ids, which a call inside it names as its
     * parent and sends on in a traceparent.
     */
    static final class Transaction {
        /** 0 when none is open. */
        long token;
        long traceHigh;
        long traceLow;
        long span;
        /**
         * Sent with full detail (option sample=): otherwise its outgoing
         * calls make no span, and the callee names the transaction itself
         * as its parent.
         */
        boolean detailed;
        /** The tracestate that came with its traceparent, passed on as it came; null when none. */
        String tracestate;

        /** Takes the token and ids of another (a task's copy, or the copy a task brings). */
        void copy(Transaction from) {
            token = from.token;
            traceHigh = from.traceHigh;
            traceLow = from.traceLow;
            span = from.span;
            detailed = from.detailed;
            tracestate = from.tracestate;
        }
    }

    /**
     * A transaction as a task submitted inside it carries it to the thread
     * that runs the task: a copy of its token and ids (never changed after)
     * and the submitting thread's transaction,
     * so that a task run after the transaction ended (a periodic task's
     * later runs, a task that waited in a queue) can tell and opens nothing.
     */
    static final class Snapshot {
        /** The submitting thread's transaction: it ended once its token is no longer the copy's. */
        final Transaction origin;
        final Transaction copy = new Transaction();

        Snapshot(Transaction open) {
            origin = open;
            copy.copy(open);
        }

        boolean ended() {
            return origin.token != copy.token;
        }
    }

    /** What the helper keeps per thread. */
    private static final class State {
        final Transaction open = new Transaction();
        /** True while a JDBC statement runs inside it (a driver's statements that call each other make one SQL call). */
        boolean inSql;
        /**
         * The transaction a task brought, while it runs here ({@link #restore});
         * null when nothing is open or the open transaction is this thread's own.
         */
        Snapshot restored;
        /** The snapshot of this thread's own transaction that its tasks carry, made at its first submit. */
        Snapshot submitted;
        /** The thread name the agent has, so it is sent once (and again after a rename). */
        String nameSent;
        /** Steps entered in the open transaction, counted on past {@link #MAX_STEPS}. */
        long steps;
        /** The outgoing call open on this thread. */
        final Call call = new Call();
        /** Where begin writes the ids of the transaction it opens. */
        final long[] ids = new long[4];
        /** Where a traceparent is written before it becomes a string. */
        final char[] traceparent = new char[55];
    }

    /**
     * The outgoing HTTP call open on a thread. Only the outermost hooked
     * method makes a call: a client that calls another one, or its own
     * hooked methods, again (HttpURLConnection's getOutputStream calls
     * connect) is one call.
     */
    private static final class Call {
        /** While the hooked method that opened or continued it runs. */
        boolean active;
        /**
         * An HttpURLConnection whose call began in connect or
         * getOutputStream and ends in its getInputStream; null when none.
         */
        Object pending;
        /** How to read the call's request and response. */
        Client client;
        int site;
        long start;
        /** Its span id; 0 in a transaction that is not detailed. */
        long span;
        String method;
        String url;
        String traceparent;
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
            try {
                return named(type, "java.sql.Statement").isAssignableFrom(type);
            } catch (ClassNotFoundException | LinkageError notJdbc) {
                return false;
            }
        }
    };

    private static final String TRACEPARENT = "traceparent";
    private static final String TRACESTATE = "tracestate";
    private static final char[] HEX = "0123456789abcdef".toCharArray();

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
        if (state.open.token != 0L) {
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
        if (state.open.token != 0L) {
            return 0L;
        }
        String traceparent = null;
        String tracestate = null;
        try {
            Http http = Http.of(request);
            if (http.redispatched(request)) {
                return 0L;
            }
            traceparent = http.header(request, TRACEPARENT);
            if (traceparent != null) {
                tracestate = http.header(request, TRACESTATE);
            }
        } catch (Throwable ignored) {
            // An unknown request type: no incoming trace.
        }
        long token = open(state, site, traceparent);
        state.open.tracestate = token == 0L ? null : tracestate;
        return token;
    }

    private static long open(State state, int site, String traceparent) {
        long[] ids = state.ids;
        long token = begin(site, Thread.currentThread().getId(), traceparent, ids);
        Transaction open = state.open;
        open.token = token;
        open.traceHigh = ids[0];
        open.traceLow = ids[1];
        open.span = ids[2];
        open.detailed = ids[3] != 0L;
        open.tracestate = null;
        state.steps = 0;
        return token;
    }

    /**
     * Ends the open transaction of this thread: sends the thread's name
     * first if the agent does not have it yet.
     */
    private static void close(long token, int status, String method, String route, Throwable error, String path) {
        State state = STATE.get();
        state.open.token = 0L;
        state.open.tracestate = null;
        state.inSql = false;
        state.call.pending = null;
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
        if (state.open.token == 0L || state.inSql || !IS_STATEMENT.get(statement.getClass())) {
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
        endSql(state.open.token, site, text, start, id(errorType(error)));
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
     * What the agent adds to java.util.concurrent's FutureTask and
     * ForkJoinTask when they load: a field for the {@link Snapshot} of the
     * transaction the task was submitted in (null: none).
     */
    public interface Carrier {
        Object jvmapm$context();

        void jvmapm$setContext(Object context);
    }

    /**
     * A task handed to a JDK executor (ThreadPoolExecutor's execute,
     * ScheduledThreadPoolExecutor's scheduling, ForkJoinPool's execute,
     * submit and invoke, a ForkJoinTask's fork): what the executor is to
     * take instead. Outside a transaction the task itself (a task that
     * carried a context before carries none now). Inside one, a FutureTask
     * or ForkJoinTask the agent gave its field keeps the transaction's
     * snapshot there and is itself; a plain Runnable or Callable becomes a
     * {@link Task} that carries it; any other Future (a task class loaded
     * before the agent) is left as it is: an executor's own tasks must stay
     * what they are.
     */
    public static Object submit(Object task) {
        State state = STATE.get();
        Snapshot context = state.restored;
        if (context == null) {
            Transaction open = state.open;
            if (open.token == 0L) {
                if (task instanceof Carrier carrier && carrier.jvmapm$context() != null) {
                    carrier.jvmapm$setContext(null);
                }
                return task;
            }
            context = state.submitted;
            if (context == null || context.copy.token != open.token) {
                context = new Snapshot(open);
                state.submitted = context;
            }
        }
        if (task instanceof Carrier carrier) {
            carrier.jvmapm$setContext(context);
            return task;
        }
        if (task instanceof Future || task instanceof Task || !(task instanceof Runnable || task instanceof Callable)) {
            return task;
        }
        return new Task(task, context);
    }

    /**
     * Entry of a task's run (FutureTask's run and runAndReset, ForkJoinTask's
     * doExec, CompletableFuture's tasks' run): opens the transaction the
     * task carries on this thread, when nothing is open here yet (a task run
     * by the thread that submitted it, or inside another task, keeps what is
     * open) and that transaction has not ended. Returns 1 when it opened it
     * (the exit, {@link #leave}, closes it again), else 0.
     */
    public static long restore(Object task) {
        return task instanceof Carrier carrier && carrier.jvmapm$context() instanceof Snapshot context
                ? restore(context) : 0L;
    }

    private static long restore(Snapshot context) {
        State state = STATE.get();
        Transaction open = state.open;
        if (open.token != 0L || context.ended()) {
            return 0L;
        }
        open.copy(context.copy);
        state.restored = context;
        state.steps = 0;
        return 1L;
    }

    /**
     * Exit of a task's run: when its entry opened a transaction here, this
     * thread is as it was before, with nothing open, so a pool thread never
     * keeps a task's transaction.
     */
    public static void leave(long opened) {
        if (opened == 0L) {
            return;
        }
        State state = STATE.get();
        state.open.token = 0L;
        state.open.tracestate = null;
        state.restored = null;
        state.inSql = false;
        state.steps = 0;
        state.call.active = false;
        state.call.pending = null;
    }

    /**
     * A plain Runnable or Callable handed to an executor inside a
     * transaction, with that transaction's snapshot: it runs the task with
     * the transaction open, as {@link #restore} and {@link #leave} do.
     */
    static final class Task implements Runnable, Callable<Object> {
        private final Object task;
        private final Snapshot context;

        Task(Object task, Snapshot context) {
            this.task = task;
            this.context = context;
        }

        @Override
        public void run() {
            long opened = restore(context);
            try {
                ((Runnable) task).run();
            } finally {
                leave(opened);
            }
        }

        @Override
        public Object call() throws Exception {
            long opened = restore(context);
            try {
                return ((Callable<?>) task).call();
            } finally {
                leave(opened);
            }
        }

        @Override
        public String toString() {
            return String.valueOf(task);
        }
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
            endStep(STATE.get().open.token, site, token & ~STEP, id(errorType(error)));
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
     * Entry of an outgoing HTTP call of a client library (`client`: its
     * number, see {@link Client}; `target`: the host, when the method takes
     * it apart from the request). Inside a transaction and outside another
     * call, opens a call and puts its traceparent (and the transaction's
     * tracestate) on the request, when the request can take another
     * header; else {@link #callRequest} gives the copy to send. Returns 1
     * when it opened a call, 0 when this is no call of its own.
     */
    public static long enterCall(int site, int client, Object target, Object request) {
        State state = STATE.get();
        if (state.open.token == 0L || state.call.active || request == null) {
            return 0L;
        }
        try {
            Client reader = Client.of(client, request);
            if (reader == Client.UNREADABLE) {
                return 0L;
            }
            start(state, site, reader, reader.method(request), reader.url(target, request));
            reader.put(request, state.call.traceparent, state.open.tracestate);
            return 1L;
        } catch (Throwable unreadable) {
            state.call.active = false;
            return 0L;
        }
    }

    /**
     * The request an outgoing call sends: for a client whose requests
     * cannot take another header, a copy carrying the call's traceparent;
     * else (or when the copy fails) the request itself.
     */
    public static Object callRequest(long token, Object request) {
        if (token == 0L) {
            return request;
        }
        State state = STATE.get();
        Call call = state.call;
        try {
            return call.client.withHeaders(request, call.traceparent, state.open.tracestate);
        } catch (Throwable cannot) {
            return request;
        }
    }

    /**
     * Exit of an outgoing call's method: `result` is the response, or a
     * CompletableFuture of it (the call then ends when the future
     * completes, on whichever thread completes it).
     */
    public static void exitCall(long token, Object request, Object result, Throwable error) {
        if (token == 0L) {
            return;
        }
        State state = STATE.get();
        Call call = state.call;
        call.active = false;
        Client client = call.client;
        try {
            client.take(request);
        } catch (Throwable ignored) {
            // The request keeps the header; it is not used again in most programs.
        }
        Transaction open = state.open;
        if (error == null && result instanceof CompletableFuture<?> future) {
            long token0 = open.token;
            long traceHigh = open.traceHigh;
            long traceLow = open.traceLow;
            long parent = open.span;
            long span = call.span;
            int site = call.site;
            long start = call.start;
            String method = call.method;
            String url = call.url;
            future.whenComplete((response, failure) -> end(token0, traceHigh, traceLow, parent, span, site, start,
                    status(client, response), method, url, cause(failure)));
            return;
        }
        finish(state, status(client, result), error);
    }

    /**
     * Entry of HttpURLConnection's connect, getOutputStream or
     * getInputStream (`connected`: whether the connection is connected).
     * Inside a transaction and outside another call: a connection not yet
     * connected opens a call and gets its traceparent; the connection whose
     * call waits for its response continues it. Returns 1 when it opened or
     * continued the call, else 0.
     */
    public static long enterConnection(int site, Object connection, boolean connected) {
        State state = STATE.get();
        Call call = state.call;
        if (state.open.token == 0L || call.active) {
            return 0L;
        }
        if (connected) {
            if (call.pending != connection) {
                return 0L;
            }
            call.active = true;
            return 1L;
        }
        try {
            HttpURLConnection http = (HttpURLConnection) connection;
            start(state, site, Client.UNREADABLE, http.getRequestMethod(), String.valueOf(http.getURL()));
            http.setRequestProperty(TRACEPARENT, call.traceparent);
            String tracestate = state.open.tracestate;
            if (tracestate != null) {
                http.setRequestProperty(TRACESTATE, tracestate);
            }
            return 1L;
        } catch (Throwable unusable) {
            call.active = false;
            return 0L;
        }
    }

    /**
     * Exit of an HttpURLConnection method that entered with a call: `ends`
     * when it is getInputStream (it has the response, `responseCode`);
     * connect and getOutputStream leave the call waiting for it unless
     * they threw. The connection throws for a status from 400 up; the
     * status says what failed.
     */
    public static void exitConnection(long token, Object connection, int responseCode, boolean ends, Throwable error) {
        if (token == 0L) {
            return;
        }
        State state = STATE.get();
        Call call = state.call;
        call.active = false;
        if (!ends && error == null) {
            call.pending = connection;
            return;
        }
        call.pending = null;
        finish(state, responseCode > 0 ? responseCode : -1, responseCode >= 400 ? null : error);
    }

    /** Opens the thread's call: its names, its span id and traceparent, its start. */
    private static void start(State state, int site, Client client, String method, String url) {
        Transaction open = state.open;
        Call call = state.call;
        call.active = true;
        call.pending = null;
        call.client = client;
        call.site = site;
        call.method = method;
        call.url = url;
        long span = 0L;
        while (open.detailed && span == 0L) {
            span = ThreadLocalRandom.current().nextLong();
        }
        call.span = span;
        call.traceparent = traceparent(state, span != 0L ? span : open.span);
        call.start = System.nanoTime();
    }

    /** Ends the thread's call, a child of its open transaction. */
    private static void finish(State state, int status, Throwable error) {
        Transaction open = state.open;
        Call call = state.call;
        end(open.token, open.traceHigh, open.traceLow, open.span, call.span, call.site, call.start, status,
                call.method, call.url, error);
    }

    private static void end(long token, long traceHigh, long traceLow, long parent, long span, int site, long start,
            int status, String method, String url, Throwable error) {
        endCall(token, traceHigh, traceLow, parent, span, site, start, status, id(method), id(errorType(error)),
                span == 0L ? null : url);
    }

    /** The response's status; -1 when there is none or it cannot be read. */
    private static int status(Client client, Object response) {
        try {
            return response == null ? -1 : client.status(response);
        } catch (Throwable unreadable) {
            return -1;
        }
    }

    /** What failed a future: the exception a CompletionException wraps. */
    private static Throwable cause(Throwable failure) {
        while ((failure instanceof CompletionException || failure instanceof ExecutionException)
                && failure.getCause() != null) {
            failure = failure.getCause();
        }
        return failure;
    }

    /** The W3C traceparent of the thread's transaction's trace, with `span` as the parent its callee names. */
    private static String traceparent(State state, long span) {
        Transaction open = state.open;
        char[] text = state.traceparent;
        text[0] = '0';
        text[1] = '0';
        text[2] = '-';
        hex(text, 3, open.traceHigh);
        hex(text, 19, open.traceLow);
        text[35] = '-';
        hex(text, 36, span);
        text[52] = '-';
        text[53] = '0';
        text[54] = '1';
        return new String(text);
    }

    private static void hex(char[] into, int at, long value) {
        for (int i = 15; i >= 0; i--) {
            into[at + i] = HEX[(int) value & 0xf];
            value >>>= 4;
        }
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

    /** The class `name` as `type`'s loader sees it (the platform loader's for a boot class). */
    private static Class<?> named(Class<?> type, String name) throws ClassNotFoundException {
        ClassLoader loader = type.getClassLoader();
        return Class.forName(name, false, loader == null ? ClassLoader.getPlatformClassLoader() : loader);
    }

    /** The API `name` that `type` implements, as `type`'s loader sees it. */
    private static Class<?> api(Class<?> type, String name) throws ClassNotFoundException {
        Class<?> api = named(type, name);
        if (!api.isAssignableFrom(type)) {
            throw new ClassNotFoundException(name);
        }
        return api;
    }

    private static MethodHandle find(Class<?> api, String name, Class<?> returns, Class<?>... params)
            throws ReflectiveOperationException {
        return MethodHandles.publicLookup().findVirtual(api, name, MethodType.methodType(returns, params));
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
            Class<?> response = named(type, pkg + ".http.HttpServletResponse");
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

    /**
     * How to read the requests and responses of one HTTP client library
     * and give its requests a header, through method handles looked up once
     * per request class (a library is loaded by the application's loaders).
     * The agent's probes name the library by its number (probe::Client in
     * the agent): 0 java.net.http, 1 Apache HttpClient 4, 2 Apache
     * HttpClient 5, 3 OkHttp 3. {@link #UNREADABLE} reads nothing.
     */
    private static class Client {
        static final Client UNREADABLE = new Client(null, null);

        private static final Readers[] BY_LIBRARY = {new Readers(0), new Readers(1), new Readers(2), new Readers(3)};

        static Client of(int library, Object request) {
            return library < 0 || library >= BY_LIBRARY.length ? UNREADABLE
                    : BY_LIBRARY[library].get(request.getClass());
        }

        /** The readers of one library's request classes. */
        private static final class Readers extends ClassValue<Client> {
            private final int library;

            Readers(int library) {
                this.library = library;
            }

            @Override
            protected Client computeValue(Class<?> type) {
                try {
                    return switch (library) {
                        case 0 -> Copying.jdk(type);
                        case 1 -> new Apache(type, "org.apache.http.", false);
                        case 2 -> new Apache(type, "org.apache.hc.core5.http.", true);
                        default -> Copying.okHttp(type);
                    };
                } catch (ReflectiveOperationException | RuntimeException | LinkageError notThisLibrary) {
                    return UNREADABLE;
                }
            }
        }

        static final MethodType PUT = MethodType.methodType(void.class, Object.class, String.class, String.class);
        static final MethodType REMOVE = MethodType.methodType(void.class, Object.class, String.class);
        static final MethodType WITH = MethodType.methodType(Object.class, Object.class, String.class, String.class);

        /** The request's method, the response's status; null in {@link #UNREADABLE}. */
        private final MethodHandle method;
        private final MethodHandle status;

        Client(MethodHandle method, MethodHandle status) {
            this.method = method == null ? null : method.asType(Http.STRING);
            this.status = status == null ? null : status.asType(Http.INT);
        }

        String method(Object request) throws Throwable {
            return method == null ? null : (String) method.invokeExact(request);
        }

        int status(Object response) throws Throwable {
            return status == null ? -1 : (int) status.invokeExact(response);
        }

        /** The URL the request goes to; `target` is the host, when the call took it apart. */
        String url(Object target, Object request) throws Throwable {
            return null;
        }

        /** Puts the headers on a request that can take another; does nothing to one that cannot. */
        void put(Object request, String traceparent, String tracestate) throws Throwable {
        }

        /** Takes the traceparent and tracestate {@link #put} put off the request, once the call is over. */
        void take(Object request) throws Throwable {
        }

        /** A copy of a request that cannot take another header, with the headers; else the request. */
        Object withHeaders(Object request, String traceparent, String tracestate) throws Throwable {
            return request;
        }
    }

    /**
     * A library whose requests are immutable (java.net.http, OkHttp 3): the
     * call sends a copy made by the request's builder with the headers set.
     */
    private static final class Copying extends Client {
        /** Copies every header of a java.net.http request. */
        static final BiPredicate<String, String> ALL = (name, value) -> true;

        private final MethodHandle url;
        private final MethodHandle copy;
        private final MethodHandle header;
        private final MethodHandle build;

        private Copying(MethodHandle method, MethodHandle url, MethodHandle copy, MethodHandle header,
                MethodHandle build, MethodHandle status) {
            super(method, status);
            this.url = url.asType(Http.STRING);
            this.copy = copy.asType(Http.OBJECT);
            this.header = header.asType(WITH);
            this.build = build.asType(Http.OBJECT);
        }

        static Copying jdk(Class<?> type) throws ReflectiveOperationException {
            Class<?> request = api(type, "java.net.http.HttpRequest");
            Class<?> builder = named(type, "java.net.http.HttpRequest$Builder");
            MethodHandle newBuilder = MethodHandles.publicLookup()
                    .findStatic(request, "newBuilder", MethodType.methodType(builder, request, BiPredicate.class));
            return new Copying(find(request, "method", String.class),
                    MethodHandles.filterReturnValue(find(request, "uri", URI.class), find(URI.class, "toString", String.class)),
                    MethodHandles.insertArguments(newBuilder, 1, ALL),
                    find(builder, "setHeader", builder, String.class, String.class),
                    find(builder, "build", request),
                    find(named(type, "java.net.http.HttpResponse"), "statusCode", int.class));
        }

        static Copying okHttp(Class<?> type) throws ReflectiveOperationException {
            Class<?> request = api(type, "okhttp3.Request");
            Class<?> builder = named(type, "okhttp3.Request$Builder");
            Class<?> httpUrl = named(type, "okhttp3.HttpUrl");
            return new Copying(find(request, "method", String.class),
                    MethodHandles.filterReturnValue(find(request, "url", httpUrl), find(httpUrl, "toString", String.class)),
                    find(request, "newBuilder", builder),
                    find(builder, "header", builder, String.class, String.class),
                    find(builder, "build", request),
                    find(named(type, "okhttp3.Response"), "code", int.class));
        }

        @Override
        String url(Object target, Object request) throws Throwable {
            return (String) url.invokeExact(request);
        }

        @Override
        Object withHeaders(Object request, String traceparent, String tracestate) throws Throwable {
            Object builder = (Object) copy.invokeExact(request);
            builder = (Object) header.invokeExact(builder, TRACEPARENT, traceparent);
            if (tracestate != null) {
                builder = (Object) header.invokeExact(builder, TRACESTATE, tracestate);
            }
            return (Object) build.invokeExact(builder);
        }
    }

    /**
     * Apache HttpClient 4 (`org.apache.http.`) and 5 (`org.apache.hc.core5.http.`):
     * requests take headers (taken off again after the call, so a request
     * sent again outside a transaction carries none); doExecute takes the
     * host apart from a request whose target is a path.
     */
    private static final class Apache extends Client {
        private final MethodHandle target;
        private final MethodHandle host;
        private final MethodHandle put;
        private final MethodHandle remove;

        Apache(Class<?> type, String core, boolean five) throws ReflectiveOperationException {
            this(type, core, five, api(type, core + "HttpRequest"), named(type, core + "HttpMessage"),
                    named(type, core + "HttpResponse"));
        }

        private Apache(Class<?> type, String core, boolean five, Class<?> request, Class<?> message,
                Class<?> response) throws ReflectiveOperationException {
            super(five ? find(request, "getMethod", String.class) : line(type, core, request, "getMethod"),
                    five ? find(response, "getCode", int.class) : MethodHandles.filterReturnValue(
                            find(response, "getStatusLine", named(type, core + "StatusLine")),
                            find(named(type, core + "StatusLine"), "getStatusCode", int.class)));
            target = (five ? find(request, "getRequestUri", String.class) : line(type, core, request, "getUri"))
                    .asType(Http.STRING);
            host = find(named(type, core + "HttpHost"), "toURI", String.class).asType(Http.STRING);
            put = find(message, "setHeader", void.class, String.class, five ? Object.class : String.class).asType(PUT);
            remove = find(message, "removeHeaders", five ? boolean.class : void.class, String.class).asType(REMOVE);
        }

        /** A String getter of HttpClient 4's request line. */
        private static MethodHandle line(Class<?> type, String core, Class<?> request, String getter)
                throws ReflectiveOperationException {
            Class<?> line = named(type, core + "RequestLine");
            return MethodHandles.filterReturnValue(find(request, "getRequestLine", line), find(line, getter, String.class));
        }

        @Override
        String url(Object host, Object request) throws Throwable {
            String path = (String) target.invokeExact(request);
            return host != null && path.startsWith("/") ? (String) this.host.invokeExact(host) + path : path;
        }

        @Override
        void put(Object request, String traceparent, String tracestate) throws Throwable {
            put.invokeExact(request, TRACEPARENT, traceparent);
            if (tracestate != null) {
                put.invokeExact(request, TRACESTATE, tracestate);
            }
        }

        @Override
        void take(Object request) throws Throwable {
            remove.invokeExact(request, TRACEPARENT);
            remove.invokeExact(request, TRACESTATE);
        }
    }

    private static native long begin(int site, long threadId, String traceparent, long[] ids);

    private static native void collection(String collector, String action, long startMillis, long endMillis);

    private static native void endSql(long transaction, int site, String sql, long startNanos, int error);

    private static native void endStep(long transaction, int site, long startNanos, int error);

    private static native void endCall(long transaction, long traceHigh, long traceLow, long parentSpan, long span,
            int site, long startNanos, int status, int method, int error, String url);

    private static native void end(long token, int status, int method, int route, int error, int stepsTruncated,
            boolean pathIsRoute, String path);

    private static native boolean threadName(long threadId, String name);

    private static native int intern(String text);
}
