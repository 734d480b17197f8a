/**
 * A job for the agent's profiles: main calls work() (hooked with
 * hook=SlowSplit#work) N times (first argument), then quick() as many
 * times. work() lasts about 600 ms: 450 ms spinning on the CPU in spin(),
 * then 150 ms asleep in pause(). The agent samples it after its default
 * profile_after of 100 ms, so its profile should give spin about 70% of
 * its samples (350 of 500 ms) and pause about 30%. quick() lasts about
 * 1 ms, under profile_after. A second argument D (default 0) makes work()
 * spin and pause D calls deep, for the benchmark of deep stacks. The calls
 * run on a thread named "slow-split" (the benchmark's AsyncGetCallTrace
 * probe finds the OS thread by that name). Prints "done N sum S".
 */
public class SlowSplit {
    static final long SPIN_NANOS = 450_000_000L;
    static final long PAUSE_MILLIS = 150;

    static long spin(long nanos) {
        long deadline = System.nanoTime() + nanos;
        long x = 1;
        while (System.nanoTime() < deadline) {
            for (int i = 0; i < 1000; i++) {
                x = x * 6364136223846793005L + 1442695040888963407L;
            }
        }
        return x;
    }

    static void pause(long millis) throws InterruptedException {
        Thread.sleep(millis);
    }

    int depth;

    long work() throws InterruptedException {
        return deep(depth);
    }

    long deep(int d) throws InterruptedException {
        if (d > 0) {
            return deep(d - 1) + 1;
        }
        long x = spin(SPIN_NANOS);
        pause(PAUSE_MILLIS);
        return x;
    }

    long quick() {
        return spin(1_000_000L);
    }

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        SlowSplit job = new SlowSplit();
        job.depth = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        long[] sum = {0};
        Thread worker = new Thread(() -> {
            try {
                for (int i = 0; i < n; i++) {
                    sum[0] += job.work();
                }
                for (int i = 0; i < n; i++) {
                    sum[0] += job.quick();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "slow-split");
        worker.start();
        worker.join();
        System.out.println("done " + n + " sum " + sum[0]);
    }
}
