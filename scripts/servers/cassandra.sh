#!/usr/bin/env bash
# Installs and runs a real Apache Cassandra 5.0 CQL server node without Docker (by default a
# single-node cluster on 127.0.0.1; scripts/servers/cassandra-cluster.sh runs several as one): the
# server jar and its dependencies come from Maven Central (scripts/servers/cassandra/pom.xml,
# copied once into a cache folder) and run on the installed Java 17.
#
#   scripts/servers/cassandra.sh start [--fresh]  start it (no-op when already up) and wait until
#                                                 it answers CQL; --fresh wipes its data first
#   scripts/servers/cassandra.sh stop [--kill]    SIGTERM (SIGKILL after 30 s); --kill: SIGKILL now
#   scripts/servers/cassandra.sh status           exit 0 when it is running and its port is open
#   scripts/servers/cassandra.sh wait             wait until a started server answers CQL
#
# Environment:
#   CASSANDRA_HOST           loopback address the node listens on: listen_address, rpc_address
#                            and every port check (default 127.0.0.1; any 127.x.y.z works on Linux)
#   CASSANDRA_PORT           CQL port (default 9042)
#   CASSANDRA_STORAGE_PORT   internode port, on CASSANDRA_HOST (default CASSANDRA_PORT-2042, so
#                            7000)
#   CASSANDRA_SEEDS          seed list, "HOST:PORT,HOST:PORT" (default
#                            CASSANDRA_HOST:CASSANDRA_STORAGE_PORT: a cluster of its own)
#   CASSANDRA_CLUSTER_NAME   cluster_name (default semrec-local); all nodes of a cluster share it
#   CASSANDRA_NEW_CLUSTER    1: the node belongs to a cluster whose nodes all started empty
#                            together, so it joins without bootstrapping (auto_bootstrap: false:
#                            there is no data to stream from the others yet). Harmless on later
#                            restarts of such a node (it keeps its tokens and data). Never use it
#                            to add an empty node to a cluster that already holds data. Default 0
#   CASSANDRA_INITIAL_TOKEN  the node's token (Murmur3, -2^63..2^63-1); default: random on first
#                            start, then kept
#   CASSANDRA_HOME_DIR       data, config and logs (default
#                            ${XDG_CACHE_HOME:-$HOME/.cache}/semrec-servers/cassandra-$CASSANDRA_PORT,
#                            or .../cassandra-$CASSANDRA_HOST-$CASSANDRA_PORT when CASSANDRA_HOST is
#                            not 127.0.0.1)
#   CASSANDRA_HEAP           -Xms/-Xmx (default 1g)
#   CASSANDRA_VERSION        cassandra-all version from Maven Central (default 5.0.9)
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL (default 180)
#   CASSANDRA_EXTRA_YAML     extra lines appended to the generated cassandra.yaml
#   CASSANDRA_JVM_OPTS       extra JVM options, space-separated, after the script's own (a later
#                            -Dname=value wins), e.g. -Dcassandra.superuser_setup_delay_ms=1000
#   JAVA_HOME                Java 17 to use (default: java on PATH)
#
# Writes are durable: commitlog_sync is batch, so a write the server acknowledged survives a
# kill -9 of the server. JMX is not started (no nodetool); auth is off (AllowAll).
set -euo pipefail

CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.9}"
CASSANDRA_PORT="${CASSANDRA_PORT:-9042}"
CASSANDRA_HEAP="${CASSANDRA_HEAP:-1g}"
CASSANDRA_START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-180}"
CASSANDRA_EXTRA_YAML="${CASSANDRA_EXTRA_YAML:-}"
CASSANDRA_HOST="${CASSANDRA_HOST:-127.0.0.1}"
CASSANDRA_CLUSTER_NAME="${CASSANDRA_CLUSTER_NAME:-semrec-local}"
CASSANDRA_NEW_CLUSTER="${CASSANDRA_NEW_CLUSTER:-0}"
CASSANDRA_INITIAL_TOKEN="${CASSANDRA_INITIAL_TOKEN:-}"
CASSANDRA_JVM_OPTS="${CASSANDRA_JVM_OPTS:-}"
if [[ -z ${CASSANDRA_STORAGE_PORT:-} ]]; then
  if (( CASSANDRA_PORT > 3066 )); then
    CASSANDRA_STORAGE_PORT=$((CASSANDRA_PORT - 2042))
  else
    CASSANDRA_STORAGE_PORT=$((CASSANDRA_PORT + 1000))
  fi
