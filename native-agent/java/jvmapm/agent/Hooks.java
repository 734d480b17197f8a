package jvmapm.agent;

/**
 * The helper that instrumented methods call. The agent defines it in the
 * boot loader at VMInit and binds its natives with RegisterNatives, so every
 * class loader finds it. It keeps "is a transaction open on this thread" in
 * a ThreadLocal, which follows virtual threads across carriers, so only the
 * outermost instrumented entry on a thread makes a transaction. One native
 * call at entry (it takes the clocks) and one at exit.
 *
 * Compiled into Hooks.class by build.sh next to this file; the agent embeds
 * that class file.
 */
public final class Hooks {
    private static final ThreadLocal<Boolean> OPEN = new ThreadLocal<>();

    private Hooks() {
    }

    /**
     * Called on entry of an instrumented method of the given site; returns
     * the token to hand to exit, 0 when a transaction is already open on
     * this thread (or the agent is not taking any).
     */
    public static long enter(int site, String traceparent) {
        if (OPEN.get() != null) {
            return 0L;
        }
        long token = begin(site, traceparent);
        if (token != 0L) {
            OPEN.set(Boolean.TRUE);
        }
        return token;
    }

    /**
     * Called when the method returns (error is null) or throws (error is what
     * it throws). A status below 0 means none.
     */
    public static void exit(long token, String method, String path, String route, int status, Throwable error) {
        if (token == 0L) {
            return;
        }
        OPEN.remove();
        end(token, method, path, route, status,
                error == null ? null : error.getClass().getName(),
                Thread.currentThread().getName());
    }

    private static native long begin(int site, String traceparent);

    private static native void end(long token, String method, String path, String route, int status,
            String errorType, String thread);
}
