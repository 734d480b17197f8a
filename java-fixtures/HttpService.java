import com.sun.net.httpserver.Filter;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Arrays;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A JDK HTTP server with the endpoints the agent tests need: /fast, /slow
 * (sleeps ?ms=N milliseconds), /fail (answers 500), /throw (the handler
 * throws), /filtered (behind two user filters), and /sql?n=N (runs N JDBC
 * statements, plain and prepared in turn, against an in-memory H2 database
 * when h2.jar is on the class path; else it answers 503), and /query (one
 * prepared H2 query, a customer's order count and total, that scans the
 * ORDERS rows made at start: about 1 ms of real work, for throughput on a
 * realistic endpoint, `ENDPOINT=/query bench/agent-http.py`; 503 without
 * H2 too), and /steps?n=N&ms=M (calls {@link #step} N times, each sleeping M
 * milliseconds, or throwing, caught, when M is negative: steps of the
 * transaction with `hook=HttpService#step`), /compute?n=N (N million
 * steps of arithmetic in {@link #compute}, the same CPU work every time:
 * about 200 ms at the default of 200 here, longer than the agent's
 * profile_after, for the throughput of profiled transactions,
 * `ENDPOINT=/compute bench/agent-http.py`), and /echo (runs one JDBC
 * statement when H2 is there, and answers "TRACEPARENT TRACESTATE": the
 * headers it received, "-" for one it did not: the back service of the
 * outgoing-call tests), and /checkout (calls /sql?n=2 of the service at the
 * URL in the system property jvmapm.demo.stock over HttpURLConnection, for
 * `jvmapm demo`'s trace across two services; 502 when that call fails, 503
 * without the property). Every other response
 * body says how long the handler took in microseconds ("took N"), so tests
 * can compare it with what the agent measured. With the argument "virtual" (JDK 21+)
 * each exchange runs on a virtual thread. With "backlog" (for `jvmapm demo`) a
 * daemon thread makes objects with a slow finalize() a little faster than the
 * Finalizer thread runs them, so the Finalizer backlog grows slowly, and
 * collects every two seconds. Prints "port N" when it listens and stops when
 * its standard input closes.
 */
public class HttpService {
    static final class SlowToFinalize {
        final byte[] payload = new byte[512];

        @Override
        @SuppressWarnings({"deprecation", "removal"})
        protected void finalize() throws Throwable {
            Thread.sleep(5);
        }
    }

    static volatile Object sink;

    /** About 240 objects a second against the Finalizer's 200. */
    static void growFinalizerBacklog() {
        Thread maker = new Thread(() -> {
            try {
                for (long round = 1; ; round++) {
                    for (int i = 0; i < 24; i++) {
                        sink = new SlowToFinalize();
                    }
                    if (round % 20 == 0) {
                        System.gc();
                    }
                    Thread.sleep(100);
                }
            } catch (InterruptedException stop) {
                Thread.currentThread().interrupt();
            }
        }, "backlog maker");
        maker.setDaemon(true);
        maker.start();
    }

    static void answer(HttpExchange exchange, int status, long startNanos) throws IOException {
        long tookUs = (System.nanoTime() - startNanos) / 1_000;
        byte[] body = ("took " + tookUs + "\n").getBytes(StandardCharsets.UTF_8);
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    static Filter passThrough(String name) {
        return new Filter() {
            @Override
            public void doFilter(HttpExchange exchange, Chain chain) throws IOException {
                exchange.getResponseHeaders().add("X-Filter", name);
                chain.doFilter(exchange);
            }

            @Override
            public String description() {
                return name;
            }
        };
    }

    static final String DATABASE = "jdbc:h2:mem:fixture;DB_CLOSE_DELAY=-1";

    /** A connection to the fixture's database; null when there is no H2 driver. */
    static Connection connect() {
        try {
            return DriverManager.getConnection(DATABASE);
        } catch (SQLException noDriver) {
            return null;
        }
    }

    /** Runs n statements; false when there is no H2 driver. */
    static boolean runSql(int n) throws SQLException {
        Connection connection = connect();
        if (connection == null) {
            return false;
        }
        try (connection;
                Statement plain = connection.createStatement();
                PreparedStatement prepared = connection.prepareStatement("UPDATE items SET hits = hits + 1 WHERE id = ?")) {
            for (int i = 0; i < n; i++) {
                if (i % 2 == 0) {
                    try (ResultSet rows = plain.executeQuery("SELECT name FROM items WHERE id = " + (i % 3))) {
                        while (rows.next()) {
                            rows.getString(1);
                        }
                    }
                } else {
                    prepared.setInt(1, i % 3);
                    prepared.executeUpdate();
                }
            }
        }
        return true;
    }

    /**
     * Orders made at start for /query: a scan of them with no index on the
     * customer takes about 1 ms on the 2-core VM of BENCHMARKS.md.
     */
    static final int ORDERS = 16_000;

    static final AtomicInteger nextCustomer = new AtomicInteger();

    /**
     * One customer's order count and total (a different customer each
     * time, so H2 cannot answer from its last result); false when there is
     * no H2 driver.
     */
    static boolean queryOrders() throws SQLException {
        Connection connection = connect();
        if (connection == null) {
            return false;
        }
        try (connection;
                PreparedStatement total = connection.prepareStatement(
                        "SELECT COUNT(*), SUM(amount) FROM orders WHERE customer = ?")) {
            total.setInt(1, Math.floorMod(nextCustomer.getAndIncrement(), 1000));
            try (ResultSet row = total.executeQuery()) {
                row.next();
                row.getLong(2);
            }
        }
        return true;
    }

    /** The request's header, "-" when it has none. */
    static String header(HttpExchange exchange, String name) {
        String value = exchange.getRequestHeaders().getFirst(name);
        return value == null ? "-" : value;
    }

    /** Sleeps ms milliseconds; throws when ms is negative. */
    static void step(long ms) throws InterruptedException {
        if (ms < 0) {
            throw new IllegalStateException("step failed");
        }
        Thread.sleep(ms);
    }

    /** The status of a GET of url, 599 when it could not be made. */
    static int call(String url) {
        try {
            var connection = (java.net.HttpURLConnection) java.net.URI.create(url).toURL().openConnection();
            connection.setConnectTimeout(2_000);
            connection.setReadTimeout(10_000);
            int status = connection.getResponseCode();
            var body = status < 400 ? connection.getInputStream() : connection.getErrorStream();
            if (body != null) {
                body.readAllBytes();
                body.close();
            }
            return status;
        } catch (IOException | IllegalArgumentException failed) {
            return 599;
        }
    }

    /** Millions of dependent multiply-adds, ten rounds deep in calls. */
    static long compute(long millions) {
        long x = 1;
        for (long m = 0; m < millions; m++) {
            x = computeRound(x, 10);
        }
        return x;
    }

    static long computeRound(long x, int depth) {
        if (depth > 0) {
            return computeRound(x, depth - 1);
        }
        for (int i = 0; i < 1_000_000; i++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
        }
        return x;
    }

    /** The value of parameter name in a query string like "n=3&ms=30", or fallback when it has none. */
    static long parameter(String query, String name, long fallback) {
        if (query != null) {
            for (String pair : query.split("&")) {
                if (pair.startsWith(name + "=")) {
                    return Long.parseLong(pair.substring(name.length() + 1));
                }
            }
        }
        return fallback;
    }

    public static void main(String[] args) throws Exception {
        // Without it, a response's separate writes of headers and body meet
        // delayed ACKs and every keep-alive request waits ~40 ms.
        System.setProperty("sun.net.httpserver.nodelay", "true");
        try (Connection setup = DriverManager.getConnection(DATABASE); Statement s = setup.createStatement()) {
            s.execute("CREATE TABLE items(id INT PRIMARY KEY, name VARCHAR(20), hits INT)");
            s.execute("INSERT INTO items VALUES (0, 'zero', 0), (1, 'one', 0), (2, 'two', 0)");
            s.execute("CREATE TABLE orders(id INT PRIMARY KEY, customer INT, amount INT)");
            s.execute("INSERT INTO orders SELECT X, MOD(X * 7919, 1000), MOD(X * 31, 997) FROM SYSTEM_RANGE(1, " + ORDERS + ")");
        } catch (SQLException noDriver) {
            // Without H2, /sql and /query answer 503.
        }
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/fast", exchange -> answer(exchange, 200, System.nanoTime()));
        server.createContext("/slow", exchange -> {
            long start = System.nanoTime();
            String query = exchange.getRequestURI().getQuery();
            long ms = query != null && query.startsWith("ms=") ? Long.parseLong(query.substring(3)) : 50;
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            answer(exchange, 200, start);
        });
        server.createContext("/steps", exchange -> {
            long start = System.nanoTime();
            String query = exchange.getRequestURI().getQuery();
            long n = parameter(query, "n", 1);
            long ms = parameter(query, "ms", 0);
            try {
                for (long i = 0; i < n; i++) {
                    try {
                        step(ms);
                    } catch (IllegalStateException failed) {
                        // a step that throws; the request still succeeds
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            answer(exchange, 200, start);
        });
        server.createContext("/compute", exchange -> {
            long start = System.nanoTime();
            long x = compute(parameter(exchange.getRequestURI().getQuery(), "n", 200));
            answer(exchange, x == 42 ? 500 : 200, start);
        });
        server.createContext("/checkout", exchange -> {
            long start = System.nanoTime();
            String stock = System.getProperty("jvmapm.demo.stock");
            answer(exchange, stock == null ? 503 : call(stock + "/sql?n=2") < 400 ? 200 : 502, start);
        });
        server.createContext("/fail", exchange -> answer(exchange, 500, System.nanoTime()));
        server.createContext("/echo", exchange -> {
            try {
                runSql(1);
            } catch (SQLException e) {
                throw new IOException(e);
            }
            exchange.getRequestBody().readAllBytes();
            String received = header(exchange, "traceparent") + " " + header(exchange, "tracestate") + "\n";
            byte[] body = received.getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.createContext("/sql", exchange -> {
            long start = System.nanoTime();
            String query = exchange.getRequestURI().getQuery();
            int n = query != null && query.startsWith("n=") ? Integer.parseInt(query.substring(2)) : 1;
            try {
                answer(exchange, runSql(n) ? 200 : 503, start);
            } catch (SQLException e) {
                throw new IOException(e);
            }
        });
        server.createContext("/query", exchange -> {
            long start = System.nanoTime();
            try {
                answer(exchange, queryOrders() ? 200 : 503, start);
            } catch (SQLException e) {
                throw new IOException(e);
            }
        });
        server.createContext("/throw", exchange -> {
            throw new IllegalStateException("handler failed");
        });
        var filtered = server.createContext("/filtered", exchange -> answer(exchange, 200, System.nanoTime()));
        filtered.getFilters().add(passThrough("one"));
        filtered.getFilters().add(passThrough("two"));
        if (Arrays.asList(args).contains("backlog")) {
            growFinalizerBacklog();
        }
        if (Arrays.asList(args).contains("virtual")) {
            // Compiled for 17, so found by reflection.
            server.setExecutor((java.util.concurrent.Executor)
                    Executors.class.getMethod("newVirtualThreadPerTaskExecutor").invoke(null));
        } else {
            server.setExecutor(Executors.newFixedThreadPool(4));
        }
        server.start();
        System.out.println("port " + server.getAddress().getPort());
        System.out.flush();
        while (System.in.read() != -1) {
            // Runs until the parent closes our input.
        }
        server.stop(0);
        System.exit(0);
    }
}
