#!/usr/bin/env bash
# Compiles the helper classes the agent defines in the boot loader into
# native-agent/java/classes/; the agent embeds them with include_bytes!
# (see HELPER_CLASSES in src/instrument.rs). Run after changing Hooks.java
# and commit the class files with it. With a directory given (absolute),
# compiles into it instead: tests/hooks_classes.rs does, to check the
# committed class files against the source.
set -euo pipefail
cd "$(dirname "$0")"
dest=${1:-classes}
out=$(mktemp -d)
javac --release 17 -g:none -d "$out" jvmapm/agent/Hooks.java
if [ $# -eq 0 ]; then
    rm -rf classes Hooks.class
fi
mkdir -p "$dest"
cp "$out"/jvmapm/agent/*.class "$dest"/
rm -rf "$out"
if [ $# -eq 0 ]; then
    ls -l classes
fi