fi
CASSANDRA_SEEDS="${CASSANDRA_SEEDS:-$CASSANDRA_HOST:$CASSANDRA_STORAGE_PORT}"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
if [[ $CASSANDRA_HOST == 127.0.0.1 ]]; then
  default_home="$cache_root/semrec-servers/cassandra-$CASSANDRA_PORT"
else # nodes on other addresses may share the port: one home each
  default_home="$cache_root/semrec-servers/cassandra-$CASSANDRA_HOST-$CASSANDRA_PORT"
fi
CASSANDRA_HOME_DIR="${CASSANDRA_HOME_DIR:-$default_home}"
tools_dir="$cache_root/semrec-tools/cassandra-$CASSANDRA_VERSION"
lib_dir="$tools_dir/lib"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$script_dir/cassandra/pom.xml"
host="$CASSANDRA_HOST"
[[ $host =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] \
  || { echo "cassandra.sh: CASSANDRA_HOST must be a loopback IPv4 address (127.x.y.z), not '$host'" >&2; exit 2; }
[[ $CASSANDRA_NEW_CLUSTER == [01] ]] \
  || { echo "cassandra.sh: CASSANDRA_NEW_CLUSTER must be 0 or 1, not '$CASSANDRA_NEW_CLUSTER'" >&2; exit 2; }
# How to address this node again in messages: the environment that differs from the defaults.
if [[ $host == 127.0.0.1 ]]; then
  log_tag=":$CASSANDRA_PORT"
  env_hint="CASSANDRA_PORT=$CASSANDRA_PORT"
else
  log_tag="$host:$CASSANDRA_PORT"
  env_hint="CASSANDRA_HOST=$host CASSANDRA_PORT=$CASSANDRA_PORT"
fi

log() { echo "cassandra.sh [$log_tag]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  # the command lines of the header: between its first and second lone "#"
  awk '/^#$/ { n++; next } n == 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Absolute paths (the yaml needs them); the folder is created on start.
abs_home() {
  mkdir -p "$CASSANDRA_HOME_DIR"
  CASSANDRA_HOME_DIR="$(cd "$CASSANDRA_HOME_DIR" && pwd)"
}
set_paths() {
  pidfile="$CASSANDRA_HOME_DIR/cassandra.pid"
  logfile="$CASSANDRA_HOME_DIR/cassandra.log"
  data_dir="$CASSANDRA_HOME_DIR/data"
  conf_dir="$CASSANDRA_HOME_DIR/conf"
  yaml="$conf_dir/cassandra.yaml"
}
set_paths

java_bin() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null; then
    command -v java
  else
    die "java not found: install a Java 17 JDK/JRE (Debian: apt-get install openjdk-17-jre-headless)"
  fi
}

# ---------------------------------------------------------------- process / port checks

alive() { # pid: running and not a zombie
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n $state && $state != Z && $state != X ]]
}

port_open() { # port
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$1" 2>/dev/null
}

# The pid of our server for this home dir, or nothing. The pidfile is trusted only when that
# process is alive and is a Cassandra started with this config.
server_pid() {
  local pid=""
  if [[ -f $pidfile ]]; then
    pid="$(tr -dc '0-9' <"$pidfile" || true)"
  fi
  if [[ -n $pid ]] && alive "$pid" \
      && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "cassandra.config=file://$yaml"; then
    echo "$pid"
    return 0
  fi
  # pidfile lost or stale: look for a server started with exactly this config file
  pid="$(pgrep -f -- "-Dcassandra.config=file://$yaml( |\$)" | head -n1 || true)"
  if [[ -n $pid ]]; then
    echo "$pid" >"$pidfile"
    echo "$pid"
  fi
}

# Sends a CQL v4 STARTUP and `SELECT release_version FROM system.local`; prints the version.
# Without python3, only checks that an OPTIONS request gets a SUPPORTED reply.
cql_ping() { # port
  if command -v python3 >/dev/null; then
    timeout 10 python3 - "$host" "$1" <<'PY' 2>/dev/null
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=5)
def frame(stream, opcode, body=b""):
    return struct.pack(">BBhBi", 4, 0, stream, opcode, len(body)) + body
