# Shared by scripts/test.sh and scripts/demo.sh (sourced, not run): makes
# sure what the project needs from the system is there, installing it with
# apt-get when run as root on Debian or Ubuntu, else saying what to install.

# apt_install CALLER WHY PACKAGE...: installs the packages or explains and exits.
apt_install() {
    local caller=$1 why=$2
    shift 2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "$caller: installing $* with apt-get ($why)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "$caller: $why needs: $*" >&2
        echo "         On Debian or Ubuntu: sudo apt-get install $*" >&2
        exit 1
    fi
}

# A JDK 17 or newer (javac and java on PATH).
ensure_jdk() {
    if ! command -v javac >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
        apt_install "$1" "a JDK 17 or newer" openjdk-17-jdk-headless
    fi
}

# Debian's H2 database (the JDBC tests and the demo's /sql endpoint).
ensure_h2() {
    if [ ! -f /usr/share/java/h2.jar ]; then
        apt_install "$1" "the H2 database" libh2-java
    fi
}
