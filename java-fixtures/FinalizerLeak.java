import java.util.Timer;
import java.util.TimerTask;
import java.util.concurrent.CountDownLatch;

/**
 * The classic Finalizer leak, rebuilt for the heap dump tests: statements
 * with a finalize() are held by timeout tasks that were cancelled, and a
 * cancelled task stays in java.util.Timer's queue until its time comes, so
 * 3000 statements stay reachable with their Finalizers registered. Beside
 * it, a finalize() that never returns holds the Finalizer thread (one being
 * finalized), and 500 dropped objects with a finalize() then wait in its
 * queue. Prints "ready" and waits until its standard input closes.
 */
public class FinalizerLeak {
    static final class LeakyStatement {
        final byte[] buffer = new byte[96];
        final int number;

        LeakyStatement(int number) {
            this.number = number;
        }

        // Not empty: HotSpot does not register objects whose finalize() is.
        @Override
        @SuppressWarnings({"deprecation", "removal"})
        protected void finalize() {
            closed++;
        }
    }

    static volatile int closed;
    static final CountDownLatch NEVER = new CountDownLatch(1);
    static volatile boolean finalizerStuck;

    static final class Blocker {
        @Override
        @SuppressWarnings({"deprecation", "removal"})
        protected void finalize() throws Throwable {
            finalizerStuck = true;
            NEVER.await();
        }
    }

    static final class Doomed {
        final byte[] payload = new byte[40];

        @Override
        @SuppressWarnings({"deprecation", "removal"})
        protected void finalize() {
            closed++; // Never runs: the Finalizer thread is stuck.
        }
    }

    static final Timer TIMER = new Timer("statement-timeouts", true);

    static void awaitTimedWait(String name) throws InterruptedException {
        for (int tries = 0; tries < 1000; tries++) {
            for (Thread thread : Thread.getAllStackTraces().keySet()) {
                if (thread.getName().equals(name) && thread.getState() == Thread.State.TIMED_WAITING) {
                    return;
                }
            }
            Thread.sleep(10);
        }
        throw new IllegalStateException(name + " never slept");
    }

    public static void main(String[] args) throws Exception {
        // Each query's timeout, cancelled when the query is done.
        TimerTask[] timeouts = new TimerTask[3000];
        for (int i = 0; i < timeouts.length; i++) {
            LeakyStatement statement = new LeakyStatement(i);
            timeouts[i] = new TimerTask() {
                @Override
                public void run() {
                    statement.hashCode();
                }
            };
            TIMER.schedule(timeouts[i], 3_600_000L + i);
        }
        // The timer thread takes out a cancelled task it finds at the head
        // of its queue when it wakes: cancel only once it sleeps until the
        // first task is due (nothing wakes it before that).
        awaitTimedWait("statement-timeouts");
        for (TimerTask timeout : timeouts) {
            timeout.cancel();
        }
        timeouts = null;
        new Blocker();
        while (!finalizerStuck) {
            System.gc();
            Thread.sleep(10);
        }
        for (int i = 0; i < 500; i++) {
            new Doomed();
        }
        System.gc();
        Thread.sleep(500);
        System.gc();
        Thread.sleep(500);
        System.out.println("ready");
        System.out.flush();
        while (System.in.read() != -1) {
            // Quiet until the test is done.
        }
        System.exit(0);
    }
}
