#!/usr/bin/env bash
# Runs a real multi-node Apache Cassandra 5.0 cluster on loopback addresses (by default 3 nodes on
# 127.0.0.21, .22 and .23, CQL port 19142 on each), one scripts/servers/cassandra.sh node per
# address. The first address is the seed. Nodes of a new cluster join without bootstrapping (they
# all start empty: CASSANDRA_NEW_CLUSTER=1 in cassandra.sh) and get evenly spaced tokens.
#
#   scripts/servers/cassandra-cluster.sh start [--fresh]  start every node (the seed first, then the
#                                 others together) and wait until the cluster is whole; --fresh
#                                 wipes every node's data first (all nodes must be stopped)
#   scripts/servers/cassandra-cluster.sh stop [--kill]    stop every node (--kill: SIGKILL now)
#   scripts/servers/cassandra-cluster.sh status           exit 0 when every node is running
#   scripts/servers/cassandra-cluster.sh wait             wait until the cluster is whole
#   scripts/servers/cassandra-cluster.sh kill IP          SIGKILL one node (kill -9)
#   scripts/servers/cassandra-cluster.sh start-node IP    (re)start one node with its data and wait
#                                 until the cluster is whole again
#   scripts/servers/cassandra-cluster.sh cql IP STATEMENT run one CQL statement on a node and print
#                                 the rows, tab-separated (needs python3)
#
# "Whole" means: every node answers CQL, lists every other node in system.peers, and a read at
# consistency ALL of system_distributed (replication factor 3) coordinated by it succeeds, so it
# sees the other nodes up (with more than 3 nodes: the replicas of that keyspace). Needs python3;
# without it only the CQL port of each node is checked.
#
# Environment:
#   CASSANDRA_CLUSTER_IPS    node addresses, 127.x.y.z, space-separated; the first is the seed
#                            (default "127.0.0.21 127.0.0.22 127.0.0.23")
#   CASSANDRA_PORT           CQL port, the same on every address (default 19142)
#   CASSANDRA_STORAGE_PORT   internode port, the same on every address (default as in
#                            cassandra.sh: CASSANDRA_PORT-2042, so 17100)
#   CASSANDRA_HEAP           -Xms/-Xmx of each node (default 768m: ~0.7 GB RSS per idle node)
#   CASSANDRA_CLUSTER_NAME   cluster_name (default semrec-cluster)
#   CASSANDRA_START_TIMEOUT  seconds to wait for each node's CQL and then for the whole cluster
#                            (default 300)
#   CASSANDRA_CONSISTENCY    consistency level of the cql command (default ONE)
#   CASSANDRA_VERSION, CASSANDRA_EXTRA_YAML, CASSANDRA_JVM_OPTS, JAVA_HOME: passed to every node
#                            (see cassandra.sh)
# Node data, config and log (cassandra.log): ${XDG_CACHE_HOME:-$HOME/.cache}/semrec-servers/
# cassandra-IP-PORT (cassandra-PORT for 127.0.0.1), as cassandra.sh picks it.
#
# A node killed with kill -9 is seen DOWN by the others after ~20 s (failure detector,
# phi_convict_threshold 8); until then requests that need its answer (consistency ALL, range reads
# at QUORUM) may time out. A restarted node keeps its tokens and data and catches up through read
# repair (hinted handoff is off in these nodes). A node whose data was deleted must not rejoin
# alone (it would come back empty): start-node refuses that while other nodes hold data; use
# start --fresh for a new cluster.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node_script="$script_dir/cassandra.sh"
read -r -a ips <<<"${CASSANDRA_CLUSTER_IPS:-127.0.0.21 127.0.0.22 127.0.0.23}"
export CASSANDRA_PORT="${CASSANDRA_PORT:-19142}"
if [[ -z ${CASSANDRA_STORAGE_PORT:-} ]]; then # the same rule as cassandra.sh
  if (( CASSANDRA_PORT > 3066 )); then
    CASSANDRA_STORAGE_PORT=$((CASSANDRA_PORT - 2042))
  else
    CASSANDRA_STORAGE_PORT=$((CASSANDRA_PORT + 1000))
  fi
