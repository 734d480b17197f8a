import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Calls System.gc() N times (first argument), with some garbage and an
 * optional sleep in milliseconds (second argument) between the calls, then
 * prints "done N in MS ms rss_kb KB". The agent tests count the GC pauses the
 * agent reports against N, and compare the time and memory it took with and
 * without the agent.
 */
public class GcLoop {
    static volatile Object sink;

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        long sleepMs = args.length > 1 ? Long.parseLong(args[1]) : 0;
        long start = System.nanoTime();
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < 10_000; j++) {
                sink = new byte[128];
            }
            System.gc();
            if (sleepMs > 0) {
                Thread.sleep(sleepMs);
            }
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        System.out.println("done " + n + " in " + ms + " ms rss_kb " + rssKb());
    }

    /** The resident set size from /proc/self/status, or -1 where there is none. */
    static long rssKb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (Exception e) {
            // not Linux
        }
        return -1;
    }
}
