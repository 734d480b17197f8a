import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The webapp's prefix mapping (`/api/*`): orders in PostgreSQL through
 * pgjdbc from WEB-INF/lib. Each request runs a prepared query with two
 * parameters, a prepared batch of three inserts and a query that fails (a
 * missing table), and answers "orders N". The JDBC URL comes from the
 * system property `orders.jdbc`; the one connection is opened when the
 * servlet starts, outside any request.
 */
public class Orders extends HttpServlet {
    static final String QUERY = "SELECT id, name FROM orders WHERE qty > ? AND name <> ?";
    static final String INSERT = "INSERT INTO orders (name, qty) VALUES (?, ?)";
    static final String FAILING = "SELECT qty FROM no_such_table WHERE id = ?";

    private Connection connection;

    @Override
    public void init() throws ServletException {
        try {
            Class.forName("org.postgresql.Driver");
            connection = DriverManager.getConnection(System.getProperty("orders.jdbc"));
            try (Statement setup = connection.createStatement()) {
                setup.execute("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, name text, qty int)");
            }
        } catch (ReflectiveOperationException | SQLException e) {
            throw new ServletException("cannot reach the orders database", e);
        }
    }

    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response) throws IOException {
        int count = 0;
        synchronized (this) {
            try {
                try (PreparedStatement query = connection.prepareStatement(QUERY)) {
                    query.setInt(1, 5);
                    query.setString(2, "none");
                    try (ResultSet rows = query.executeQuery()) {
                        while (rows.next()) {
                            count++;
                        }
                    }
                }
                try (PreparedStatement insert = connection.prepareStatement(INSERT)) {
                    for (int i = 0; i < 3; i++) {
                        insert.setString(1, "order-" + i);
                        insert.setInt(2, 10 + i);
                        insert.addBatch();
                    }
                    insert.executeBatch();
                }
                try (PreparedStatement failing = connection.prepareStatement(FAILING)) {
                    failing.setInt(1, 1);
                    failing.executeQuery();
                } catch (SQLException expected) {
                    // The missing table: the test wants one failing statement.
                }
            } catch (SQLException e) {
                throw new IOException(e);
            }
        }
        response.getWriter().print("orders " + count + "\n");
    }

    @Override
    public void destroy() {
        try {
            connection.close();
        } catch (SQLException ignored) {
            // shutting down
        }
    }
}
