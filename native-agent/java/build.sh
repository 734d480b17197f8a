#!/usr/bin/env bash
# Compiles the helper classes the agent defines in the boot loader into
# native-agent/java/classes/; the agent embeds them with include_bytes!
# (see HELPER_CLASSES in src/instrument.rs). Run after changing Hooks.java
# and commit the class files with it.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
javac --release 17 -g:none -d "$out" jvmapm/agent/Hooks.java
rm -rf classes Hooks.class
mkdir classes
cp "$out"/jvmapm/agent/*.class classes/
rm -rf "$out"
ls -l classes