def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit(1)
        buf += chunk
    return buf
def read():
    version, flags, stream, opcode, length = struct.unpack(">BBhBi", recv_exact(9))
    return opcode, recv_exact(length)
def string(x):
    b = x.encode()
    return struct.pack(">H", len(b)) + b
s.sendall(frame(1, 0x01, struct.pack(">H", 1) + string("CQL_VERSION") + string("3.0.0")))
op, _ = read()
if op != 0x02:  # READY
    raise SystemExit(1)
q = b"SELECT release_version FROM system.local"
s.sendall(frame(2, 0x07, struct.pack(">i", len(q)) + q + struct.pack(">HB", 0x0001, 0)))
op, body = read()
if op != 0x08 or struct.unpack(">i", body[:4])[0] != 2:  # RESULT, kind Rows
    raise SystemExit(1)
# Rows: metadata(flags, column count, [global table spec], [col specs]), row count, rows
flags, ncols = struct.unpack(">ii", body[4:12])
pos = 12
def skip_string(p):
    return p + 2 + struct.unpack(">H", body[p:p + 2])[0]
if flags & 0x0001:
    pos = skip_string(skip_string(pos))
for _ in range(ncols):
    if not flags & 0x0001:
        pos = skip_string(skip_string(pos))
    pos = skip_string(pos)
    pos += 2  # option id (varchar)
nrows = struct.unpack(">i", body[pos:pos + 4])[0]
pos += 4
if nrows < 1:
    raise SystemExit(1)
n = struct.unpack(">i", body[pos:pos + 4])[0]
print(body[pos + 4:pos + 4 + n].decode())
PY
  else
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 5 bash -c '
      exec 3<>"/dev/tcp/$1/$2"
      printf "\x04\x00\x00\x01\x05\x00\x00\x00\x00" >&3   # v4 OPTIONS, stream 1
      hdr="$(head -c 5 <&3 | od -An -tx1 | tr -d " \n")"
      [[ $hdr == 8400000106 ]] && echo "(version unknown: no python3)"' _ "$host" "$1" 2>/dev/null
  fi
}

# ---------------------------------------------------------------- install

