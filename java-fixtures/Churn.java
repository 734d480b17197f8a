import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32;

/**
 * A CPU- and allocation-bound job like a batch service's: N rounds (first
 * argument) of filling, checksumming and keeping short-lived buffers, which
 * keeps the young generation collecting. Prints
 * "done N in MS ms rss_kb KB gcs COUNT cpu_ms CPU crc CRC" so tests can
 * compare runs with and without the agent: CPU is the CPU time of the thread
 * that did the work, which other processes on the machine do not inflate as
 * they do MS.
 */
public class Churn {
    public static void main(String[] args) throws Exception {
        int rounds = Integer.parseInt(args[0]);
        byte[][] window = new byte[256][];
        CRC32 crc = new CRC32();
        long seed = 42;
        var threads = java.lang.management.ManagementFactory.getThreadMXBean();
        long cpuStart = threads.getCurrentThreadCpuTime();
        long start = System.nanoTime();
        for (int i = 0; i < rounds; i++) {
            byte[] buffer = new byte[16 * 1024];
            for (int j = 0; j < buffer.length; j += 8) {
                seed = seed * 6364136223846793005L + 1442695040888963407L;
                buffer[j] = (byte) (seed >>> 56);
            }
            crc.update(buffer);
            window[i % window.length] = buffer;
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        long cpuMs = (threads.getCurrentThreadCpuTime() - cpuStart) / 1_000_000;
        long gcs = 0;
        for (var gc : java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()) {
            gcs += gc.getCollectionCount();
        }
        System.out.println("done " + rounds + " in " + ms + " ms rss_kb " + GcLoop.rssKb()
                + " gcs " + gcs + " cpu_ms " + cpuMs + " crc " + crc.getValue());
    }
}
