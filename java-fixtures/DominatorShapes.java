import java.lang.ref.SoftReference;
import java.lang.ref.WeakReference;
import java.util.HashMap;
import java.util.Map;

/**
 * Object graphs whose dominators and retained sizes are known by
 * construction, for the heap dump tests. Every shape uses classes of its
 * own with one instance each, so a class's retained bytes are its object's.
 * All hang from one Shapes object held by a static field; a big cache
 * behind another static field is the leak suspect. Prints "ready" and waits
 * until its standard input closes.
 */
public class DominatorShapes {
    // A chain: head -> middle -> tail -> byte[100].
    static final class ChainHead { ChainMiddle next = new ChainMiddle(); }
    static final class ChainMiddle { ChainTail next = new ChainTail(); }
    static final class ChainTail { byte[] data = new byte[100]; }

    // A diamond: top -> left, right; left -> bottom; right -> bottom.
    static final class DiamondTop { DiamondLeft left; DiamondRight right; }
    static final class DiamondLeft { DiamondBottom bottom; }
    static final class DiamondRight { DiamondBottom bottom; }
    static final class DiamondBottom { byte[] data = new byte[200]; }

    // A cycle entered at A: A -> B -> C -> A, and C -> byte[300].
    static final class CycleA { CycleB next; }
    static final class CycleB { CycleC next; }
    static final class CycleC { CycleA next; byte[] data = new byte[300]; }

    // A child shared by two owners.
    static final class SharedOwnerOne { SharedChild child; }
    static final class SharedOwnerTwo { SharedChild child; }
    static final class SharedChild { byte[] data = new byte[400]; }

    // A target held strongly by one owner and weakly by another.
    static final class WeakOwner { WeakTarget strong; WeakReference<WeakTarget> weak; }
    static final class WeakTarget { byte[] data = new byte[500]; }

    // A target only a soft reference holds: nothing keeps it alive.
    static final class SoftOwner { SoftReference<SoftTarget> soft; }
    static final class SoftTarget { byte[] data = new byte[600]; }

    static final class Shapes {
        ChainHead chain = new ChainHead();
        DiamondTop diamond = new DiamondTop();
        CycleA cycle = new CycleA();
        SharedOwnerOne sharedOne = new SharedOwnerOne();
        SharedOwnerTwo sharedTwo = new SharedOwnerTwo();
        WeakOwner weakOwner = new WeakOwner();
        SoftOwner softOwner = new SoftOwner();

        Shapes() {
            DiamondBottom bottom = new DiamondBottom();
            diamond.left = new DiamondLeft();
            diamond.right = new DiamondRight();
            diamond.left.bottom = bottom;
            diamond.right.bottom = bottom;
            cycle.next = new CycleB();
            cycle.next.next = new CycleC();
            cycle.next.next.next = cycle;
            SharedChild child = new SharedChild();
            sharedOne.child = child;
            sharedTwo.child = child;
            WeakTarget target = new WeakTarget();
            weakOwner.strong = target;
            weakOwner.weak = new WeakReference<>(target);
            softOwner.soft = new SoftReference<>(new SoftTarget());
        }
    }

    /** The leak: 2000 buffers of 5000 bytes behind a static map. */
    static final class Cache {
        static final Map<Integer, byte[]> ENTRIES = new HashMap<>();
    }

    static final Shapes SHAPES = new Shapes();

    public static void main(String[] args) throws Exception {
        for (int i = 0; i < 2000; i++) {
            Cache.ENTRIES.put(1000 + i, new byte[5000]);
        }
        System.out.println("ready");
        System.out.flush();
        while (System.in.read() != -1) {
            // Quiet until the test is done.
        }
    }
}
