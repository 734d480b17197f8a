#!/usr/bin/env bash
# Shows jvmapm working on a fresh machine: installs what the demo needs (a
# JDK, Debian's H2 for the SQL endpoint), builds the release binary and the
# agent, and runs `jvmapm demo` (an analyzer, a JVM with the agent under
# load, and the XLog viewer on it; q quits and stops everything).
# Arguments go to `jvmapm demo` (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/prerequisites.sh
. scripts/prerequisites.sh
ensure_jdk demo.sh
ensure_h2 demo.sh
echo "demo.sh: building jvmapm and the agent (release; the first build takes a few minutes)" >&2
cargo build --release --quiet -p jvmapm -p jvmapm-agent
exec target/release/jvmapm demo "$@"
