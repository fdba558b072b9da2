"""Writes the fault soak's report (benches/soak.sh) from the load's request log and summary and
the chaos loop's log of kills.

usage: soak_report.py OUT_DIR CHAOS_CSV STARTED_MS MINUTES REPORT_MD

Phases: "steady" is every moment with no component down or recovering; each kill opens a phase
that lasts until the cluster reported ready again. Per phase: requests, the share answered with
an error (a refused connection, a timeout, any 5xx), and the p99 latency of all answered
requests. "errors until" is the last failed request of that phase, counted from the kill.
"""

import csv
import datetime
import json
import os
import platform
import subprocess
import sys


def p99(values):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))]


def main():
    out_dir, chaos_csv, started_ms, minutes, report = sys.argv[1:6]
    started_ms = int(started_ms)
    summary = json.load(open(os.path.join(out_dir, "summary.json")))
    kills = []
    with open(chaos_csv) as f:
        for row in csv.DictReader(f):
            killed = int(row["killed_ms"]) - started_ms
            recovered = int(row["recovered_ms"]) - started_ms if row["recovered_ms"] else None
            kills.append({**row, "killed": killed, "recovered": recovered})
    # The load's clock starts a little after the script's: its requests.csv is relative to
    # the soak binary's start, which the script launched at `started_ms`.
    requests = []
    with open(os.path.join(out_dir, "requests.csv")) as f:
        for at, kind, router, status, ms in csv.reader(f):
            requests.append((int(at), kind, int(router), int(status), float(ms)))
    load_end = summary["load_ended_ms"]
    in_load = [r for r in requests if r[1] not in ("seed", "readback") and r[0] <= load_end]

    def phase_of(at):
        for i, k in enumerate(kills):
            end = k["recovered"] if k["recovered"] is not None else load_end
            if k["killed"] <= at <= end:
                return i
        return None

    phases = {None: []}
    for i in range(len(kills)):
        phases[i] = []
    for r in in_load:
        phases[phase_of(r[0])].append(r)

    def failed(r):
        return r[3] == 0 or r[3] >= 500

    def row(name, reqs, extra=""):
        errors = sum(1 for r in reqs if failed(r))
        answered = [r[4] for r in reqs if r[3] != 0]
        rate = errors / len(reqs) if reqs else 0.0
        return f"| {name} | {len(reqs)} | {errors} | {rate:.1%} | {p99(answered):.0f} |{extra}"

    lines = [row("steady (nothing down)", phases[None], " | | |")]
    for i, k in enumerate(kills):
        reqs = phases[i]
        last_error = max((r[0] for r in reqs if failed(r)), default=None)
        until = f"{(last_error - k['killed']) / 1000:.1f} s" if last_error is not None else "none"
        ready = f"{(k['recovered'] - k['killed']) / 1000:.1f} s" if k["recovered"] is not None else "not recovered"
        lines.append(row(f"kill -9 {k['victim']}", reqs, f" {k['kind']} | {ready} | {until} |"))
    failures = {}
    for r in in_load:
        if failed(r):
            phase = "steady" if phase_of(r[0]) is None else kills[phase_of(r[0])]["kind"]
            key = (phase, r[1], "no connection" if r[3] == 0 else str(r[3]))
            failures[key] = failures.get(key, 0) + 1
    failure_lines = "\n".join(
        f"| {phase} | {kind} | {status} | {n} |" for (phase, kind, status), n in sorted(failures.items())
    ) or "| | | | 0 |"
    kinds = {}
    for k in kills:
        kinds[k["kind"]] = kinds.get(k["kind"], 0) + 1

    def cpu():
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
        return platform.processor()

    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    s = summary
    verdict = (
        "**passed**"
        if not (s["events_lost"] or s["events_duplicated"] or s["items_lost"] or s["bad_5xx"])
        else "**FAILED**"
    )
    text = f"""# Fault soak

Written by `benches/soak.sh --minutes {minutes}` on {datetime.date.today().isoformat()}; machine: {cpu()},
{cores} cores, every process on it over loopback. The cluster: a 3-node Cassandra 5.0 cluster
(replication factor 3, quorum reads and writes) as the store of record, Neo4j, Redis, 3 shard nodes
(4 shards, each on 2 nodes) and 2 routers. The load: recommendations and similar items (about 20
requests/s), batches of 3 events with ids (about 6 batches/s), one item upsert a second; a failed
write is retried with the same ids on the other router for up to a minute. Every 30-60 s one
component is killed with SIGKILL and restarted 2 s later.

## Result: {verdict}

| check | value | must be |
|---|---|---|
| events acknowledged | {s['events_acknowledged']} | > 0 |
| acknowledged events lost | {s['events_lost']} | 0 |
| events stored twice | {s['events_duplicated']} | 0 |
| items acknowledged | {s['items_acknowledged']} | > 0 |
| acknowledged items missing on a router | {len(s['items_lost'])} | 0 |
| 5xx other than a 503 with a JSON body | {s['bad_5xx']} | 0 |
| 4xx answers | {s['client_errors']} | 0 |
| retried events the server reported as duplicates | {s['duplicates_reported_on_retry']} | (any) |
| writes given up after a minute of retries | {s['writes_given_up']} | (any; never acknowledged) |
| events stored but never acknowledged | {s['events_stored_unacknowledged']} | (any) |

Kills by kind: {", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"}.

## Per phase

"ready after" is the time from the kill until the component and every router and shard node
reported ready with every dependency up (it includes the 2 s before the restart). "errors until"
is the last failed request of the phase, from the kill. Failed: a refused connection (a killed
router), a timeout or a 5xx (503 with a JSON body while a dependency is away).

| phase | requests | failed | failed share | p99 ms | kind | ready after | errors until |
|---|---|---|---|---|---|---|---|
""" + "\n".join(lines) + f"""

## Failed requests by phase, request and answer

| phase | request | answer | count |
|---|---|---|---|
{failure_lines}
"""
    open(report, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
