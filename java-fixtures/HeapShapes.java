import java.util.ArrayList;
import java.util.List;

/**
 * Objects of known shapes for the heap dump tests: classes with every kind
 * of field, a subclass whose fields fill its superclass's gaps, an empty
 * class, arrays of every primitive type and of objects in several lengths,
 * two-dimensional arrays and strings, about 30 MB in all, held from a static
 * field. Prints "ready" and waits until its standard input closes, so tests
 * can run jcmd against a quiet JVM.
 */
public class HeapShapes {
    static final class Empty {}

    static class Wide {
        long l;
        double d;
        int i;
        byte b;
        Object ref;
    }

    static final class Narrow extends Wide {
        boolean flag;
        short s;
        char c;
    }

    static final class Node {
        final Node next;
        final int value;

        Node(Node next, int value) {
            this.next = next;
            this.value = value;
        }
    }

    static final class Floats {
        float a;
        float b;
        float c;
    }

    static final List<Object> KEEP = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        for (int i = 0; i < 10_000; i++) {
            KEEP.add(new Empty());
            Narrow n = new Narrow();
            n.ref = n;
            KEEP.add(n);
            KEEP.add(new Floats());
        }
        for (int i = 0; i < 7_000; i++) {
            KEEP.add(new Wide());
        }
        Node chain = null;
        for (int i = 0; i < 50_000; i++) {
            chain = new Node(chain, i);
        }
        KEEP.add(chain);
        for (int length : new int[] {0, 1, 3, 7, 8, 100, 1001}) {
            for (int i = 0; i < 300; i++) {
                KEEP.add(new boolean[length]);
                KEEP.add(new char[length]);
                KEEP.add(new float[length]);
                KEEP.add(new double[length]);
                KEEP.add(new byte[length]);
                KEEP.add(new short[length]);
                KEEP.add(new int[length]);
                KEEP.add(new long[length]);
                KEEP.add(new Object[length]);
                KEEP.add(new Node[length]);
            }
        }
        for (int i = 0; i < 2_000; i++) {
            KEEP.add(new int[i % 5][3]);
            KEEP.add("string number " + i);
        }
        System.out.println("ready");
        System.out.flush();
        while (System.in.read() != -1) {
            // Quiet until the test is done.
        }
    }
}
