/**
 * A JVM that does nothing until its standard input closes (or 60 seconds pass):
 * a target for attaching the agent to a running JVM with jcmd.
 * Prints "ready" once started.
 */
public final class Idle {
    public static void main(String[] args) throws Exception {
        System.out.println("ready");
        System.out.flush();
        Thread reader = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // Wait for the parent to close our input.
                }
            } catch (java.io.IOException ignored) {
                // The parent is gone: stop too.
            }
        });
        reader.setDaemon(true);
        reader.start();
        reader.join(60_000);
    }
}
