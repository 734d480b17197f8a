import jakarta.servlet.FilterChain;
import jakarta.servlet.GenericFilter;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import java.io.IOException;

/**
 * A filter the way frameworks write them: it extends GenericFilter and so
 * declares no Filter of its own. Mapped to every path, it sleeps the
 * milliseconds of the `filter_ms` parameter before passing the request on.
 */
public class SlowFilter extends GenericFilter {
    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
            throws IOException, ServletException {
        String ms = request.getParameter("filter_ms");
        if (ms != null) {
            try {
                Thread.sleep(Long.parseLong(ms));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        chain.doFilter(request, response);
    }
}
