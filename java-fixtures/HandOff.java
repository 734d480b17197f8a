import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RecursiveTask;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The fixture of the context-across-threads tests (tests/agent_executors.rs).
 * With `hook=HandOff#work`, work() is a transaction that hands one piece of
 * work to each kind of JDK executor and waits for it: ThreadPoolExecutor's
 * execute (a lambda) and submit (a Callable), a ScheduledThreadPoolExecutor's
 * schedule, CompletableFuture.supplyAsync (the common ForkJoinPool),
 * thenApplyAsync on another ThreadPoolExecutor, and a RecursiveTask's fork.
 * Each piece runs one SQL query (in-memory H2) and calls a back service
 * (HttpService, whose /echo answers the traceparent it received), and
 * prints "inside NAME TRACEPARENT". Last it schedules a periodic task whose
 * first run calls the back and lets work() end, then waits until work()
 * has ended; its later runs print "periodic N TRACEPARENT".
 *
 * Then, outside any transaction: a request to this fixture's own JDK HTTP
 * server, whose executor is the pool that ran execute and submit (so its
 * one thread, which ran tasks of the transaction, handles it); its handler
 * calls the back and prints "server THREAD TRACEPARENT". Then every
 * executor runs the same hand-offs again for no transaction, each calling
 * the back: "outside NAME TRACEPARENT". "-" stands for no header. Prints
 * nothing else, and exits.
 *
 * Argument: the back's port.
 */
public class HandOff {
    static String back;
    static Connection database;

    static ThreadPoolExecutor pool(String name) {
        return new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
                task -> new Thread(task, name));
    }

    static final ThreadPoolExecutor POOL = pool("pool");
    static final ThreadPoolExecutor CUSTOM = pool("custom");
    static final ScheduledThreadPoolExecutor SCHEDULED = new ScheduledThreadPoolExecutor(1,
            task -> new Thread(task, "scheduled"));

    /** One SQL query when `sql`, then a call to the back: the traceparent it received. */
    static String call(boolean sql) {
        try {
            if (sql) {
                try (Statement statement = database.createStatement();
                        ResultSet rows = statement.executeQuery("SELECT 1")) {
                    rows.next();
                }
            }
            HttpURLConnection connection = (HttpURLConnection) new URL(back).openConnection();
            try (InputStream in = connection.getInputStream()) {
                return new String(in.readAllBytes(), StandardCharsets.UTF_8).trim().split(" ")[0];
            }
        } catch (IOException | SQLException failed) {
            return "failed:" + failed;
        }
    }

    static final class Leaf extends RecursiveTask<String> {
        final boolean sql;

        Leaf(boolean sql) {
            this.sql = sql;
        }

        @Override
        protected String compute() {
            return call(sql);
        }
    }

    /** Hands one call to each executor, waits for each, and prints what the back received. */
    static void handOffs(String label, boolean sql) throws Exception {
        CountDownLatch executed = new CountDownLatch(1);
        String[] fromExecute = new String[1];
        POOL.execute(() -> {
            fromExecute[0] = call(sql);
            executed.countDown();
        });
        executed.await();
        print(label, "execute", fromExecute[0]);
        print(label, "submit", POOL.submit(() -> call(sql)).get());
        print(label, "schedule", SCHEDULED.schedule(() -> call(sql), 10, TimeUnit.MILLISECONDS).get());
        print(label, "supplyAsync", CompletableFuture.supplyAsync(() -> call(sql)).join());
        print(label, "thenApplyAsync",
                CompletableFuture.completedFuture(sql).thenApplyAsync(HandOff::call, CUSTOM).join());
        print(label, "fork", new Leaf(sql).fork().join());
    }

    static void print(String label, String name, String traceparent) {
        System.out.println(label + " " + name + " " + traceparent);
    }

    static final CountDownLatch FIRST_RUN = new CountDownLatch(1);
    static final CountDownLatch ENDED = new CountDownLatch(1);
    static final CountDownLatch LATER_RUNS = new CountDownLatch(2);
    static int runs;

    /** The periodic task: its first run is inside the transaction, which it lets end before it returns. */
    static void periodic() {
        String received = call(false);
        runs++;
        if (runs == 1) {
            print("inside", "periodic", received);
            FIRST_RUN.countDown();
            try {
                ENDED.await();
            } catch (InterruptedException stop) {
                Thread.currentThread().interrupt();
            }
        } else if (LATER_RUNS.getCount() > 0) {
            print("periodic", String.valueOf(runs), received);
            LATER_RUNS.countDown();
        }
    }

    /** The transaction (with `hook=HandOff#work`). */
    static ScheduledFuture<?> work() throws Exception {
        handOffs("inside", true);
        ScheduledFuture<?> periodic = SCHEDULED.scheduleWithFixedDelay(HandOff::periodic, 0, 20, TimeUnit.MILLISECONDS);
        FIRST_RUN.await();
        return periodic;
    }

    public static void main(String[] args) throws Exception {
        back = "http://127.0.0.1:" + args[0] + "/echo";
        database = DriverManager.getConnection("jdbc:h2:mem:handoff");
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.setExecutor(POOL);
        server.createContext("/who", exchange -> {
            byte[] body = (Thread.currentThread().getName() + " " + call(false)).getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();

        ScheduledFuture<?> periodic = work();
        ENDED.countDown();
        LATER_RUNS.await();
        periodic.cancel(false);

        HttpURLConnection who = (HttpURLConnection) new URL(
                "http://127.0.0.1:" + server.getAddress().getPort() + "/who").openConnection();
        try (InputStream in = who.getInputStream()) {
            System.out.println("server " + new String(in.readAllBytes(), StandardCharsets.UTF_8).trim());
        }
        handOffs("outside", false);
        server.stop(0);
        POOL.shutdown();
        CUSTOM.shutdown();
        SCHEDULED.shutdown();
        database.close();
    }
}
