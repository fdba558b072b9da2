#!/usr/bin/env bash
# A real Neo4j Community 5.26 LTS server (Bolt only, loopback, no auth, no TLS) without Docker:
# org.neo4j:neo4j and its dependencies from Maven Central (installed once), run by a tiny
# embedded main (scripts/servers/neo4j/EmbeddedNeo4j.java) on Java 17 or 21.
#
# Usage: scripts/servers/neo4j.sh start [--fresh] | stop [--kill] | status | ping
#   start         start in the background unless already running; waits until the database is
#                 available and Bolt answers (at most NEO4J_START_TIMEOUT s, default 120).
#                 Data persists across stop/start; --fresh wipes the database first.
#   stop          SIGTERM, wait up to 30 s for a clean shutdown, then SIGKILL; --kill: SIGKILL now.
#   status        exit 0 when running (prints pid and address), 1 otherwise.
#   ping          exit 0 when the port answers a Bolt handshake with a 4.x version.
#
# Environment:
#   NEO4J_BOLT_PORT   Bolt port on 127.0.0.1 (default 7687)
#   NEO4J_HOME_DIR    data, logs, pidfile (default ${XDG_CACHE_HOME:-$HOME/.cache}/semrec-servers/neo4j-$PORT)
#   NEO4J_HEAP        JVM heap, -Xms/-Xmx (default 512m)
#   NEO4J_PAGECACHE   page cache size (default 128m)
#   NEO4J_JAVA_OPTS   extra JVM options, split on spaces (default -XX:TieredStopAtLevel=1: C1 only,
#                     ~40% faster startup for a test server; set it empty for the full JIT)
#   NEO4J_VERSION     org.neo4j:neo4j version (default 5.26.30; 2025.x and later need Java 21+)
#   NEO4J_JAVA_HOME   a JDK 17 or 21 to use (else JAVA_HOME, java on PATH, or /usr/lib/jvm's 17/21)
set -euo pipefail

NEO4J_VERSION="${NEO4J_VERSION:-5.26.30}"
NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
NEO4J_HEAP="${NEO4J_HEAP:-512m}"
NEO4J_PAGECACHE="${NEO4J_PAGECACHE:-128m}"
NEO4J_START_TIMEOUT="${NEO4J_START_TIMEOUT:-120}"
NEO4J_JAVA_OPTS="${NEO4J_JAVA_OPTS--XX:TieredStopAtLevel=1}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}"
NEO4J_HOME_DIR="$(realpath -m "${NEO4J_HOME_DIR:-$CACHE_ROOT/semrec-servers/neo4j-$NEO4J_BOLT_PORT}")"
TOOLS_DIR="$CACHE_ROOT/semrec-tools/neo4j-$NEO4J_VERSION"
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/neo4j"
MAIN_CLASS=EmbeddedNeo4j
MAVEN_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

DB_DIR="$NEO4J_HOME_DIR/db"       # the embedded Neo4j's home: data/, logs/ (debug.log)
LOG_FILE="$NEO4J_HOME_DIR/neo4j.log"
PID_FILE="$NEO4J_HOME_DIR/neo4j.pid"
READY_MARK="NEO4J_READY bolt://127.0.0.1:$NEO4J_BOLT_PORT "

say() { echo "neo4j.sh: $*"; }
die() { echo "neo4j.sh: $*" >&2; exit 1; }

if ! [[ "$NEO4J_BOLT_PORT" =~ ^[1-9][0-9]{0,4}$ ]] || ((NEO4J_BOLT_PORT > 65535)); then
  die "NEO4J_BOLT_PORT must be a port number, got '$NEO4J_BOLT_PORT'"
fi

# --- Java ------------------------------------------------------------------------------------

java_major() { # prints the feature version of the java binary $1, e.g. 17
  "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1
}

find_java() { # sets JAVA and JAVAC to a JDK 17 or 21
  local cand major
  for cand in ${NEO4J_JAVA_HOME:+"$NEO4J_JAVA_HOME/bin/java"} ${JAVA_HOME:+"$JAVA_HOME/bin/java"} \
    "$(command -v java || true)" /usr/lib/jvm/java-17-openjdk-amd64/bin/java \
    /usr/lib/jvm/java-21-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk-arm64/bin/java \
    /usr/lib/jvm/java-21-openjdk-arm64/bin/java; do
    [[ -n "$cand" && -x "$cand" ]] || continue
    cand="$(readlink -f "$cand")"
    major="$(java_major "$cand")"
    if [[ "$major" == 17 || "$major" == 21 ]] && [[ -x "$(dirname "$cand")/javac" ]]; then
      JAVA="$cand"
      JAVAC="$(dirname "$cand")/javac"
      return 0
    fi
  done
  die "Neo4j $NEO4J_VERSION needs a JDK 17 or 21 (java and javac): apt-get install openjdk-17-jdk-headless, or set NEO4J_JAVA_HOME"
}

