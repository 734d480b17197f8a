import jakarta.servlet.FilterChain;
import jakarta.servlet.http.HttpFilter;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;

/**
 * Answers `/health` by itself (no servlet is mapped there): the request
 * never reaches a servlet.
 */
public class HealthFilter extends HttpFilter {
    @Override
    protected void doFilter(HttpServletRequest request, HttpServletResponse response, FilterChain chain)
            throws IOException {
        response.setContentType("text/plain");
        response.getWriter().print("healthy\n");
    }
}
