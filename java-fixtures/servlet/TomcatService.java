import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.file.Files;
import java.util.function.Consumer;
import org.apache.catalina.Context;
import org.apache.catalina.startup.Tomcat;
import org.apache.tomcat.util.descriptor.web.FilterDef;
import org.apache.tomcat.util.descriptor.web.FilterMap;

/**
 * Embedded Tomcat 10 (Debian's libtomcat10-embed-java) with servlets behind
 * two filters mapped to every path: /hello, /slow (sleeps ?ms=N), /error
 * (answers 500) and /boom (throws). Bodies say "took N" (microseconds the
 * servlet measured). Prints "port N" when it listens; stops when its
 * standard input closes.
 */
public class TomcatService {
    static final class PassThrough implements Filter {
        private final String name;

        PassThrough(String name) {
            this.name = name;
        }

        @Override
        public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
                throws IOException, ServletException {
            ((HttpServletResponse) response).addHeader("X-Filter", name);
            chain.doFilter(request, response);
        }
    }

    static final class Endpoints extends HttpServlet {
        @Override
        protected void doGet(HttpServletRequest request, HttpServletResponse response)
                throws IOException, ServletException {
            long start = System.nanoTime();
            switch (request.getServletPath()) {
                case "/slow" -> {
                    String query = request.getQueryString();
                    long ms = query != null && query.startsWith("ms=") ? Long.parseLong(query.substring(3)) : 50;
                    try {
                        Thread.sleep(ms);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                case "/error" -> response.setStatus(500);
                case "/boom" -> throw new ServletException("servlet failed");
                default -> {
                }
            }
            response.getWriter().print("took " + (System.nanoTime() - start) / 1_000 + "\n");
        }
    }

    static void filter(Context context, String name) {
        FilterDef def = new FilterDef();
        def.setFilterName(name);
        def.setFilter(new PassThrough(name));
        context.addFilterDef(def);
        FilterMap map = new FilterMap();
        map.setFilterName(name);
        map.addURLPattern("/*");
        context.addFilterMap(map);
    }

    public static void main(String[] args) throws Exception {
        serve(context -> {
            Tomcat.addServlet(context, "endpoints", new Endpoints());
            for (String path : new String[] {"/hello", "/slow", "/error", "/boom"}) {
                context.addServletMappingDecoded(path, "endpoints");
            }
            filter(context, "one");
            filter(context, "two");
        });
    }

    /**
     * Runs an embedded Tomcat on a free loopback port with the root context
     * as `setup` makes it: prints "port N" once it listens, and stops (and
     * exits) when standard input closes.
     */
    public static void serve(Consumer<Context> setup) throws Exception {
        String base = Files.createTempDirectory("tomcat-fixture").toString();
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(base);
        tomcat.setPort(0);
        tomcat.getConnector().setProperty("address", "127.0.0.1");
        setup.accept(tomcat.addContext("", base));
        tomcat.start();
        System.out.println("port " + tomcat.getConnector().getLocalPort());
        System.out.flush();
        while (System.in.read() != -1) {
            // Runs until the parent closes our input.
        }
        tomcat.stop();
        tomcat.destroy();
        System.exit(0);
    }
}
