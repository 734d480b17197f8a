#!/usr/bin/env bash
# Compiles the helper class the agent defines in the boot loader; the agent
# embeds the result (native-agent/java/Hooks.class) with include_bytes!.
# Run after changing Hooks.java; commit both files.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
javac --release 17 -g:none -d "$out" jvmapm/agent/Hooks.java
cp "$out/jvmapm/agent/Hooks.class" Hooks.class
rm -rf "$out"
echo "native-agent/java/Hooks.class: $(wc -c < Hooks.class) bytes"
