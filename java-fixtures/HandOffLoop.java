import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Hands N tiny tasks a round (first argument) to a one-thread
 * ThreadPoolExecutor, K at a time from batch() (second argument), which
 * waits until its K have run, for seven rounds, and prints "ns_per_call X"
 * for the fastest round: the cost of one hand-off, which the agent
 * benchmark compares without the agent, with it outside any transaction,
 * and with `hook=HandOffLoop#batch` (each batch a transaction whose tasks
 * carry it to the pool's thread). The third argument says how a task is
 * handed over: "execute" (a lambda, which the agent wraps inside a
 * transaction) or "submit" (a FutureTask, which carries it in a field).
 */
public class HandOffLoop {
    static final ThreadPoolExecutor POOL = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>());

    static void batch(int count, boolean submit) throws InterruptedException {
        CountDownLatch done = new CountDownLatch(count);
        Runnable task = done::countDown;
        for (int i = 0; i < count; i++) {
            if (submit) {
                POOL.submit(task);
            } else {
                POOL.execute(task);
            }
        }
        done.await();
    }

    public static void main(String[] args) throws InterruptedException {
        int n = Integer.parseInt(args[0]);
        int perBatch = Integer.parseInt(args[1]);
        boolean submit = args[2].equals("submit");
        double best = Double.MAX_VALUE;
        for (int round = 0; round < 7; round++) {
            long start = System.nanoTime();
            for (int i = 0; i < n; i += perBatch) {
                batch(perBatch, submit);
            }
            best = Math.min(best, (System.nanoTime() - start) / (double) n);
        }
        POOL.shutdown();
        System.out.printf("ns_per_call %.2f%n", best);
    }
}
