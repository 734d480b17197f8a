/**
 * Calls System.gc() N times (first argument), with some garbage between the
 * calls, then waits for its stdin to close if the second argument is "wait".
 * The agent tests count the GC pauses the agent reports against N.
 */
public class GcLoop {
    static volatile Object sink;

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < 10_000; j++) {
                sink = new byte[128];
            }
            System.gc();
        }
        System.out.println("done " + n);
        System.out.flush();
        if (args.length > 1 && args[1].equals("wait")) {
            while (System.in.read() != -1) {
            }
        }
    }
}
