/**
 * Young collections and full ones in the same second: after half a second
 * (a service starting up), each of N rounds (first argument) allocates
 * enough short-lived garbage for several young collections, calls
 * System.gc() once, and sleeps 300 ms. Prints "done N". The agent tests
 * check that every pause is named by its collector although two collectors
 * ran between two sampling rounds.
 */
public class GcMix {
    static volatile Object sink;

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        Thread.sleep(500);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < 60_000; j++) {
                sink = new byte[512];
            }
            System.gc();
            Thread.sleep(300);
        }
        System.out.println("done " + n);
    }
}