install_jars() {
  if [[ -f $lib_dir/.complete && -f $lib_dir/cassandra-all-$CASSANDRA_VERSION.jar ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install maven)"
  [[ -f $pom ]] || die "missing $pom"
  mkdir -p "$tools_dir"
  (
    flock 9
    if [[ -f $lib_dir/.complete ]]; then exit 0; fi
    log "installing cassandra-all $CASSANDRA_VERSION and its dependencies from Maven Central into $lib_dir (once; ~70 MB)"
    local tmp="$tools_dir/lib.tmp.$$"
    rm -rf "$tmp"
    if ! mvn -q -B -Dstyle.color=never -f "$pom" -Dcassandra.version="$CASSANDRA_VERSION" \
        -Dcassandra.lib="$tmp" dependency:copy-dependencies >"$tools_dir/mvn.log" 2>&1; then
      tail -n 50 "$tools_dir/mvn.log" >&2
      die "mvn failed (full output: $tools_dir/mvn.log)"
    fi
    [[ -f $tmp/cassandra-all-$CASSANDRA_VERSION.jar ]] || die "mvn did not produce cassandra-all-$CASSANDRA_VERSION.jar"
    rm -rf "$lib_dir"
    mv "$tmp" "$lib_dir"
    touch "$lib_dir/.complete"
  ) 9>"$tools_dir/.install.lock"
}

# ---------------------------------------------------------------- config

write_config() {
  mkdir -p "$conf_dir" "$data_dir"/{data,commitlog,hints,saved_caches,cdc_raw} "$CASSANDRA_HOME_DIR/logs"
  cat >"$yaml" <<EOF
# Generated by scripts/servers/cassandra.sh on every start: edits are overwritten.
cluster_name: $CASSANDRA_CLUSTER_NAME
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$CASSANDRA_SEEDS"
listen_address: $host
rpc_address: $host
storage_port: $CASSANDRA_STORAGE_PORT
start_native_transport: true
native_transport_port: $CASSANDRA_PORT
storage_compatibility_mode: NONE

data_file_directories:
  - $data_dir/data
commitlog_directory: $data_dir/commitlog
hints_directory: $data_dir/hints
saved_caches_directory: $data_dir/saved_caches
cdc_raw_directory: $data_dir/cdc_raw

# Every acknowledged write is fsynced to the commit log first (survives kill -9).
commitlog_sync: batch
commitlog_segment_size: 32MiB
commitlog_total_space: 512MiB

authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager

# Light settings for a laptop / CI box.
auto_snapshot: false
snapshot_before_compaction: false
concurrent_compactors: 1
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
hinted_handoff_enabled: false
cdc_enabled: false
disk_failure_policy: stop
commit_failure_policy: stop
EOF
  if [[ -n $CASSANDRA_INITIAL_TOKEN ]]; then
    printf '\n# CASSANDRA_INITIAL_TOKEN (used on the first start only; the node keeps its token)\ninitial_token: %s\n' \
      "$CASSANDRA_INITIAL_TOKEN" >>"$yaml"
  fi
  if (( CASSANDRA_NEW_CLUSTER )); then
    cat >>"$yaml" <<'EOF'

# CASSANDRA_NEW_CLUSTER=1: all nodes of this cluster started empty together, so a joining node has
# no data to stream and takes its token(s) at once instead of bootstrapping (no 30 s ring delay,
# no "other bootstrapping nodes" refusal when several join at the same time). A node that already
# joined keeps its tokens and data on restart either way.
auto_bootstrap: false
EOF
  fi
  if [[ -n $CASSANDRA_EXTRA_YAML ]]; then
    printf '\n# CASSANDRA_EXTRA_YAML\n%s\n' "$CASSANDRA_EXTRA_YAML" >>"$yaml"
  fi
  cat >"$conf_dir/logback.xml" <<'EOF'
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
}

# ---------------------------------------------------------------- commands

wait_ready() { # started-epoch-seconds pid
  local t0=$1 pid=$2 version
  while :; do
    if ! alive "$pid"; then
      log "the server process exited during startup; last 50 lines of $logfile:"
      tail -n 50 "$logfile" >&2 || true
      exit 1
    fi
    if port_open "$CASSANDRA_PORT" && version="$(cql_ping "$CASSANDRA_PORT")" && [[ -n $version ]]; then
      log "ready: Cassandra $version answers CQL on $host:$CASSANDRA_PORT (pid $pid, $(( $(date +%s) - t0 )) s)"
      return 0
    fi
    if (( $(date +%s) - t0 >= CASSANDRA_START_TIMEOUT )); then
      log "not answering CQL on $host:$CASSANDRA_PORT after ${CASSANDRA_START_TIMEOUT} s (pid $pid still running; stop it with: $env_hint $0 stop); last 50 lines of $logfile:"
      tail -n 50 "$logfile" >&2 || true
      exit 1
    fi
    sleep 1
  done
}

cmd_start() {
  local fresh=0 arg
  for arg in "$@"; do
    case $arg in
      --fresh) fresh=1 ;;
      *) usage ;;
    esac
  done
  abs_home
  set_paths
  local pid
  pid="$(server_pid)"
  if [[ -n $pid ]]; then
    if (( fresh )); then
      die "--fresh asked but the server is running (pid $pid): stop it first"
    fi
    if port_open "$CASSANDRA_PORT"; then
      log "already running (pid $pid) on $host:$CASSANDRA_PORT"
    else
      log "already starting (pid $pid); waiting for it"
    fi
    wait_ready "$(date +%s)" "$pid"
    return 0
  fi
  if port_open "$CASSANDRA_PORT"; then
    die "$host:$CASSANDRA_PORT is in use by another process (not this script's server for $CASSANDRA_HOME_DIR)"
  fi
  if port_open "$CASSANDRA_STORAGE_PORT"; then
    die "storage port $host:$CASSANDRA_STORAGE_PORT is in use: set CASSANDRA_STORAGE_PORT"
  fi

  local java
  java="$(java_bin)"
  install_jars

  if (( fresh )); then
    log "--fresh: wiping $data_dir"
    rm -rf "$data_dir"
  fi
  write_config

  local -a jamms=("$lib_dir"/jamm-*.jar)
  local jamm="${jamms[0]}"
  [[ -f $jamm ]] || die "jamm jar missing in $lib_dir (delete $tools_dir and retry)"

  local -a jvm=(
    -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xss256k
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300
    -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError
    -Djava.net.preferIPv4Stack=true
    -javaagent:"$jamm"
    # conf/jvm17-server.options (Cassandra 5.0)
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    # Cassandra
    -Dcassandra.config=file://"$yaml"
    -Dlogback.configurationFile=file://"$conf_dir/logback.xml"
    -Dcassandra.logdir="$CASSANDRA_HOME_DIR/logs"
    -Dcassandra.storagedir="$data_dir"
    -Dcassandra-foreground=yes
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.superuser_setup_delay_ms=0
  )
  local -a extra_jvm=()
  read -r -a extra_jvm <<<"$CASSANDRA_JVM_OPTS"
  jvm+=("${extra_jvm[@]}")

  if [[ -f $logfile ]]; then mv -f "$logfile" "$logfile.1"; fi
  log "starting Cassandra $CASSANDRA_VERSION on $host:$CASSANDRA_PORT (home $CASSANDRA_HOME_DIR, heap $CASSANDRA_HEAP, log $logfile)"
  local t0
  t0="$(date +%s)"
  # Cassandra mlockall()s the JVM when it may (as root: CAP_IPC_LOCK), which makes the whole heap
  # and every mapped jar resident at once (~1.5 GB RSS). A dev/test server does not need that:
  # drop CAP_IPC_LOCK and keep RLIMIT_MEMLOCK small, so mlockall fails with a harmless warning.
  local -a nolock=()
  if (( EUID == 0 )) && command -v setpriv >/dev/null \
      && setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock true 2>/dev/null; then
    nolock=(setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock)
  fi
  # Own session: a Ctrl-C or hangup aimed at the caller's terminal/process group does not reach
  # the server. (The subshell is never a group leader, so setsid execs without forking and $!
  # stays the java pid.)
  local -a detach=()
  if command -v setsid >/dev/null; then detach=(setsid); fi
  (
    cd "$CASSANDRA_HOME_DIR"
    ulimit -l 64 2>/dev/null || true
    exec "${detach[@]}" "${nolock[@]}" nohup "$java" "${jvm[@]}" -cp "$lib_dir/*" org.apache.cassandra.service.CassandraDaemon \
      </dev/null >>"$logfile" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$pidfile"
  wait_ready "$t0" "$pid"
}

