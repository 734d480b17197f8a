import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * A plain JVM program that times its own "requests" and reports them as OTLP/JSON
 * over HTTP, the way a hand-rolled or non-Java exporter would: proves that the
 * analyzer accepts OTLP/JSON from a real JVM client, not only from Rust.
 *
 * Usage: java OtlpJsonSender URL COUNT  (URL is the /v1/traces endpoint)
 * Prints one line per span: "sent SPAN_ID ELAPSED_US STATUS".
 */
public final class OtlpJsonSender {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        int count = Integer.parseInt(args[1]);
        SecureRandom random = new SecureRandom();
        HexFormat hex = HexFormat.of();
        HttpClient client = HttpClient.newHttpClient();
        StringBuilder spans = new StringBuilder();
        StringBuilder report = new StringBuilder();
        for (int i = 0; i < count; i++) {
            byte[] traceId = new byte[16];
            byte[] spanId = new byte[8];
            random.nextBytes(traceId);
            random.nextBytes(spanId);
            traceId[0] |= 1;
            spanId[0] |= 1;
            long start = System.currentTimeMillis() * 1_000_000L;
            Thread.sleep(2 + i % 3);
            long end = System.currentTimeMillis() * 1_000_000L + 1_000_000L;
            int status = i % 4 == 3 ? 500 : 200;
            if (i > 0) {
                spans.append(',');
            }
            spans.append("{\"traceId\":\"").append(hex.formatHex(traceId))
                .append("\",\"spanId\":\"").append(hex.formatHex(spanId))
                .append("\",\"name\":\"GET /java/{n}\",\"kind\":2")
                .append(",\"startTimeUnixNano\":\"").append(start)
                .append("\",\"endTimeUnixNano\":\"").append(end)
                .append("\",\"attributes\":[{\"key\":\"http.route\",\"value\":{\"stringValue\":\"/java/{n}\"}},")
                .append("{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":").append(status).append("}},")
                .append("{\"key\":\"thread.name\",\"value\":{\"stringValue\":\"")
                .append(Thread.currentThread().getName()).append("\"}}]}");
            report.append("sent ").append(hex.formatHex(spanId)).append(' ')
                .append((end - start) / 1000).append(' ').append(status).append('\n');
        }
        String body = "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
            + "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"java-json\"}},"
            + "{\"key\":\"process.runtime.version\",\"value\":{\"stringValue\":\""
            + System.getProperty("java.runtime.version") + "\"}},"
            + "{\"key\":\"process.pid\",\"value\":{\"intValue\":\"" + ProcessHandle.current().pid() + "\"}},"
            + "{\"key\":\"host.name\",\"value\":{\"stringValue\":\"fixture-host\"}}]},"
            + "\"scopeSpans\":[{\"scope\":{\"name\":\"OtlpJsonSender\"},\"spans\":[" + spans + "]}]}]}";
        HttpRequest request = HttpRequest.newBuilder(URI.create(url))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .build();
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            System.err.println("export failed: " + response.statusCode() + " " + response.body());
            System.exit(1);
        }
        System.out.print(report);
    }
}
