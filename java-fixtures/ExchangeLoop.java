import com.sun.net.httpserver.Authenticator;
import com.sun.net.httpserver.Filter;
import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpContext;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpPrincipal;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Drives the JDK HTTP server's filter chain in-process, on one thread: each
 * request is a new exchange (a GET of /hello with a Host header, its URI
 * parsed as the server parses the request line) handed to
 * `Filter.Chain.doFilter`, the method the agent instruments by itself, with
 * a handler that answers 200. No sockets and no hand-off between threads,
 * so what the agent adds to a transaction on the application thread shows
 * without wrk's noise. Runs rounds of BURST requests (fewer than the agent's
 * queue to its exporter holds) with a pause after each, long enough for the
 * exporter to take them, as a server's steady load would let it; the first
 * WARMUP_ROUNDS let the JIT compile the loop. Prints "ns_per_request X" for
 * the fastest of the measured rounds (first argument: how many; default
 * 20). Run it with -XX:+AlwaysPreTouch: else the rounds that first allocate
 * into fresh heap pages pay their page faults (~100 ns a request here).
 */
public class ExchangeLoop {
    static final int BURST = 10_000;
    static final int WARMUP_ROUNDS = 30;
    static final long PAUSE_MS = 100;

    /** A context the exchanges were handed to, as HttpServer.createContext makes. */
    static final class Context extends HttpContext {
        final HttpHandler handler;
        final Map<String, Object> attributes = new HashMap<>();

        Context(HttpHandler handler) {
            this.handler = handler;
        }

        @Override
        public HttpHandler getHandler() {
            return handler;
        }

        @Override
        public void setHandler(HttpHandler h) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String getPath() {
            return "/hello";
        }

        @Override
        public HttpServer getServer() {
            return null;
        }

        @Override
        public Map<String, Object> getAttributes() {
            return attributes;
        }

        @Override
        public List<Filter> getFilters() {
            return List.of();
        }

        @Override
        public Authenticator setAuthenticator(Authenticator auth) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Authenticator getAuthenticator() {
            return null;
        }
    }

    /** One request and its response, without a connection. */
    static final class Exchange extends HttpExchange {
        final Context context;
        final URI uri;
        final Headers requestHeaders = new Headers();
        final Headers responseHeaders = new Headers();
        int status = -1;

        Exchange(Context context, String requestTarget) {
            this.context = context;
            this.uri = URI.create(requestTarget);
            requestHeaders.add("Host", "127.0.0.1");
        }

        @Override
        public Headers getRequestHeaders() {
            return requestHeaders;
        }

        @Override
        public Headers getResponseHeaders() {
            return responseHeaders;
        }

        @Override
        public URI getRequestURI() {
            return uri;
        }

        @Override
        public String getRequestMethod() {
            return "GET";
        }

        @Override
        public HttpContext getHttpContext() {
            return context;
        }

        @Override
        public void close() {
        }

        @Override
        public InputStream getRequestBody() {
            return InputStream.nullInputStream();
        }

        @Override
        public OutputStream getResponseBody() {
            return OutputStream.nullOutputStream();
        }

        @Override
        public void sendResponseHeaders(int rCode, long responseLength) {
            status = rCode;
        }

        @Override
        public InetSocketAddress getRemoteAddress() {
            return null;
        }

        @Override
        public int getResponseCode() {
            return status;
        }

        @Override
        public InetSocketAddress getLocalAddress() {
            return null;
        }

        @Override
        public String getProtocol() {
            return "HTTP/1.1";
        }

        @Override
        public Object getAttribute(String name) {
            return null;
        }

        @Override
        public void setAttribute(String name, Object value) {
        }

        @Override
        public void setStreams(InputStream i, OutputStream o) {
        }

        @Override
        public HttpPrincipal getPrincipal() {
            return null;
        }
    }

    /** Nanoseconds per request of one burst. */
    static double burst(Filter.Chain chain, Context context) throws IOException {
        long start = System.nanoTime();
        for (int i = 0; i < BURST; i++) {
            Exchange exchange = new Exchange(context, "/hello");
            chain.doFilter(exchange);
            if (exchange.status != 200) {
                throw new IllegalStateException("the handler answered " + exchange.status);
            }
        }
        return (System.nanoTime() - start) / (double) BURST;
    }

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        Context context = new Context(exchange -> exchange.sendResponseHeaders(200, -1));
        Filter.Chain chain = new Filter.Chain(List.of(), context.getHandler());
        double[] took = new double[WARMUP_ROUNDS + rounds];
        for (int round = 0; round < took.length; round++) {
            took[round] = burst(chain, context);
            Thread.sleep(PAUSE_MS);
        }
        double best = Arrays.stream(took, WARMUP_ROUNDS, took.length).min().getAsDouble();
        System.out.printf("ns_per_request %.1f%n", best);
    }
}
