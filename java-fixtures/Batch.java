import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.reflect.Method;
import java.util.Arrays;

/**
 * A batch job for the agent's hook= option: main calls run(i) for i = 0..N-1
 * (first argument); run calls step twice and sleeps 20 ms; run(3) throws
 * (and main catches it); main renames its thread "batch-second-half" half
 * way. Hooking Batch#run and Batch#step makes run the
 * transaction and step a nested call that makes none. Prints
 * "runs N failed 1 steps S sum T", then what reflection says of run (its
 * annotation, its throws clause) and the names of the declared methods that
 * are not synthetic: all the same with the agent, which wraps run.
 */
public class Batch {
    @Retention(RetentionPolicy.RUNTIME)
    @interface Job {
        String value();
    }

    static int steps;

    void step() {
        steps++;
    }

    @Job("nightly")
    long run(int i) throws InterruptedException {
        step();
        Thread.sleep(20);
        step();
        if (i == 3) {
            throw new IllegalArgumentException("run 3 fails");
        }
        return i * 2L;
    }

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        Batch batch = new Batch();
        int failed = 0;
        long sum = 0;
        for (int i = 0; i < n; i++) {
            if (i == n / 2) {
                Thread.currentThread().setName("batch-second-half");
            }
            try {
                sum += batch.run(i);
            } catch (IllegalArgumentException e) {
                failed++;
            }
        }
        System.out.println("runs " + n + " failed " + failed + " steps " + steps + " sum " + sum);
        Method run = Batch.class.getDeclaredMethod("run", int.class);
        System.out.println("run is @Job(" + run.getAnnotation(Job.class).value() + ") throws "
                + Arrays.toString(run.getExceptionTypes()));
        System.out.println("methods " + Arrays.stream(Batch.class.getDeclaredMethods())
                .filter(m -> !m.isSynthetic())
                .map(Method::getName)
                .sorted()
                .toList());
    }
}
