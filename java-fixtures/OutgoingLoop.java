import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URL;
import java.nio.charset.StandardCharsets;

/**
 * Makes HttpURLConnection calls (GET, response read, keep-alive) to a bare
 * HTTP responder on a loopback socket in the same JVM (a plain
 * ServerSocket: nothing the agent instruments), K at a time from batch(),
 * so that with `hook=OutgoingLoop#batch` every batch is a transaction and
 * each of its calls an outgoing call inside it, and with another hook (or
 * none) every call is made outside any transaction. Arguments: calls a
 * round N, calls a batch K. Runs WARMUP_ROUNDS, then ROUNDS, and prints
 * "ns_per_call X" for the fastest round.
 */
public class OutgoingLoop {
    static final int WARMUP_ROUNDS = 3;
    static final int ROUNDS = 7;
    static final byte[] ANSWER = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".getBytes(StandardCharsets.US_ASCII);

    static URL url;

    /** Answers every request on a connection with 200 "ok" until the client closes it. */
    static void respond(Socket socket) {
        try (socket;
                BufferedReader in = new BufferedReader(
                        new InputStreamReader(socket.getInputStream(), StandardCharsets.US_ASCII));
                OutputStream out = socket.getOutputStream()) {
            socket.setTcpNoDelay(true);
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) {
                    out.write(ANSWER);
                    out.flush();
                }
            }
        } catch (IOException closed) {
            // the client went away
        }
    }

    static int call() throws IOException {
        HttpURLConnection connection = (HttpURLConnection) url.openConnection();
        int status = connection.getResponseCode();
        try (InputStream in = connection.getInputStream()) {
            in.readAllBytes();
        }
        return status;
    }

    static int batch(int count) throws IOException {
        int sum = 0;
        for (int i = 0; i < count; i++) {
            sum += call();
        }
        return sum;
    }

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        int perBatch = Integer.parseInt(args[1]);
        ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread acceptor = new Thread(() -> {
            while (true) {
                try {
                    Socket socket = server.accept();
                    Thread responder = new Thread(() -> respond(socket));
                    responder.setDaemon(true);
                    responder.start();
                } catch (IOException closed) {
                    return;
                }
            }
        });
        acceptor.setDaemon(true);
        acceptor.start();
        url = new URL("http://127.0.0.1:" + server.getLocalPort() + "/ping?id=7");
        long sink = 0;
        double best = Double.MAX_VALUE;
        for (int round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
            long start = System.nanoTime();
            for (int i = 0; i < n; i += perBatch) {
                sink += batch(perBatch);
            }
            double perCall = (System.nanoTime() - start) / (double) n;
            if (round >= WARMUP_ROUNDS) {
                best = Math.min(best, perCall);
            }
            Thread.sleep(200); // the exporter takes the round's spans
        }
        System.out.printf("ns_per_call %.1f sink %d%n", best, sink);
        server.close();
    }
}
