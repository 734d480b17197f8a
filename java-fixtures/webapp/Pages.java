import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;

/**
 * The webapp's exact (`/hello`, `/boom`) and extension (`*.do`) mappings:
 * `/boom` throws, everything else answers "took N" (microseconds the
 * servlet measured).
 */
public class Pages extends HttpServlet {
    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response)
            throws IOException, ServletException {
        long start = System.nanoTime();
        if (request.getServletPath().equals("/boom")) {
            throw new ServletException("the page failed");
        }
        response.getWriter().print("took " + (System.nanoTime() - start) / 1_000 + "\n");
    }
}
