#!/usr/bin/env bash
# Runs every test of jvmapm on a fresh machine: makes sure a JDK is there (the
# end-to-end tests compile and run the Java fixtures in java-fixtures/), the
# OpenTelemetry Python SDK the interop test runs (installed from PyPI into
# target/otel-python here, so no test reaches the network), Debian's
# embedded Tomcat 10 and H2 (the servlet and JDBC tests), the HTTP client
# libraries the outgoing-call tests call through, and Debian's
# standalone Tomcat 10, PostgreSQL 15 and pgjdbc (the tests on real servers
# and drivers), Debian's ClickHouse server (the ClickHouse store's tests),
# and rustfmt and clippy; checks the formatting and the lints,
# then runs the Rust unit and end-to-end tests of the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/prerequisites.sh
. scripts/prerequisites.sh

ensure_python_venv() {
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt_install test.sh "the interop test (python3 with venv and pip)" python3 python3-venv
    fi
}

# The interop test runs the OpenTelemetry Python SDK pinned in
# tests/interop/requirements.txt from target/otel-python; installed.txt there
# says which versions it holds.
ensure_otel_python() {
    local venv=target/otel-python requirements=tests/interop/requirements.txt
    if cmp -s "$requirements" "$venv/installed.txt" && [ -x "$venv/bin/python" ]; then
        return
    fi
    ensure_python_venv
    echo "test.sh: installing the OpenTelemetry Python SDK into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/installed.txt"
}

# The servlet tests run Debian's embedded Tomcat 10.
ensure_tomcat() {
    if [ ! -f /usr/share/java/tomcat10-embed-core.jar ] || [ ! -f /usr/share/java/jakarta-annotation-api.jar ]; then
        apt_install test.sh "the servlet tests (embedded Tomcat 10)" libtomcat10-embed-java libjakarta-annotation-api-java
    fi
}

# The outgoing-call tests call through Debian's Apache HttpClient 4 and 5
# and OkHttp 3 (slf4j-nop keeps HttpClient 5 quiet).
ensure_http_clients() {
    local jar missing=0
    for jar in httpclient httpcore httpclient5 httpcore5 okhttp okio slf4j-nop; do
        [ -f "/usr/share/java/$jar.jar" ] || missing=1
    done
    if [ "$missing" = 1 ]; then
        apt_install test.sh "the outgoing-call tests (HTTP client libraries)" \
            libhttpclient-java libhttpclient5-java libokhttp-java libslf4j-java
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

# The ClickHouse store's tests start Debian's clickhouse-server (18.16).
ensure_clickhouse() {
    if [ ! -x /usr/sbin/clickhouse-server ]; then
        apt_install test.sh "the ClickHouse store's tests (clickhouse-server)" clickhouse-server
    fi
}

# rustfmt and clippy, which the checks before the tests run.
ensure_rust_components() {
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    [ ${#missing[@]} = 0 ] && return
    if command -v rustup >/dev/null 2>&1; then
        echo "test.sh: installing ${missing[*]} with rustup" >&2
        rustup component add "${missing[@]}"
    else
        echo "test.sh: the checks need the Rust components: ${missing[*]}" >&2
        echo "         With rustup: rustup component add ${missing[*]}" >&2
        exit 1
    fi
}

ensure_rust_components
ensure_jdk test.sh
ensure_otel_python
ensure_tomcat
ensure_http_clients
ensure_real_servers
ensure_h2 test.sh
ensure_clickhouse
echo "test.sh: $(javac -version 2>&1), $(rustc --version)"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The workspace check builds the agent with the `bench` feature the bench
# crate asks for; this one checks it as it ships, without.
cargo clippy -p jvmapm-agent --all-targets -- -D warnings
# And with the AsyncGetCallTrace probe bench/agent-profile.py builds, whose
# slot and event numbers the header test also checks.
cargo clippy -p jvmapm-agent --all-targets --features agct-probe -- -D warnings
cargo test -p jvmapm-agent --features agct-probe --lib jvmti
cargo test --workspace --all-targets