fi
export CASSANDRA_STORAGE_PORT
export CASSANDRA_HEAP="${CASSANDRA_HEAP:-768m}"
export CASSANDRA_CLUSTER_NAME="${CASSANDRA_CLUSTER_NAME:-semrec-cluster}"
export CASSANDRA_START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-300}"
# A node retries its default-role setup every superuser_setup_delay_ms until the nodes holding
# system_auth answer: cassandra.sh's 0 ms (right for one node) would spin while peers are down.
export CASSANDRA_JVM_OPTS="-Dcassandra.superuser_setup_delay_ms=1000${CASSANDRA_JVM_OPTS:+ $CASSANDRA_JVM_OPTS}"
CASSANDRA_CONSISTENCY="${CASSANDRA_CONSISTENCY:-ONE}"
# Per node, set below; never inherited (nodes must not share a home).
unset CASSANDRA_HOST CASSANDRA_HOME_DIR CASSANDRA_SEEDS CASSANDRA_INITIAL_TOKEN CASSANDRA_NEW_CLUSTER
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"

log() { echo "cassandra-cluster.sh [:$CASSANDRA_PORT]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  # the command lines of the header: between its first and second lone "#"
  awk '/^#$/ { n++; next } n == 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

(( ${#ips[@]} >= 1 )) || die "CASSANDRA_CLUSTER_IPS is empty"
for ip in "${ips[@]}"; do
  [[ $ip =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] \
    || die "CASSANDRA_CLUSTER_IPS: '$ip' is not a loopback IPv4 address (127.x.y.z)"
done
[[ $(printf '%s\n' "${ips[@]}" | sort | uniq -d) == "" ]] || die "CASSANDRA_CLUSTER_IPS has duplicates"
seed="${ips[0]}"

node_index() { # ip: its position in CASSANDRA_CLUSTER_IPS, or die
  local i
  for i in "${!ips[@]}"; do
    if [[ ${ips[$i]} == "$1" ]]; then
      echo "$i"
      return 0
    fi
  done
  die "$1 is not one of CASSANDRA_CLUSTER_IPS (${ips[*]})"
}

node_home() { # ip: the home cassandra.sh derives for it
  if [[ $1 == 127.0.0.1 ]]; then
    echo "$cache_root/semrec-servers/cassandra-$CASSANDRA_PORT"
  else
    echo "$cache_root/semrec-servers/cassandra-$1-$CASSANDRA_PORT"
  fi
}

# Token of node i of n: evenly spaced over the Murmur3 range, -2^63 + i * floor(2^64 / n), summed
# step by step so that no intermediate value overflows 64-bit arithmetic.
node_token() { # index
  local max=9223372036854775807 n=${#ips[@]} step t k
  step=$(( 2 * (max / n) + (2 * (max % n) + 2) / n ))
  t=$(( -max - 1 ))
  for ((k = 0; k < $1; k++)); do t=$(( t + step )); done
  echo "$t"
}

node() { # ip cassandra.sh-args...
  local ip=$1 i
  shift
  i="$(node_index "$ip")"
  CASSANDRA_HOST="$ip" \
    CASSANDRA_SEEDS="$seed:$CASSANDRA_STORAGE_PORT" \
    CASSANDRA_NEW_CLUSTER=1 \
    CASSANDRA_INITIAL_TOKEN="$(node_token "$i")" \
    bash "$node_script" "$@"
}

node_running() { node "$1" status 2>/dev/null; }
# A server process of this node exists (running or still starting), as cassandra.sh finds it.
node_alive() {
  local home
  home="$(node_home "$1")"
  [[ -d $home ]] && home="$(cd "$home" && pwd)"
  pgrep -f -- "-Dcassandra.config=file://$home/conf/cassandra.yaml( |\$)" >/dev/null
}
node_has_data() { [[ -d $(node_home "$1")/data/data/system ]]; }

# ---------------------------------------------------------------- CQL (python3)

# A minimal CQL v4 client: `query HOST PORT CONSISTENCY STATEMENT` prints the rows, tab-separated;
# `check PORT IP...` exits 0 when the cluster of those nodes is whole (see the header), otherwise
# prints why not and exits 1.
# shellcheck disable=SC2016 # python, not shell
pycql='
import ipaddress, socket, struct, sys, uuid

CONSISTENCY = {"ANY": 0, "ONE": 1, "TWO": 2, "THREE": 3, "QUORUM": 4, "ALL": 5,
               "LOCAL_QUORUM": 6, "EACH_QUORUM": 7, "SERIAL": 8, "LOCAL_SERIAL": 9, "LOCAL_ONE": 10}

class CqlError(Exception):
    pass

def string(x):
    b = x.encode()
    return struct.pack(">H", len(b)) + b

class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0
    def take(self, n):
        v = self.b[self.p:self.p + n]
        self.p += n
        return v
    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
    def string(self):
        return self.take(self.unpack(">H")).decode()
    def bytes(self):
        n = self.unpack(">i")
        return None if n < 0 else self.take(n)
    def option(self):
        tid = self.unpack(">H")
        if tid == 0x0000:
            self.string()
        elif tid in (0x20, 0x22):
            self.option()
        elif tid == 0x21:
            self.option(); self.option()
        elif tid == 0x30:
            self.string(); self.string()
            for _ in range(self.unpack(">H")):
                self.string(); self.option()
        elif tid == 0x31:
            for _ in range(self.unpack(">H")):
                self.option()
        return tid

def decode(tid, v):
    if v is None:
        return "null"
    if tid in (0x01, 0x0D):
        return v.decode()
    if tid in (0x02, 0x05, 0x0B):
        return str(struct.unpack(">q", v)[0])
    if tid == 0x09:
        return str(struct.unpack(">i", v)[0])
    if tid == 0x13:
        return str(struct.unpack(">h", v)[0])
    if tid == 0x14:
        return str(struct.unpack(">b", v)[0])
    if tid == 0x04:
        return "true" if v[0] else "false"
    if tid in (0x0C, 0x0F):
        return str(uuid.UUID(bytes=v))
    if tid == 0x10:
        return str(ipaddress.ip_address(v))
    if tid == 0x07:
        return repr(struct.unpack(">d", v)[0])
    return "0x" + v.hex()

class Conn:
    def __init__(self, host, port, timeout=15):
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.stream = 0
        op, _ = self.request(0x01, struct.pack(">H", 1) + string("CQL_VERSION") + string("3.0.0"))
        if op != 0x02:
            raise CqlError("no READY after STARTUP (opcode %d)" % op)
    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise CqlError("connection closed")
            buf += chunk
        return buf
    def request(self, opcode, body):
        self.stream += 1
        self.s.sendall(struct.pack(">BBhBi", 4, 0, self.stream, opcode, len(body)) + body)
        while True:
            _, flags, stream, op, length = struct.unpack(">BBhBi", self.recv_exact(9))
            r = Reader(self.recv_exact(length))
            if stream == self.stream:
                break
        if flags & 0x02:
            r.take(16)  # tracing id
        if flags & 0x08:
            for _ in range(r.unpack(">H")):
                print("warning: " + r.string(), file=sys.stderr)
        if flags & 0x04:
            for _ in range(r.unpack(">H")):
                r.string(); r.bytes()
        if op == 0x00:
            code = r.unpack(">i")
            raise CqlError("error 0x%04x: %s" % (code, r.string()))
        return op, r
    def query(self, q, consistency="ONE"):
        q = q.encode()
        op, r = self.request(0x07, struct.pack(">i", len(q)) + q
                             + struct.pack(">HB", CONSISTENCY[consistency.upper()], 0))
        if op != 0x08:
            raise CqlError("unexpected opcode %d" % op)
        kind = r.unpack(">i")
        if kind == 3:
            print("keyspace " + r.string(), file=sys.stderr)
            return []
        if kind == 5:
            print("schema change: %s %s" % (r.string(), r.string()), file=sys.stderr)
            return []
        if kind != 2:
            return []
        flags, ncols = r.unpack(">i"), r.unpack(">i")
        if flags & 0x0002:
            r.bytes()  # paging state
        types = [None] * ncols
        if not flags & 0x0004:
            if flags & 0x0001:
                r.string(); r.string()
            for c in range(ncols):
                if not flags & 0x0001:
                    r.string(); r.string()
                r.string()
                types[c] = r.option()
        return [[decode(types[c], r.bytes()) for c in range(ncols)] for _ in range(r.unpack(">i"))]

def check(port, ips):
    problems = []
    for ip in ips:
        try:
            c = Conn(ip, port)
            peers = {row[0] for row in c.query("SELECT peer FROM system.peers")}
            missing = [o for o in ips if o != ip and o not in peers]
            if missing:
                problems.append("%s does not list %s in system.peers" % (ip, " ".join(missing)))
                continue
            if len(ips) > 1:
                c.query("SELECT keyspace_name FROM system_distributed.repair_history LIMIT 1", "ALL")
        except (OSError, CqlError) as e:
            problems.append("%s: %s" % (ip, e))
    if problems:
        print("; ".join(problems))
        sys.exit(1)

if sys.argv[1] == "query":
    try:
        for row in Conn(sys.argv[2], sys.argv[3]).query(sys.argv[5], sys.argv[4]):
            print("\t".join(row))
    except (OSError, CqlError) as e:
        print(e, file=sys.stderr)
        sys.exit(1)
else:
    check(sys.argv[2], sys.argv[3:])
'

port_open() { # ip
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$CASSANDRA_PORT" 2>/dev/null
}

# Waits until the cluster is whole; $1: the epoch second the caller started at (for the message).
wait_whole() {
  local t0=$1 why ip
  local t_wait
  t_wait="$(date +%s)"
  while :; do
    if command -v python3 >/dev/null; then
      why="$(timeout 60 python3 -c "$pycql" check "$CASSANDRA_PORT" "${ips[@]}" 2>&1)" && break
    else
      why=""
      for ip in "${ips[@]}"; do
        port_open "$ip" || why+="$ip:$CASSANDRA_PORT is not open; "
      done
      [[ -z $why ]] && break
    fi
    for ip in "${ips[@]}"; do
      node_alive "$ip" || die "node $ip is not running (start it: $0 start-node $ip); $why"
    done
    if (( $(date +%s) - t_wait >= CASSANDRA_START_TIMEOUT )); then
      die "the cluster is not whole after ${CASSANDRA_START_TIMEOUT} s: $why"
    fi
    sleep 1
  done
  log "cluster of ${#ips[@]} nodes is whole (${ips[*]}, CQL port $CASSANDRA_PORT; $(( $(date +%s) - t0 )) s)"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local fresh=0 arg ip t0
  for arg in "$@"; do
    case $arg in
      --fresh) fresh=1 ;;
      *) usage ;;
    esac
  done
  t0="$(date +%s)"
  if (( fresh )); then
    for ip in "${ips[@]}"; do
      if node_running "$ip"; then
        die "--fresh asked but node $ip is running: stop the cluster first ($0 stop)"
      fi
    done
  fi
  local with=() without=()
  for ip in "${ips[@]}"; do
    if (( ! fresh )) && node_has_data "$ip"; then with+=("$ip"); else without+=("$ip"); fi
  done
  if (( ${#with[@]} && ${#without[@]} )); then
    die "node(s) ${with[*]} hold data, ${without[*]} none: an empty node would join without the data (use start --fresh for a new cluster)"
  fi
  local -a flags=() others=("${ips[@]}")
  (( fresh )) && flags=(--fresh)
  if (( ${#without[@]} )); then
    # A new cluster: the seed first, so that the others find it when they join.
    log "starting seed $seed"
    node "$seed" start "${flags[@]}"
    others=("${ips[@]:1}")
  fi
  # The others together: no node bootstraps (no streaming, no range movement), so they may join
  # at once. When every node already holds data (a restart) the seed starts with them: alone, it
  # would wait 30 s for peers in its gossip shadow round, then 10 s more for connections to them.
  local -a pids=()
  if (( ${#others[@]} )); then
    log "starting ${others[*]}"
    for ip in "${others[@]}"; do
      node "$ip" start "${flags[@]}" &
      pids+=($!)
    done
    local failed=0 i
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || { log "node ${others[$i]} failed to start (log: $(node_home "${others[$i]}")/cassandra.log)"; failed=1; }
    done
    (( failed )) && die "some nodes failed to start"
  fi
  wait_whole "$t0"
}

cmd_stop() {
  local arg ip
  for arg in "$@"; do
    [[ $arg == --kill ]] || usage
  done
  local -a pids=()
  for ip in "${ips[@]}"; do
    node "$ip" stop "$@" &
    pids+=($!)
  done
  local failed=0 pid
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
  done
  (( failed == 0 )) || die "some nodes did not stop"
}

cmd_status() {
  local ip down=0
  for ip in "${ips[@]}"; do
    node "$ip" status || down=1
  done
  return "$down"
}

cmd_kill() {
  [[ $# -eq 1 ]] || usage
  node_index "$1" >/dev/null
  node "$1" stop --kill
}

cmd_start_node() {
  [[ $# -eq 1 ]] || usage
  local ip=$1 t0 other
  node_index "$ip" >/dev/null
  t0="$(date +%s)"
  if ! node_has_data "$ip"; then
    for other in "${ips[@]}"; do
      if [[ $other != "$ip" ]] && node_has_data "$other"; then
        die "node $ip has no data while $other has: it would rejoin empty (use start --fresh for a new cluster)"
      fi
    done
  fi
  node "$ip" start
  wait_whole "$t0"
}

cmd_cql() {
  [[ $# -eq 2 ]] || usage
  node_index "$1" >/dev/null
  command -v python3 >/dev/null || die "the cql command needs python3"
  python3 -c "$pycql" query "$1" "$CASSANDRA_PORT" "$CASSANDRA_CONSISTENCY" "$2"
}

cmd="${1:-}"
shift || true
case $cmd in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) [[ $# -eq 0 ]] || usage; cmd_status ;;
  wait) [[ $# -eq 0 ]] || usage; wait_whole "$(date +%s)" ;;
  kill) cmd_kill "$@" ;;
  start-node) cmd_start_node "$@" ;;
  cql) cmd_cql "$@" ;;
  *) usage ;;
esac
