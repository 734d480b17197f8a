import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.catalina.startup.Tomcat;

/**
 * The front service of the outgoing-call tests: embedded Tomcat 10 (Debian's
 * libtomcat10-embed-java) whose /call calls a back service (HttpService,
 * whose /echo answers the traceparent and tracestate it received) once
 * through each HTTP client library: HttpURLConnection (a POST with a body),
 * java.net.http's send and sendAsync, Apache HttpClient 4 and 5, OkHttp 3;
 * then once through an executor (HttpURLConnection on a pool thread), once
 * to the back's /fail (a 500) and once to a closed port. Its body has a line
 * per call: "NAME STATUS TRACEPARENT TRACESTATE" as the back received them
 * ("-" for none; the status is "refused" when the call failed). Before it
 * listens it calls the back through every library outside any transaction
 * and prints the same lines, each starting "outside". Then it serves as
 * {@link TomcatService#serve} does.
 *
 * Arguments: the back's port, then a port nothing listens on.
 */
public class OutgoingFront {
    static int backPort;
    static int closedPort;

    static final HttpClient JDK = HttpClient.newHttpClient();
    static final org.apache.http.impl.client.CloseableHttpClient APACHE4 =
            org.apache.http.impl.client.HttpClients.createDefault();
    static final org.apache.hc.client5.http.impl.classic.CloseableHttpClient APACHE5 =
            org.apache.hc.client5.http.impl.classic.HttpClients.createDefault();
    static final okhttp3.OkHttpClient OKHTTP = new okhttp3.OkHttpClient();
    static final ExecutorService POOL = Executors.newSingleThreadExecutor();

    /** A call's answer: the status and the back's body ("traceparent tracestate"), or why it failed. */
    interface Call {
        String run() throws Exception;
    }

    static String back(String path) {
        return "http://127.0.0.1:" + backPort + path;
    }

    static String echoed(int status, String body) {
        return status + " " + body.trim();
    }

    static String urlConnection() throws IOException {
        HttpURLConnection connection = (HttpURLConnection) new URL(back("/echo?user=secret&n=1")).openConnection();
        connection.setRequestMethod("POST");
        connection.setDoOutput(true);
        try (OutputStream out = connection.getOutputStream()) {
            out.write("hello".getBytes(StandardCharsets.UTF_8));
        }
        int status = connection.getResponseCode();
        try (InputStream in = connection.getInputStream()) {
            return echoed(status, new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
    }

    static String jdkSend() throws Exception {
        HttpResponse<String> response = JDK.send(HttpRequest.newBuilder(URI.create(back("/echo"))).build(),
                HttpResponse.BodyHandlers.ofString());
        return echoed(response.statusCode(), response.body());
    }

    static String jdkSendAsync() throws Exception {
        HttpResponse<String> response = JDK.sendAsync(HttpRequest.newBuilder(URI.create(back("/echo"))).build(),
                HttpResponse.BodyHandlers.ofString()).join();
        return echoed(response.statusCode(), response.body());
    }

    static String apache4() throws Exception {
        try (var response = APACHE4.execute(new org.apache.http.client.methods.HttpGet(back("/echo")))) {
            return echoed(response.getStatusLine().getStatusCode(),
                    org.apache.http.util.EntityUtils.toString(response.getEntity()));
        }
    }

    static String apache5() throws Exception {
        try (var response = APACHE5.execute(new org.apache.hc.client5.http.classic.methods.HttpGet(back("/echo")))) {
            return echoed(response.getCode(),
                    org.apache.hc.core5.http.io.entity.EntityUtils.toString(response.getEntity()));
        }
    }

    static String okhttp() throws Exception {
        // Credentials and a query value in the URL, which the span must not show.
        okhttp3.Request request = new okhttp3.Request.Builder()
                .url("http://user:password@127.0.0.1:" + backPort + "/echo?q=secret")
                .build();
        try (okhttp3.Response response = OKHTTP.newCall(request).execute()) {
            return echoed(response.code(), response.body().string());
        }
    }

    static String failing() throws IOException {
        HttpURLConnection connection = (HttpURLConnection) new URL(back("/fail")).openConnection();
        return connection.getResponseCode() + " - -";
    }

    static String closed() throws Exception {
        HttpResponse<String> response = JDK.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + closedPort + "/nothing")).build(),
                HttpResponse.BodyHandlers.ofString());
        return echoed(response.statusCode(), response.body());
    }

    static void line(StringBuilder out, String name, Call call) {
        String answer;
        try {
            answer = call.run();
        } catch (Exception failed) {
            answer = "refused - -";
        }
        out.append(name).append(' ').append(answer).append('\n');
    }

    /** Every library once, each call a line. */
    static void libraries(StringBuilder out) {
        line(out, "urlconnection", OutgoingFront::urlConnection);
        line(out, "jdk-send", OutgoingFront::jdkSend);
        line(out, "jdk-async", OutgoingFront::jdkSendAsync);
        line(out, "apache4", OutgoingFront::apache4);
        line(out, "apache5", OutgoingFront::apache5);
        line(out, "okhttp", OutgoingFront::okhttp);
    }

    static final class Front extends HttpServlet {
        @Override
        protected void doGet(HttpServletRequest request, HttpServletResponse response) throws IOException {
            StringBuilder out = new StringBuilder();
            libraries(out);
            line(out, "executor", () -> POOL.submit(OutgoingFront::urlConnection).get());
            line(out, "fail", OutgoingFront::failing);
            line(out, "closed", OutgoingFront::closed);
            response.getWriter().print(out);
        }
    }

    public static void main(String[] args) throws Exception {
        backPort = Integer.parseInt(args[0]);
        closedPort = Integer.parseInt(args[1]);
        StringBuilder outside = new StringBuilder();
        libraries(outside);
        for (String call : outside.toString().split("\n")) {
            System.out.println("outside " + call);
        }
        TomcatService.serve(context -> {
            Tomcat.addServlet(context, "front", new Front());
            context.addServletMappingDecoded("/call", "front");
        });
    }
}
