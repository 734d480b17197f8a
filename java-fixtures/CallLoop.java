/**
 * Calls a tiny method N times per round (first argument) for five rounds and
 * prints "ns_per_call X" for the fastest round: the cost of one call, which
 * the agent benchmark compares with and without `hook=CallLoop#work`. With a
 * second argument K, the calls are made K at a time from batch(), so that
 * with `hook=CallLoop#batch;CallLoop#work` every batch is a transaction and
 * each of its K calls a step of it.
 */
public class CallLoop {
    static int work(int x) {
        return x * 31 + 7;
    }

    static int batch(int from, int count) {
        int sum = 0;
        for (int i = from; i < from + count; i++) {
            sum += work(i);
        }
        return sum;
    }

    public static void main(String[] args) {
        int n = Integer.parseInt(args[0]);
        int perBatch = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        int sink = 0;
        double best = Double.MAX_VALUE;
        for (int round = 0; round < 5; round++) {
            long start = System.nanoTime();
            if (perBatch > 0) {
                for (int i = 0; i < n; i += perBatch) {
                    sink += batch(i, perBatch);
                }
            } else {
                for (int i = 0; i < n; i++) {
                    sink += work(i);
                }
            }
            best = Math.min(best, (System.nanoTime() - start) / (double) n);
        }
        System.out.printf("ns_per_call %.2f sink %d%n", best, sink);
    }
}