cmd_stop() {
  local kill_now=0 arg
  for arg in "$@"; do
    case $arg in
      --kill) kill_now=1 ;;
      *) usage ;;
    esac
  done
  [[ -d $CASSANDRA_HOME_DIR ]] || { log "not running"; return 0; }
  abs_home
  set_paths
  local pid
  pid="$(server_pid)"
  if [[ -z $pid ]]; then
    rm -f "$pidfile"
    log "not running"
    return 0
  fi
  local i
  if (( kill_now )); then
    log "sending SIGKILL to pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  else
    log "stopping pid $pid (SIGTERM, up to 30 s)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "still running after 30 s: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  alive "$pid" && die "pid $pid did not exit"
  rm -f "$pidfile"
  log "stopped"
}

cmd_status() {
  [[ -d $CASSANDRA_HOME_DIR ]] || { log "not running"; return 1; }
  abs_home
  set_paths
  local pid
  pid="$(server_pid)"
  if [[ -n $pid ]] && port_open "$CASSANDRA_PORT"; then
    log "running (pid $pid) on $host:$CASSANDRA_PORT, home $CASSANDRA_HOME_DIR"
    return 0
  fi
  if [[ -n $pid ]]; then
    log "starting (pid $pid), port $CASSANDRA_PORT not open yet"
  else
    log "not running"
  fi
  return 1
}

cmd_wait() {
  [[ -d $CASSANDRA_HOME_DIR ]] || die "not running (no $CASSANDRA_HOME_DIR)"
  abs_home
  set_paths
  local pid
  pid="$(server_pid)"
  [[ -n $pid ]] || die "not running: start it with $0 start"
  wait_ready "$(date +%s)" "$pid"
}

cmd="${1:-}"
shift || true
case $cmd in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  wait) [[ $# -eq 0 ]] || usage; cmd_wait ;;
  *) usage ;;
esac
