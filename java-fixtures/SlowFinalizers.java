/**
 * Rebuilds a Finalizer backlog: objects whose finalize() is slow are made
 * faster than the Finalizer thread can run them, and System.gc() finds them
 * dead, so the count of objects pending finalization climbs. Runs for the
 * number of seconds given, then prints "done".
 */
public class SlowFinalizers {
    static final class Slow {
        final byte[] payload = new byte[256];

        @Override
        @SuppressWarnings({"deprecation", "removal"})
        protected void finalize() throws Throwable {
            Thread.sleep(5);
        }
    }

    static volatile Object sink;

    public static void main(String[] args) throws Exception {
        long seconds = Long.parseLong(args[0]);
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        while (System.nanoTime() < end) {
            for (int i = 0; i < 200; i++) {
                sink = new Slow();
            }
            System.gc();
            Thread.sleep(50);
        }
        System.out.println("done");
    }
}