# --- install (once) --------------------------------------------------------------------------

install_jars() { # $TOOLS_DIR/lib: org.neo4j:neo4j and all its runtime jars
  [[ -f "$TOOLS_DIR/lib/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found: apt-get install maven (needed once to fetch Neo4j's jars)"
  say "installing Neo4j $NEO4J_VERSION jars from Maven Central into $TOOLS_DIR/lib (once)"
  local work
  work="$(mktemp -d "$TOOLS_DIR/.install.XXXXXX")"
  cp "$SRC_DIR/pom.xml" "$work/pom.xml" # run from a copy: no target/ in the repository
  if ! (cd "$work" && mvn -q -B -Dstyle.color=never -Dneo4j.version="$NEO4J_VERSION" -Dneo4j.lib.dir="$work/lib" \
    "$MAVEN_DEP_PLUGIN:copy-dependencies" >"$work/mvn.log" 2>&1); then
    cat "$work/mvn.log" >&2
    rm -rf "$work"
    die "mvn could not fetch org.neo4j:neo4j:$NEO4J_VERSION (see above)"
  fi
  [[ -f "$work/lib/neo4j-$NEO4J_VERSION.jar" ]] || { rm -rf "$work"; die "mvn did not fetch neo4j-$NEO4J_VERSION.jar"; }
  touch "$work/lib/.complete"
  rm -rf "${TOOLS_DIR:?}/lib"
  mv "$work/lib" "$TOOLS_DIR/lib"
  rm -rf "$work"
}

compile_main() { # $TOOLS_DIR/classes/EmbeddedNeo4j.class, rebuilt when the source is newer
  local src="$SRC_DIR/$MAIN_CLASS.java" cls="$TOOLS_DIR/classes/$MAIN_CLASS.class"
  [[ -f "$cls" && ! "$src" -nt "$cls" ]] && return 0
  say "compiling $MAIN_CLASS.java"
  local work
  work="$(mktemp -d "$TOOLS_DIR/.classes.XXXXXX")"
  "$JAVAC" --release 17 -nowarn -cp "$TOOLS_DIR/lib/*" -d "$work" "$src" || { rm -rf "$work"; die "javac failed"; }
  rm -rf "${TOOLS_DIR:?}/classes"
  mv "$work" "$TOOLS_DIR/classes"
}

install() {
  find_java
  mkdir -p "$TOOLS_DIR"
  # One installer at a time (parallel test runs share the tools folder).
  exec 8>"$TOOLS_DIR/.lock"
  flock 8
  install_jars
  compile_main
  flock -u 8
  exec 8>&-
}

# --- process state ---------------------------------------------------------------------------

running_pid() { # prints the pid and exits 0 when our server is running
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must be our main on our home dir.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$MAIN_CLASS $NEO4J_BOLT_PORT $DB_DIR" || return 1
  echo "$pid"
}

bolt_ping() { # exit 0 when 127.0.0.1:$port answers a Bolt handshake choosing 4.x
  local port="$1" verbose="${2:-}"
  if command -v python3 >/dev/null; then
    python3 - "$port" "$verbose" <<'PY'
import socket, sys
port, verbose = int(sys.argv[1]), sys.argv[2] == "-v"
# Preamble, then four proposals: 4.4 (with range down to 4.2), 4.1, 4.0, 3.0.
hello = bytes.fromhex("6060B017" "00020404" "00000104" "00000004" "00000003")
try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        s.sendall(hello)
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
except OSError as e:
    if verbose:
        print(f"no Bolt server on 127.0.0.1:{port}: {e}", file=sys.stderr)
    sys.exit(1)
if len(got) != 4 or got[3] != 4:
    if verbose:
        print(f"127.0.0.1:{port} did not choose Bolt 4.x (answer {got.hex() or 'empty'})", file=sys.stderr)
    sys.exit(1)
if verbose:
    print(f"Bolt {got[3]}.{got[2]} on 127.0.0.1:{port}")
PY
  else # no python3: a plain TCP connect
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
      [[ -n "$verbose" ]] && echo "nothing listens on 127.0.0.1:$port" >&2
      return 1
    }
    [[ -z "$verbose" ]] || echo "127.0.0.1:$port accepts connections (python3 missing: Bolt not checked)"
  fi
}

log_tail() {
  echo "--- last 50 lines of $LOG_FILE ---" >&2
  tail -n 50 "$LOG_FILE" >&2 2>/dev/null || true
  echo "---" >&2
}

# --- commands --------------------------------------------------------------------------------

wait_ready() { # $1 pid, $2 "launched" (ours: kill it on timeout) or "existing", $3 start time
  local pid="$1" how="$2" t0="$3"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      log_tail
      die "Neo4j exited during startup (log: $LOG_FILE)"
    fi
    if grep -qF "$READY_MARK" "$LOG_FILE" 2>/dev/null && bolt_ping "$NEO4J_BOLT_PORT"; then
      say "ready on bolt://127.0.0.1:$NEO4J_BOLT_PORT (pid $pid) after $((SECONDS - t0)) s; log $LOG_FILE"
      return 0
    fi
    if ((SECONDS - t0 >= NEO4J_START_TIMEOUT)); then
      log_tail
      if [[ "$how" == launched ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f "$PID_FILE"
        die "Neo4j was not ready within $NEO4J_START_TIMEOUT s; killed it (log: $LOG_FILE)"
      fi
      die "Neo4j (pid $pid) was not ready within $NEO4J_START_TIMEOUT s (log: $LOG_FILE)"
    fi
    sleep 0.5
  done
}

cmd_start() {
  local fresh=0 arg
  for arg in "$@"; do
    case "$arg" in
    --fresh) fresh=1 ;;
    *) die "start: unknown option '$arg' (use --fresh)" ;;
    esac
  done
  local pid
  if pid="$(running_pid)"; then
    if ((fresh)); then
      cmd_stop
    else
      say "already running (pid $pid)"
      wait_ready "$pid" existing "$SECONDS"
      return 0
    fi
  fi
  install
  mkdir -p "$NEO4J_HOME_DIR"
  exec 9>"$NEO4J_HOME_DIR/.lock" # one start at a time for this home dir
  flock 9
  if pid="$(running_pid)"; then # another start won the race
    flock -u 9
    exec 9>&-
    say "already running (pid $pid)"
    wait_ready "$pid" existing "$SECONDS"
    return 0
  fi
  if bolt_ping "$NEO4J_BOLT_PORT" || (exec 3<>"/dev/tcp/127.0.0.1/$NEO4J_BOLT_PORT") 2>/dev/null; then
    die "port $NEO4J_BOLT_PORT on 127.0.0.1 is already taken by another process (not $PID_FILE)"
  fi
  if ((fresh)); then
    say "wiping $DB_DIR (--fresh)"
    rm -rf "$DB_DIR"
  fi
  mkdir -p "$DB_DIR"
  rm -f "$PID_FILE"
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"

  # JVM flags from the Neo4j 5.26 distribution's conf/neo4j.conf (server.jvm.additional).
  local jvm_opts=(
    "-Xms$NEO4J_HEAP" "-Xmx$NEO4J_HEAP"
    -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+UnlockExperimentalVMOptions
    -XX:+TrustFinalNonStaticFields -XX:+DisableExplicitGC -XX:+ExitOnOutOfMemoryError
    -XX:+UnlockDiagnosticVMOptions -XX:+DebugNonSafepoints
    -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true
    -Dlog4j2.disable.jmx=true -Dfile.encoding=UTF-8 -Djava.net.preferIPv4Stack=true
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED
  )
  [[ "$(java_major "$JAVA")" == 21 ]] && jvm_opts+=(--enable-native-access=ALL-UNNAMED)
  local extra=()
  read -r -a extra <<<"$NEO4J_JAVA_OPTS"
  jvm_opts+=("${extra[@]}")

  local t0=$SECONDS
  say "starting Neo4j $NEO4J_VERSION on bolt://127.0.0.1:$NEO4J_BOLT_PORT (home $NEO4J_HOME_DIR, heap $NEO4J_HEAP, page cache $NEO4J_PAGECACHE)"
  nohup "$JAVA" "${jvm_opts[@]}" -cp "$TOOLS_DIR/classes:$TOOLS_DIR/lib/*" \
    "$MAIN_CLASS" "$NEO4J_BOLT_PORT" "$DB_DIR" "$NEO4J_PAGECACHE" >"$LOG_FILE" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  flock -u 9
  exec 9>&-

  wait_ready "$pid" launched "$t0"
}

cmd_stop() {
  local kill_now=0 arg
  for arg in "$@"; do
    case "$arg" in
    --kill) kill_now=1 ;;
    *) die "stop: unknown option '$arg' (use --kill)" ;;
    esac
  done
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    say "not running (bolt port $NEO4J_BOLT_PORT)"
    return 0
  fi
  local i
  if ((kill_now)); then
    say "killing pid $pid (SIGKILL)"
    kill -KILL "$pid" 2>/dev/null || true
  else
    say "stopping pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "still running after 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  for ((i = 0; i < 100; i++)); do # SIGKILL is not instant: wait until the pid is gone
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "pid $pid is still alive"
  rm -f "$PID_FILE"
  say "stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    say "running (pid $pid) on bolt://127.0.0.1:$NEO4J_BOLT_PORT, home $NEO4J_HOME_DIR"
  else
    say "not running (bolt port $NEO4J_BOLT_PORT)"
    return 1
  fi
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) cmd_status ;;
ping) bolt_ping "$NEO4J_BOLT_PORT" -v ;;
*)
  echo "usage: $0 start [--fresh] | stop [--kill] | status | ping" >&2
  exit 2
  ;;
esac
