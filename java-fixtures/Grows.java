import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;

/**
 * A heap that grows on request, for `jvmapm heap --diff`: prints "ready",
 * then for each line read adds 10000 entries and prints "grown".
 */
public class Grows {
    static final class Entry {
        final long id;

        Entry(long id) {
            this.id = id;
        }
    }

    static final List<Entry> ENTRIES = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        System.out.println("ready");
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        while (in.readLine() != null) {
            for (int i = 0; i < 10000; i++) {
                ENTRIES.add(new Entry(ENTRIES.size()));
            }
            System.out.println("grown");
            System.out.flush();
        }
    }
}
