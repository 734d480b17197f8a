import com.sun.net.httpserver.Filter;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

/**
 * A JDK HTTP server with the endpoints the agent tests need: /fast, /slow
 * (sleeps ?ms=N milliseconds), /fail (answers 500), /throw (the handler
 * throws), and /filtered (behind two user filters). Every response body says
 * how long the handler took in microseconds ("took N"), so tests can compare
 * it with what the agent measured. With the argument "virtual" (JDK 21+)
 * each exchange runs on a virtual thread. Prints "port N" when it listens
 * and stops when its standard input closes.
 */
public class HttpService {
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

    public static void main(String[] args) throws Exception {
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
        server.createContext("/fail", exchange -> answer(exchange, 500, System.nanoTime()));
        server.createContext("/throw", exchange -> {
            throw new IllegalStateException("handler failed");
        });
        var filtered = server.createContext("/filtered", exchange -> answer(exchange, 200, System.nanoTime()));
        filtered.getFilters().add(passThrough("one"));
        filtered.getFilters().add(passThrough("two"));
        if (args.length > 0 && args[0].equals("virtual")) {
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
