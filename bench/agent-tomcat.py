#!/usr/bin/env python3
"""What the agent costs a request on a real servlet container: Debian's
standalone Tomcat 10 (`catalina.sh run`) serving the tests' webapp
(java-fixtures/webapp, built into a WAR), `/app/hello` through a
GenericFilter and a servlet, under wrk. Modes, interleaved in each round:
no agent, the agent exporting nowhere (a closed port: its cost inside the
JVM alone), JFR's default profile, and with BASELINE_AGENT set, another
build of the agent (see agent-http.py for making one from an older commit).

Prints per mode the median requests/s, p50 and p99, the throughput ratio and
the JVM's CPU per request (user + system from /proc) against no agent, in
total and split by thread as agent-http.py does (request threads: the
connector's http-nio-*).

Usage: bench/agent-tomcat.py   (knobs: ROUNDS=3 WARMUP=5 DURATION=10
CONNECTIONS=16 JAVA_HOME=/usr/lib/jvm/... NO_BUILD=1 BASELINE_AGENT=;
needs wrk and tomcat10-user: apt-get install wrk tomcat10-user)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from agent_bench import AGENT, ROOT, TARGET, build, free_port, measure, print_modes

ROUNDS = int(os.environ.get("ROUNDS", "3"))
WARMUP = int(os.environ.get("WARMUP", "5"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
CATALINA_HOME = Path("/usr/share/tomcat10")
SERVLET_API = "/usr/share/java/tomcat10-servlet-api.jar"

SERVER_XML = ROOT / "java-fixtures" / "tomcat" / "server.xml"
# The connector's threads, http-nio-127.0.0.1-auto-1-exec-N, -Poller and
# -Acceptor: the kernel keeps the first 15 characters of a thread's name
# (http-nio-127.0.), so they are one kind here.
REQUEST_THREADS = ("http-nio-",)


def build_war():
    """The webapp as target/bench-webapp.war (without pgjdbc: /app/hello needs no database)."""
    tree = TARGET / "bench-webapp"
    shutil.rmtree(tree, ignore_errors=True)
    classes = tree / "WEB-INF" / "classes"
    classes.mkdir(parents=True)
    source = ROOT / "java-fixtures" / "webapp"
    javas = sorted(str(p) for p in source.glob("*.java"))
    subprocess.run(["javac", "--release", "17", "-nowarn", "-cp", SERVLET_API, "-d", str(classes), *javas], check=True)
    shutil.copy(source / "WEB-INF" / "web.xml", tree / "WEB-INF" / "web.xml")
    war = TARGET / "bench-webapp.war"
    subprocess.run(["jar", "cf", str(war), "-C", str(tree), "."], check=True)
    return war


def run(war, options):
    """Starts Tomcat with `options`, measures /app/hello, stops it."""
    base = Path(tempfile.mkdtemp(prefix="jvmapm-bench-tomcat-"))
    try:
        for d in ["logs", "temp", "work", "webapps"]:
            (base / d).mkdir()
        shutil.copytree(CATALINA_HOME / "skel" / "conf", base / "conf")
        shutil.copy(SERVER_XML, base / "conf" / "server.xml")
        shutil.copy(war, base / "webapps" / "app.war")
        env = dict(os.environ, CATALINA_HOME=str(CATALINA_HOME), CATALINA_BASE=str(base), CATALINA_OPTS=" ".join(options))
        env.pop("JAVA_OPTS", None)
        tomcat = subprocess.Popen(
            [str(CATALINA_HOME / "bin" / "catalina.sh"), "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        port = None
        for line in tomcat.stdout:
            found = re.search(r"-auto-\d+-(\d+)", line)
            if found:
                port = int(found.group(1))
            if "Server startup in" in line:
                break
        if port is None:
            sys.exit("Tomcat did not start")
        # Keep reading its console, so that it never waits on a full pipe.
        threading.Thread(target=tomcat.stdout.read, daemon=True).start()
        url = f"http://127.0.0.1:{port}/app/hello"
        result = measure(tomcat.pid, url, WARMUP, DURATION, CONNECTIONS, REQUEST_THREADS)
        tomcat.terminate()
        tomcat.wait(timeout=60)
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main():
    if shutil.which("wrk") is None:
        sys.exit("agent-tomcat.py needs wrk: apt-get install wrk")
    if not (CATALINA_HOME / "bin" / "catalina.sh").exists():
        sys.exit("agent-tomcat.py needs Debian's standalone Tomcat 10: apt-get install tomcat10-user")
    build("jvmapm-agent")
    war = build_war()
    jfr = tempfile.mkdtemp(prefix="jvmapm-bench-jfr-")
    closed = free_port()
    modes = {
        "no agent": [],
        "agent, no backend": [f"-agentpath:{AGENT}=service=bench-tomcat,endpoint=http://127.0.0.1:{closed}"],
        "JFR default": [f"-XX:StartFlightRecording=settings=default,filename={jfr}/bench.jfr"],
    }
    baseline = os.environ.get("BASELINE_AGENT")
    if baseline:
        modes["baseline, no backend"] = [f"-agentpath:{baseline}=service=bench-tomcat,endpoint=http://127.0.0.1:{closed}"]
    results = {mode: [] for mode in modes}
    try:
        for _ in range(ROUNDS):
            for mode, options in modes.items():
                results[mode].append(run(war, options))
    finally:
        shutil.rmtree(jfr, ignore_errors=True)
    print(f"Tomcat 10 (catalina.sh run), /app/hello (GenericFilter + servlet); wrk -t2 -c{CONNECTIONS} {DURATION}s after {WARMUP}s warm-up; medians of {ROUNDS} rounds")
    print_modes(results)


if __name__ == "__main__":
    sys.exit(main())
