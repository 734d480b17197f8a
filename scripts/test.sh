#!/usr/bin/env bash
# Runs every test of jvmapm on a fresh machine: makes sure a JDK is there (the
# end-to-end tests compile and run the Java fixtures in java-fixtures/) and a
# Python that can make a virtual environment (the interop test installs the
# OpenTelemetry Python SDK from PyPI into target/otel-python), Debian's
# embedded Tomcat 10 and H2 (the servlet and JDBC tests), and Debian's
# standalone Tomcat 10, PostgreSQL 15 and pgjdbc (the tests on real servers
# and drivers), then runs the Rust unit and end-to-end tests of the whole
# workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/prerequisites.sh
. scripts/prerequisites.sh

ensure_python_venv() {
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt_install test.sh "the interop test (python3 with venv and pip)" python3 python3-venv
    fi
}

# The servlet tests run Debian's embedded Tomcat 10.
ensure_tomcat() {
    if [ ! -f /usr/share/java/tomcat10-embed-core.jar ] || [ ! -f /usr/share/java/jakarta-annotation-api.jar ]; then
        apt_install test.sh "the servlet tests (embedded Tomcat 10)" libtomcat10-embed-java libjakarta-annotation-api-java
    fi
}

# The tests on real servers run Debian's standalone Tomcat 10 (catalina.sh
# and the default configuration of tomcat10-user) and PostgreSQL 15 through
# pgjdbc.
ensure_real_servers() {
    if [ ! -x /usr/share/tomcat10/bin/catalina.sh ] || [ ! -d /usr/share/tomcat10/skel/conf ] \
        || [ ! -f /usr/share/java/postgresql.jar ] || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        apt_install test.sh "the tests on real servers (standalone Tomcat 10, PostgreSQL, pgjdbc)" \
            tomcat10-user libpostgresql-jdbc-java postgresql-15
    fi
}

ensure_jdk test.sh
ensure_python_venv
ensure_tomcat
ensure_real_servers
ensure_h2 test.sh
echo "test.sh: $(javac -version 2>&1), $(rustc --version)"
cargo test --workspace --all-targets
