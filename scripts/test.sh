#!/usr/bin/env bash
# Runs every test of jvmapm on a fresh machine: makes sure a JDK is there (the
# end-to-end tests compile and run the Java fixtures in java-fixtures/) and a
# Python that can make a virtual environment (the interop test installs the
# OpenTelemetry Python SDK from PyPI into target/otel-python) and Debian's
# embedded Tomcat 10 and H2 (the servlet and JDBC tests), then runs the Rust unit and
# end-to-end tests of the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_jdk() {
    if command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: no JDK found; installing openjdk-17-jdk-headless with apt-get" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
    else
        echo "test.sh: the tests need a JDK 17 or newer (javac and java on PATH)." >&2
        echo "         On Debian or Ubuntu: sudo apt-get install openjdk-17-jdk-headless" >&2
        exit 1
    fi
}

ensure_python_venv() {
    if python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: python3 cannot make virtual environments; installing python3-venv with apt-get" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    else
        echo "test.sh: the interop test needs python3 with venv and pip." >&2
        echo "         On Debian or Ubuntu: sudo apt-get install python3-venv" >&2
        exit 1
    fi
}

# The servlet tests run Debian's embedded Tomcat 10, the JDBC tests its H2.
ensure_java_libraries() {
    if [ -f /usr/share/java/tomcat10-embed-core.jar ] && [ -f /usr/share/java/jakarta-annotation-api.jar ] \
        && [ -f /usr/share/java/h2.jar ]; then
        return
    fi
    local packages="libtomcat10-embed-java libjakarta-annotation-api-java libh2-java"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing Tomcat 10 and H2 ($packages) for the servlet and JDBC tests" >&2
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
    else
        echo "test.sh: the servlet and JDBC tests need Tomcat 10's embedded jars and H2." >&2
        echo "         On Debian: sudo apt-get install $packages" >&2
        exit 1
    fi
}

ensure_jdk
ensure_python_venv
ensure_java_libraries
echo "test.sh: $(javac -version 2>&1), $(rustc --version)"
cargo test --workspace --all-targets
