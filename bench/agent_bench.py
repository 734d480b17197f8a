"""What the agent benchmarks (agent-overhead.py, agent-http.py) share: where
the release build and the compiled fixtures live, building them, and a free
local port."""

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
JAVA = os.environ.get("JAVA", "java")
CLASSES = TARGET / "java-fixtures"
AGENT = TARGET / "release" / "libjvmapm_agent.so"
JVMAPM = TARGET / "release" / "jvmapm"


def build(*packages):
    """Builds the release `packages` and compiles the Java fixtures, unless NO_BUILD=1."""
    if os.environ.get("NO_BUILD") == "1":
        return
    flags = [arg for package in packages for arg in ("-p", package)]
    subprocess.run(["cargo", "build", "--release", "--quiet", *flags], cwd=ROOT, check=True)
    CLASSES.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p) for p in (ROOT / "java-fixtures").glob("*.java"))
    subprocess.run(["javac", "--release", "17", "-d", str(CLASSES), *sources], check=True)


def free_port():
    """A local port nothing listens on (closed again at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
