import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A big live heap for the heap dump benchmark: about MB megabytes (the
 * argument, default 1200) of what services hold, as strings in hash maps,
 * linked records, byte buffers and object arrays. Prints "ready" and waits
 * until its standard input closes.
 */
public class BigHeap {
    static final class Order {
        final long id;
        final String customer;
        final int[] lines;
        Order previous;

        Order(long id, String customer, Order previous) {
            this.id = id;
            this.customer = customer;
            this.lines = new int[(int) (id % 7)];
            this.previous = previous;
        }
    }

    static final List<Object> KEEP = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        long target = (args.length > 0 ? Long.parseLong(args[0]) : 1200) << 20;
        long held = 0;
        long n = 0;
        Order last = null;
        Map<String, Object> map = new HashMap<>();
        while (held < target) {
            String key = "customer-" + n;
            last = new Order(n, key, last);
            map.put(key, last);
            held += 24 + 48 + 40 + 48 + 16 + 4 * (n % 7) + 40;
            if (n % 64 == 0) {
                byte[] buffer = new byte[(int) (n % 4096)];
                KEEP.add(buffer);
                held += buffer.length + 16;
            }
            if (n % 100_000 == 99_999) {
                KEEP.add(map);
                KEEP.add(last);
                map = new HashMap<>();
                last = null;
            }
            n++;
        }
        KEEP.add(map);
        KEEP.add(last);
        System.out.println("ready");
        System.out.flush();
        while (System.in.read() != -1) {
            // Quiet until the benchmark is done.
        }
    }
}
