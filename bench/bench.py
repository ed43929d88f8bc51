#!/usr/bin/env python3
"""Passerelle benchmark orchestrator (stdlib only), started by bench/run.sh.

run.sh installs the tools and builds the binaries, then runs this script,
which prepares the data, measures the six scenarios side by side with their
references, and writes bench/RESULTS.md. Raw outputs go to bench/work/raw/.

Only processes started here are stopped, by their pid. Every load is bounded
(wrk -d, curl --max-time, subprocess timeouts).
"""
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import bench_util as bu

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
WORK = os.path.abspath(os.environ.get("BENCH_WORK") or os.path.join(BENCH, "work"))
RAW = os.path.join(WORK, "raw")
CSV = os.path.join(WORK, "consommations.csv")
SQLITE_DB = os.path.join(WORK, "bench.db")
RESULTS = os.environ.get("BENCH_RESULTS") or os.path.join(BENCH, "RESULTS.md")


def env_int(name, default):
    value = os.environ.get(name, "").strip().rstrip("s")
    return int(value) if value else default


DURATION = env_int("BENCH_DURATION", 10)
REPS = env_int("BENCH_REPS", 3)
CONNS = env_int("BENCH_CONNS", 32)
ROWS = env_int("BENCH_ROWS", 1_000_000)
DS_EXPORT_RUNS = env_int("BENCH_DS_EXPORT_RUNS", 1)
AGG_RUNS = env_int("BENCH_AGG_RUNS", 5)
AUDIT_EVENTS = env_int("BENCH_AUDIT_EVENTS", 50_000)
AUDIT_CONCURRENCY = env_int("BENCH_AUDIT_CONCURRENCY", 32)
PG_BASE = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PEER_DB = os.environ.get("BENCH_PEER_DB", "bench")  # the references' database (psql \copy, floor)
GW_DB = os.environ.get("BENCH_GW_DB", "passerelle_bench")  # BENCH_GW_DB: another name when two runs share the server
PORTS = {"ds": 18001, "floor": 18081, "sq": 18090, "pg": 18091, "export": 18092, "edge_off": 18093,
         "second": 18094, "lb_one": 18095, "lb_two": 18096, "upload": 18097}
NGINX = os.environ.get("NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"
PASSERELLE = os.environ.get("GATEWAY_BIN", "")
FLOOR = os.environ.get("FLOOR_BIN", "")
GW_BUILD_ERROR = os.environ.get("GATEWAY_BUILD_ERROR", "")
# extra settings for the gateway processes, e.g. "RUST_LOG=warn PASSERELLE_SERVER__PAGE_CACHE_BYTES=0"
GATEWAY_ENV = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_GATEWAY_ENV", "").split() if "=" in kv)
T0 = time.time()
HIGH_LIMITS = {"PASSERELLE_LIMITS__ANONYMOUS__REQUESTS": "100000000",
               "PASSERELLE_LIMITS__ANONYMOUS__BURST": "100000000"}
# S1e: the edge (compression and rate limiting) switched off, for the on/off comparison.
EDGE_OFF = {"PASSERELLE_SERVER__COMPRESSION__ENABLED": "false", "PASSERELLE_LIMITS__ENABLED": "false"}

PROCS = []  # (name, Popen) started here


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} +{time.time() - T0:4.0f}s] {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout=600, check=True, env=None, **kw):
    """Runs a command (list or shell string); raises with its stderr on failure."""
    shell = isinstance(cmd, str)
    proc = subprocess.run(cmd, shell=shell, capture_output=True, text=True, timeout=timeout,
                          env=env, executable="/bin/bash" if shell else None, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {cmd}\n{proc.stderr[-2000:]}")
    return proc


def timed(cmd, timeout=600, env=None):
    """Wall time of a shell command (raises on failure)."""
    t = time.perf_counter()
    run(cmd, timeout=timeout, env=env)
    return time.perf_counter() - t


def psql(sql, db=PEER_DB, timeout=600):
    return run(["psql", f"{PG_BASE}/{db}", "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql],
               timeout=timeout).stdout.strip()


def start(name, cmd, env=None, log_name=None, cwd=None):
    out = open(os.path.join(RAW, log_name or f"{name}.log"), "w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True)
    PROCS.append((name, proc))
    return proc


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def stop_all():
    for _, proc in PROCS:
        stop(proc)


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def http(url, headers=None, timeout=60):
    """-> (status, headers dict lowercased, body bytes); never raises on HTTP status."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, {}, str(e).encode()


def wait_http(url, proc, seconds):
    """Waits until `url` answers anything; False when the process died or time ran out."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        status, _, _ = http(url, timeout=5)
        if status:
            return True
        time.sleep(0.3)
    return False


def tail(path, n=15):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return ""


def median(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else None


def pg_pid():
    try:
        return int(open("/var/lib/postgresql/15/main/postmaster.pid").readline())
    except OSError:
        return 0


# ---------------------------------------------------------------- results
R = {
    "started": datetime.datetime.now().isoformat(timespec="seconds"),
    "config": {"duration_s": DURATION, "reps": REPS, "conns": CONNS, "rows": ROWS,
               "ds_export_runs": DS_EXPORT_RUNS, "agg_runs": AGG_RUNS,
               "audit_events": AUDIT_EVENTS, "audit_concurrency": AUDIT_CONCURRENCY},
    "notes": [],        # problems met (Passerelle unavailable, endpoint errors...)
    "failed": [],       # scenario keys that failed
    "wrk": {},          # key -> list of run dicts
    "scen": [],         # wrk scenarios (key, label, url, conns)
    "checks": {},       # key -> response check text
    "agg": {},          # name -> dict
    "export": {},       # name -> dict
    "export_compressed": {},  # store_encoding -> dict
    "import": {},       # name -> dict
    "audit": None,
    "commands": [],
}


def note(msg):
    log("NOTE: " + msg)
    R["notes"].append(msg)


def cmd_doc(text):
    if text not in R["commands"]:
        R["commands"].append(text)


# ---------------------------------------------------------------- data
def prepare_data(peers=True):
    os.makedirs(RAW, exist_ok=True)
    gen = os.path.join(BENCH, "gen_dataset.py")
    key = hashlib.sha256(open(gen, "rb").read() + str(ROWS).encode()).hexdigest()[:16]
    marker = os.path.join(WORK, ".gen_key")
    current = open(marker).read() if os.path.exists(marker) else ""
    if not os.path.exists(CSV) or current != key:
        log(f"generating {ROWS:,} rows -> {CSV}")
        run(["python3", gen, CSV + ".tmp", str(ROWS)], timeout=600)
        os.replace(CSV + ".tmp", CSV)
        open(marker, "w").write(key)
        for m in (".sqlite_loaded", ".pg_loaded"):
            if os.path.exists(os.path.join(WORK, m)):
                os.remove(os.path.join(WORK, m))
    R["csv_bytes"] = os.path.getsize(CSV)
    R["csv_md5"] = hashlib.md5(open(CSV, "rb").read()).hexdigest()
    if peers:
        prepare_peers()
    prepare_gateway_folders()


def prepare_peers():
    sql_dir = os.path.join(BENCH, "sql")
    load_key = R["csv_md5"] + hashlib.sha256(b"".join(
        open(os.path.join(sql_dir, f), "rb").read()
        for f in ("load_sqlite.sql", "schema_pg.sql", "indexes_pg.sql"))).hexdigest()[:16]

    # SQLite copy for datasette and sqlite3 (the reference load script, paths adapted)
    marker = os.path.join(WORK, ".sqlite_loaded")
    if (open(marker).read() if os.path.exists(marker) else "") != load_key or not os.path.exists(SQLITE_DB):
        log("loading SQLite bench/work/bench.db")
        for suffix in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(SQLITE_DB + suffix):
                os.remove(SQLITE_DB + suffix)
        script = open(os.path.join(sql_dir, "load_sqlite.sql")).read().replace(
            "data/consommations_energie.csv", CSV)
        run(["sqlite3", "-bail", SQLITE_DB], input=script, timeout=600)
        open(marker, "w").write(load_key)
    count = run(["sqlite3", SQLITE_DB, "select count(*) from consommations_energie"]).stdout.strip()
    assert count == str(ROWS), f"SQLite holds {count} rows, expected {ROWS}"

    # PostgreSQL copy for the floor and psql
    if not psql(f"SELECT 1 FROM pg_database WHERE datname = '{PEER_DB}'", db="postgres"):
        psql(f"CREATE DATABASE {PEER_DB}", db="postgres")
    marker = os.path.join(WORK, ".pg_loaded")
    try:
        pg_count = psql("SELECT count(*) FROM consommations_energie")
    except RuntimeError:
        pg_count = "0"
    if (open(marker).read() if os.path.exists(marker) else "") != load_key or pg_count != str(ROWS):
        log("loading PostgreSQL table consommations_energie (COPY)")
        run(["psql", f"{PG_BASE}/{PEER_DB}", "-q", "-v", "ON_ERROR_STOP=1", "-f",
             os.path.join(sql_dir, "schema_pg.sql")])
        run(["psql", f"{PG_BASE}/{PEER_DB}", "-q", "-v", "ON_ERROR_STOP=1", "-c",
             f"\\copy consommations_energie from '{CSV}' csv header"])
        run(["psql", f"{PG_BASE}/{PEER_DB}", "-q", "-v", "ON_ERROR_STOP=1", "-f",
             os.path.join(sql_dir, "indexes_pg.sql")])
        open(marker, "w").write(load_key)
    psql("VACUUM ANALYZE consommations_energie", timeout=600)
    R["troyes_rows"] = int(psql("SELECT count(*) FROM consommations_energie WHERE commune = 'Troyes'"))



def prepare_gateway_folders():
    """The gateway's catalogue and policies folders."""
    cat = os.path.join(WORK, "catalog")
    os.makedirs(cat, exist_ok=True)
    for f in os.listdir(os.path.join(BENCH, "catalog")):
        shutil.copy(os.path.join(BENCH, "catalog", f), cat)
    link = os.path.join(cat, "consommations.csv")
    if not os.path.islink(link):
        if os.path.exists(link):
            os.remove(link)
        os.symlink("../consommations.csv", link)
    pol = os.path.join(WORK, "policies")
    os.makedirs(pol, exist_ok=True)
    model = os.path.join(ROOT, "policies", "model.conf")
    if os.path.exists(model):
        shutil.copy(model, os.path.join(pol, "model.conf"))
        R["policy_model"] = "the project's policies/model.conf"
    else:
        shutil.copy(os.path.join(BENCH, "policies", "model.conf"), os.path.join(pol, "model.conf"))
        R["policy_model"] = "bench/policies/model.conf (the project has no policies/model.conf)"
    shutil.copy(os.path.join(BENCH, "policies", "policy.csv"), os.path.join(pol, "policy.csv"))


# ---------------------------------------------------------------- gateway helpers
class Gateway:
    """One store (SQLite or PostgreSQL) of the gateway under test."""

    def __init__(self, key, label, url):
        self.key, self.label, self.url = key, label, url
        self.error = None          # why this store cannot be measured
        self.tokens = {}
        self.proc = None
        self.port = PORTS[key]

    def env(self, port=None, dev=False):
        # The gateway reads every PASSERELLE_* variable as a setting (unknown keys are refused):
        # pass only the ones set here and in BENCH_GATEWAY_ENV.
        e = {k: v for k, v in os.environ.items() if not k.startswith("PASSERELLE_")}
        # Rate limiting stays on, set far above what wrk can send from one address
        # (the defaults, 50 req/s for anonymous callers, would answer 429 under load).
        e.update(HIGH_LIMITS)
        e.update(GATEWAY_ENV)
        e.update({
            "DATABASE_URL": self.url,
            "PASSERELLE_SERVER__LISTEN": f"127.0.0.1:{port or self.port}",
            "PASSERELLE_CATALOG_DIR": os.path.join(WORK, "catalog"),
            "PASSERELLE_POLICIES_DIR": os.path.join(WORK, "policies"),
        })
        if dev:
            e["PASSERELLE_DEV_MODE"] = "true"
        return e

    def cli(self, args, timeout=600, dev=False):
        return run([PASSERELLE] + args, timeout=timeout, check=False, env=self.env(dev=dev), cwd=WORK)

    def fail(self, what, proc=None, log_path=None):
        detail = ""
        if proc is not None:
            detail = (proc.stdout or "")[-800:] + (proc.stderr or "")[-1500:]
        if log_path:
            detail += tail(log_path)
        self.error = f"{what}" + (f": {detail.strip()}" if detail.strip() else "")
        note(f"Passerelle ({self.label}): {self.error}")

    def reset(self):
        if self.key == "pg":
            psql(f"DROP DATABASE IF EXISTS {GW_DB} WITH (FORCE)", db="postgres")
            psql(f"CREATE DATABASE {GW_DB}", db="postgres")
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                path = os.path.join(WORK, "passerelle.db" + suffix)
                if os.path.exists(path):
                    os.remove(path)

    def serve(self, port=None, name=None, extra=None):
        name = name or f"passerelle_{self.key}"
        env = self.env(port=port)
        env.update(extra or {})
        proc = start(name, [PASSERELLE, "serve"], env=env, cwd=WORK)
        base = f"http://127.0.0.1:{port or self.port}"
        if not wait_http(base + "/health/live", proc, 180):
            self.fail(f"`passerelle serve` did not answer on {base} within 180 s "
                      f"(exit code {proc.poll()})", log_path=os.path.join(RAW, name + ".log"))
            stop(proc)
            return None
        return proc


def gateways():
    return [Gateway("sq", "SQLite store", "sqlite:" + os.path.join(WORK, "passerelle.db")),
            Gateway("pg", "PostgreSQL store", f"{PG_BASE}/{GW_DB}")]


def check_binary():
    if GW_BUILD_ERROR:
        return f"the gateway did not build: {GW_BUILD_ERROR}"
    if not PASSERELLE or not os.path.isfile(PASSERELLE):
        return f"binary not found ({PASSERELLE or 'GATEWAY_BIN unset'})"
    proc = run([PASSERELLE, "--help"], check=False, timeout=30)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return f"`passerelle --help` failed: {text[-500:]}"
    missing = [c for c in ("serve", "import", "token") if not re.search(rf"^\s+{c}\b", text, re.M)]
    if missing:
        return f"the binary lacks subcommands {missing} (help: {text[:300]!r})"
    return None


# ---------------------------------------------------------------- scenario 5 (imports) + setup
def scenario_import(gws):
    log("S5 import: psql \\copy FROM, sqlite3 .import, passerelle import")
    sql_dir = os.path.join(BENCH, "sql")
    if not psql(f"SELECT 1 FROM pg_database WHERE datname = '{PEER_DB}'", db="postgres"):
        psql(f"CREATE DATABASE {PEER_DB}", db="postgres")
    times = []
    for _ in range(REPS):
        run(["psql", f"{PG_BASE}/{PEER_DB}", "-q", "-f", os.path.join(sql_dir, "import_pg.sql")])
        times.append(timed(f"psql {PG_BASE}/{PEER_DB} -c \"\\copy import_test from '{CSV}' csv header\""))
    assert psql("SELECT count(*) FROM import_test") == str(ROWS)
    psql("DROP TABLE import_test")
    R["import"]["psql_copy_from"] = {"label": "psql \\copy FROM csv (empty table, no index)", "times": times}
    cmd_doc(f"psql $PG/bench -c \"\\copy import_test from 'work/consommations.csv' csv header\"  (fresh table, sql/import_pg.sql)")
    times = []
    tmpdb = os.path.join(WORK, "import_test.db")
    script = open(os.path.join(sql_dir, "import_sqlite.sql")).read().replace("data/consommations_energie.csv", CSV)
    for _ in range(REPS):
        if os.path.exists(tmpdb):
            os.remove(tmpdb)
        t = time.perf_counter()
        run(["sqlite3", "-bail", tmpdb], input=script)
        times.append(time.perf_counter() - t)
    assert run(["sqlite3", tmpdb, "select count(*) from import_test"]).stdout.strip() == str(ROWS)
    os.remove(tmpdb)
    R["import"]["sqlite3_import"] = {"label": "sqlite3 .import --csv (empty table, no index)", "times": times}
    cmd_doc("sqlite3 -bail work/import_test.db < sql/import_sqlite.sql  (new file per run)")

    for gw in gws:
        if gw.error:
            continue
        gw.reset()
        times, internal = [], []
        for i in range(REPS):
            t = time.perf_counter()
            proc = gw.cli(["import", "conso-closed", CSV], timeout=900)
            wall = time.perf_counter() - t
            open(os.path.join(RAW, f"import_{gw.key}_{i + 1}.txt"), "w").write(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                gw.fail(f"`passerelle import conso-closed` failed (exit {proc.returncode})", proc)
                break
            m = re.search(r"imported (\d+) rows.* in ([\d.]+) s", proc.stdout)
            if not m or int(m.group(1)) != ROWS:
                gw.fail(f"`passerelle import` did not report {ROWS} rows", proc)
                break
            times.append(wall)
            internal.append(float(m.group(2)))
            log(f"passerelle import ({gw.label}) run {i + 1}: {wall:.2f} s wall, {m.group(2)} s reported")
        R["import"][f"passerelle_{gw.key}"] = {
            "label": f"passerelle import conso-closed ({gw.label}, new version, with its indexes)",
            "times": times, "reported": internal, "error": gw.error}
    cmd_doc("passerelle import conso-closed work/consommations.csv  (DATABASE_URL = each store; wall time incl. process start)")


def setup_gateway(gw):
    """Catalogue sync (imports conso-open), tokens."""
    if gw.error:
        return
    log(f"passerelle catalog sync ({gw.label})")
    proc = gw.cli(["catalog", "sync"], timeout=900)
    open(os.path.join(RAW, f"sync_{gw.key}.txt"), "w").write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        note(f"Passerelle ({gw.label}): `catalog sync` failed (exit {proc.returncode}); "
             f"trying `passerelle import conso-open`: {(proc.stdout + proc.stderr)[-400:].strip()}")
        proc = gw.cli(["import", "conso-open", CSV], timeout=900)
        if proc.returncode != 0:
            gw.fail("cannot load conso-open", proc)
            return
    for role in ("bench-reader", "bench-aggregator", "bench-publisher"):
        proc = gw.cli(["token", "--sub", "bench", "--roles", role, "--ttl", "3600"], dev=True, timeout=60)
        token = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or token.count(".") != 2:
            gw.fail(f"`passerelle token --roles {role}` gave no JWT (exit {proc.returncode})", proc)
            return
        gw.tokens[role] = token
    cmd_doc("PASSERELLE_DEV_MODE=true passerelle token --sub bench --roles bench-reader --ttl 3600  "
            "(and bench-aggregator, bench-publisher)")


# ---------------------------------------------------------------- scenarios 1 + 2 (wrk)
def check_rows(body, kind):
    d = json.loads(body)
    rows = d["rows"] if kind == "ds" else d
    if not (isinstance(rows, list) and len(rows) == 100):
        raise ValueError(f"expected 100 rows, got {len(rows) if isinstance(rows, list) else type(rows).__name__}")
    if not all(isinstance(r, dict) and r.get("commune") == "Troyes" for r in rows):
        raise ValueError("a row is not an object with commune=Troyes")
    return [r.get("id") for r in rows]


def wrk_run(key, url, headers, conns, seconds, out_path, pids, script=None):
    cmd = ["/usr/bin/time", "-f", "%Uuser %Ssystem", "wrk", "-t2", f"-c{conns}", f"-d{seconds}s",
           "--latency", "--timeout", "30s"] + (["-s", script] if script else [])
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    s0 = snap(pids)
    proc = run(cmd, check=False, timeout=seconds + 60)
    s1 = snap(pids)
    open(out_path, "w").write(proc.stdout + proc.stderr)
    return s0, s1


def snap(pids):
    """CPU ticks of the server (and PostgreSQL) trees, like bench_util.snap."""
    kids, allp = bu._procs()
    out = {"_all": allp}
    for name, pid in pids.items():
        seen, stack = {}, [pid]
        while stack:
            p = stack.pop()
            t = bu._ticks(p)
            if t is not None:
                seen[str(p)] = t
            stack.extend(kids.get(p, []))
        out[name] = seen
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:9]]
    out["_stat"] = {"busy": sum(cpu) - cpu[3] - cpu[4], "total": sum(cpu)}
    return out


def scenarios_http(gws, floor, ds):
    pgp = pg_pid()
    ds_base = (f"http://127.0.0.1:{PORTS['ds']}/bench/consommations_energie.json"
               "?commune=Troyes&_size=100&_shape=objects&_nocount=1&_nosuggest=1")
    scen = [
        ("floor_static", "floor axum /static (pre-serialised 100 rows)",
         f"http://127.0.0.1:{PORTS['floor']}/static", floor, [], "floor", False),
        ("floor_records", "floor axum+sqlx+PostgreSQL /records",
         f"http://127.0.0.1:{PORTS['floor']}/records?commune=Troyes&limit=100", floor, [], "floor", True),
        ("ds_rows", "Datasette 0.65 rows only (_nocount=1&_nosuggest=1)", ds_base, ds, [], "ds", False),
    ]
    for gw in gws:
        if gw.error or gw.proc is None:
            continue
        base = f"http://127.0.0.1:{gw.port}/api/v1/data"
        scen.append((f"p_{gw.key}_open", f"Passerelle {gw.label}, open, anonymous",
                     f"{base}/conso-open?commune=eq.Troyes&limit=100", gw.proc, [], "p", gw.key == "pg"))
    for gw in gws:
        if gw.error or gw.proc is None:
            continue
        base = f"http://127.0.0.1:{gw.port}/api/v1/data"
        scen.append((f"p_{gw.key}_closed", f"Passerelle {gw.label}, closed, ES256 bearer + casbin + audit",
                     f"{base}/conso-closed?commune=eq.Troyes&limit=100", gw.proc,
                     [f"Authorization: Bearer {gw.tokens['bench-reader']}"], "p", gw.key == "pg"))

    # validate every URL before loading it
    live = []
    ref_ids = None
    for key, label, url, proc, headers, kind, uses_pg in scen:
        hdrs = dict(h.split(": ", 1) for h in headers)
        status, rh, body = http(url, hdrs)
        open(os.path.join(RAW, f"resp_{key}.json"), "wb").write(body)
        open(os.path.join(RAW, f"resp_{key}.headers"), "w").write(
            f"HTTP {status}\n" + "".join(f"{k}: {v}\n" for k, v in rh.items()))
        if status != 200:
            note(f"{key}: HTTP {status} for {url}: {body[:300].decode(errors='replace')}")
            R["failed"].append(key)
            continue
        try:
            ids = check_rows(body, "ds" if kind == "ds" else "array")
        except (ValueError, json.JSONDecodeError) as e:
            note(f"{key}: unexpected body ({e}): {body[:200].decode(errors='replace')}")
            R["failed"].append(key)
            continue
        if key == "floor_records":
            ref_ids = ids
        text = f"HTTP 200, {len(body):,} bytes, ids {ids[0]}..{ids[-1]}"
        if ref_ids is not None and ids != ref_ids:
            text += " (NOT the same 100 rows as the floor: different order or rows)"
        R["checks"][key] = text
        log(f"check {key}: {text}")
        live.append((key, label, url, proc, headers, kind, uses_pg, len(body)))
        if key.endswith("_closed"):  # closed really is closed
            status, _, _ = http(url)
            R["checks"][key] += f"; without token: HTTP {status}"
            if status not in (401, 404):
                note(f"{key}: the closed dataset answered HTTP {status} without a token")

    # Every scenario at BENCH_CONNS; the floor's records, the gateways' open and closed
    # reads again at 256 connections (tail latency and closed reads under heavy load);
    # and open reads with a distinct 100-row query per request (the page cache never
    # answers twice), against the floor's /records.
    lua = os.path.join(RAW, "distinct_pages.lua")
    open(lua, "w").write(DISTINCT_PAGES_LUA % max(1, ROWS - 50_000))
    runs = [(key, label, url, proc, headers, kind, uses_pg, nbytes, CONNS, None)
            for key, label, url, proc, headers, kind, uses_pg, nbytes in live]
    for key, label, url, proc, headers, kind, uses_pg, nbytes in live:
        if key == "floor_records" or (key.startswith("p_") and key.endswith(("_open", "_closed"))):
            runs.append((f"{key}_256", f"{label}, 256 connections", url, proc, headers, kind, uses_pg, nbytes,
                         256, None))
        if key.startswith("p_") and key.endswith("_open"):
            base = url.split("/api/")[0]
            runs.append((f"{key}_distinct", f"{label}, a distinct 100-row query per request (no cache)",
                         base + "/api/v1/data/conso-open?commune=eq.Troyes&limit=100&id=gte.<n>", proc, headers,
                         kind, uses_pg, nbytes, CONNS, lua))
    R["scen"] = [(k, l, u, c, b) for k, l, u, _, _, _, _, b, c, _ in runs]
    for key, *_ in runs:
        R["wrk"][key] = []
    log(f"warm-up 3 s per scenario, then {REPS} interleaved rounds of {DURATION} s x {len(runs)} scenarios")
    for key, label, url, proc, headers, kind, uses_pg, _, conns, script in runs:
        run(["wrk", "-t2", f"-c{conns}", "-d3s", "--timeout", "30s"] + (["-s", script] if script else [])
            + sum([["-H", h] for h in headers], []) + [url.split("?")[0] if script else url],
            check=False, timeout=60)
        bu.wait_idle(proc.pid, 30)
    for i in range(1, REPS + 1):
        for key, label, url, proc, headers, kind, uses_pg, _, conns, script in runs:
            pids = {"server": proc.pid}
            if uses_pg and pgp:
                pids["postgres"] = pgp
            out = os.path.join(RAW, f"wrk_{key}_{i}.txt")
            s0, s1 = wrk_run(key, url.split("?")[0] if script else url, headers, conns, DURATION, out, pids,
                             script=script)
            try:
                r = bu.parse_wrk(out)
            except (AttributeError, ValueError):
                r = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "requests": 0,
                     "non2xx": 0, "sockerr": 1, "wrk_cpu": float("nan")}
                note(f"{key} round {i}: wrk output unreadable: {tail(out, 5)}")
            n = r["requests"]
            r["srv_ms_req"] = 1000 * bu.cpu_delta(s0, s1, "server") / n if n else None
            r["db_ms_req"] = 1000 * bu.cpu_delta(s0, s1, "postgres") / n if n and "postgres" in pids else None
            tot = (s1["_stat"]["total"] - s0["_stat"]["total"])
            r["busy"] = (s1["_stat"]["busy"] - s0["_stat"]["busy"]) / tot if tot else None
            ours = set(s1.get("server", {})) | set(s1.get("postgres", {}))
            r["foreign_cpu_s"] = sum(
                max(0, t - s0["_all"].get(p, [c, t])[1]) for p, (c, t) in s1["_all"].items()
                if p not in ours and c not in ("wrk", "time")) / bu.HZ
            R["wrk"][key].append(r)
            log(f"round {i} {key}: {r['rps']:,.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                f"non-2xx {r['non2xx']}, socket errors {r['sockerr']}")
            if (r["non2xx"] or r["sockerr"]) and key not in R["failed"]:
                R["failed"].append(key)
                note(f"{key}: errors during load (non-2xx {r['non2xx']}, socket {r['sockerr']}): scenario failed")
            bu.wait_idle(proc.pid, 60)
    cmd_doc(f"wrk -t2 -c{CONNS} -d{DURATION}s --latency --timeout 30s [-H 'Authorization: Bearer $TOKEN'] URL")

DISTINCT_PAGES_LUA = """-- Every request the S1 read from a distinct starting id (100 rows of Troyes
-- from id n on), so the page cache never answers twice.
local counter = 0
local span = %d
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local id = ((offset + n * 104729) %% span) + 1
  return wrk.format("GET", "/api/v1/data/conso-open?commune=eq.Troyes&limit=100&id=gte." .. id)
end
"""


# ---------------------------------------------------------------- memory (page cache)
DISTINCT_LUA = """-- Every request a distinct point read, so the page cache never answers
-- twice and keeps filling: ids cycle over the whole dataset.
local counter = 0
local rows = %d
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local id = ((offset + n * 104729) %% rows) + 1
  return wrk.format("GET", "/api/v1/data/conso-open?id=eq." .. id)
end
"""


def scenario_memory(gws):
    """RSS of each gateway at the end of S1/S2, then after a run of distinct
    point reads that fills the page cache (budget: page_cache_bytes + 64 MiB)."""
    script = os.path.join(RAW, "distinct_reads.lua")
    open(script, "w").write(DISTINCT_LUA % ROWS)
    cache_mib = env_int("PASSERELLE_SERVER__PAGE_CACHE_BYTES", 64 * 1024 * 1024) / 1024 / 1024
    R["memory"] = {"page_cache_mib": cache_mib, "seconds": DURATION * REPS}
    for gw in gws:
        if gw.error or gw.proc is None:
            continue
        entry = {"rss_after_s1_kib": status_kib(gw.proc.pid, "VmRSS")}
        out = os.path.join(RAW, f"wrk_distinct_{gw.key}.txt")
        proc = run(["wrk", "-t2", f"-c{CONNS}", f"-d{DURATION * REPS}s", "--latency", "--timeout", "30s",
                    "-s", script, f"http://127.0.0.1:{gw.port}"], check=False, timeout=DURATION * REPS + 60)
        open(out, "w").write(proc.stdout + proc.stderr)
        try:
            r = bu.parse_wrk(out)
            entry.update(rps=r["rps"], requests=r["requests"], non2xx=r["non2xx"], p99=r["p99"])
        except (AttributeError, ValueError):
            note(f"distinct reads on {gw.key}: wrk output unreadable: {tail(out, 5)}")
        entry["rss_after_distinct_kib"] = status_kib(gw.proc.pid, "VmRSS")
        entry["vmhwm_kib"] = status_kib(gw.proc.pid, "VmHWM")
        R["memory"][gw.key] = entry
        log(f"memory {gw.key}: RSS {entry['rss_after_s1_kib'] / 1024:.1f} MiB after S1, "
            f"{entry['rss_after_distinct_kib'] / 1024:.1f} MiB after {entry.get('requests', 0):,} distinct reads "
            f"(VmHWM {entry['vmhwm_kib'] / 1024:.1f} MiB)")
    cmd_doc(f"wrk -t2 -c{CONNS} -d{DURATION * REPS}s -s distinct_reads.lua URL  (each request ?id=eq.<distinct id>); "
            "VmRSS and VmHWM from /proc/PID/status")


# ---------------------------------------------------------------- scenario 3 (aggregate)
AGG_SQL = "SELECT commune, sum(conso_kwh), count(*) FROM consommations_energie GROUP BY commune"


def scenario_aggregate(gws):
    log("S3 aggregate: psql and sqlite3 timings, then Passerelle")
    script = "\\timing on\n" + (AGG_SQL + ";\n") * (AGG_RUNS + 1)
    out = run(["psql", f"{PG_BASE}/{PEER_DB}", "-qtA"], input=script).stdout
    ms = [float(x) for x in re.findall(r"Time: ([\d.]+) ms", out)][1:]
    ref = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            ref[parts[0]] = (float(parts[1]), int(parts[2]))
    R["agg"]["psql"] = {"label": "psql GROUP BY commune (\\timing: query round trip on an open connection)", "times": [m / 1000 for m in ms],
                        "groups": len(ref)}
    script = ".timer on\n" + (AGG_SQL + ";\n") * (AGG_RUNS + 1)
    out = run(["sqlite3", SQLITE_DB], input=script).stdout
    secs = [float(x) for x in re.findall(r"Run Time: real ([\d.]+)", out)][1:]
    R["agg"]["sqlite3"] = {"label": "sqlite3 GROUP BY commune (.timer real, in process)", "times": secs}
    cmd_doc(f"psql: \\timing on; {AGG_SQL}  ({AGG_RUNS} runs after 1 warm-up); same in sqlite3 with .timer on")
    for gw in gws:
        if gw.error or gw.proc is None:
            continue
        url = (f"http://127.0.0.1:{gw.port}/api/v1/data/conso-closed"
               "?select=commune,conso_kwh.sum(),count()")
        hdr = {"Authorization": f"Bearer {gw.tokens['bench-aggregator']}"}
        entry = {"label": f"Passerelle {gw.label}, aggregate-only grant (view agregats, min group 11), "
                          "each run a distinct `limit` so the page cache never answers",
                 "times": [], "url": url}
        R["agg"][f"p_{gw.key}"] = entry
        # raw rows must be refused for this grant
        status, _, body = http(url.split("?")[0] + "?limit=1", hdr)
        entry["raw_rows_status"] = status
        if status != 403:
            note(f"S3 {gw.label}: raw rows with the aggregate-only grant answered HTTP {status} (403 expected)")
        for i in range(AGG_RUNS + 1):
            t = time.perf_counter()
            # A distinct limit (larger than the group count) per run: the same
            # groups, but a new cache key, so the GROUP BY really runs.
            status, rh, body = http(f"{url}&limit={100000 + i}", hdr, timeout=300)
            dt = time.perf_counter() - t
            if status != 200:
                entry["error"] = f"HTTP {status}: {body[:300].decode(errors='replace')}"
                note(f"S3 {gw.label}: {entry['error']}")
                R["failed"].append(f"agg_{gw.key}")
                break
            if i:
                entry["times"].append(dt)
        else:
            rows = json.loads(body)
            entry["groups"] = len(rows)
            entry["suppressed"] = rh.get("x-suppressed-groups")
            bad = 0
            for row in rows:
                want = ref.get(row.get("commune"))
                if not want or row.get("count") != want[1] or abs(float(row.get("sum") or 0) - want[0]) > 1e-6 * abs(want[0]) + 0.01:
                    bad += 1
            entry["mismatches"] = bad
            if bad:
                note(f"S3 {gw.label}: {bad} groups differ from psql's GROUP BY")
    cmd_doc("curl -H 'Authorization: Bearer $AGG_TOKEN' '/api/v1/data/conso-closed?select=commune,conso_kwh.sum(),count()'  (sequential, 1 warm-up)")


# ---------------------------------------------------------------- scenario 4 (export)
class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            time.sleep(0.05)


def status_kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


FEATURE = b'{"type":"Feature",'


def curl_export(url, headers, max_time=300, count=b"\n"):
    """Downloads an export; `lines` counts `count` in the body (line ends, or
    FEATURE for a GeoJSON collection, which is not one feature a line)."""
    path = os.path.join(WORK, "export.csv")
    cmd = ["curl", "-sS", "--max-time", str(max_time), "-o", path, "-w",
           "%{http_code} %{size_download} %{time_total}"]
    for h in headers:
        cmd += ["-H", h]
    proc = run(cmd + [url], check=False, timeout=max_time + 30)
    parts = proc.stdout.split()
    code, size, secs = (int(parts[0]), int(parts[1]), float(parts[2])) if len(parts) == 3 else (0, 0, 0.0)
    lines = 0
    if os.path.exists(path):
        with open(path, "rb") as f:
            carry = b""
            while chunk := f.read(1 << 20):
                chunk = carry + chunk
                lines += chunk.count(count)
                # A pattern cut by the chunk border is counted with the next chunk.
                carry = chunk[-(len(count) - 1):] if len(count) > 1 else b""
        os.remove(path)
    return code, size, secs, lines, proc.stderr.strip()


def scenario_export(gws, ds):
    log("S4 export: psql \\copy to stdout, sqlite3 -csv")
    times = [timed(f"psql {PG_BASE}/{PEER_DB} -c '\\copy consommations_energie to stdout csv header' > /dev/null")
             for _ in range(REPS + 1)][1:]
    R["export"]["psql"] = {"label": "psql \\copy ... to stdout csv header", "times": times, "rows": ROWS}
    times = [timed(f"sqlite3 -csv -header {SQLITE_DB} 'select * from consommations_energie' > /dev/null")
             for _ in range(REPS + 1)][1:]
    R["export"]["sqlite3"] = {"label": "sqlite3 -csv -header select *", "times": times, "rows": ROWS}
    cmd_doc("psql $PG/bench -c '\\copy consommations_energie to stdout csv header' > /dev/null ; "
            "sqlite3 -csv -header work/bench.db 'select * from consommations_energie' > /dev/null  (1 warm-up)")

    for gw in gws:
        if gw.error:
            continue
        name = f"passerelle_{gw.key}_export"
        proc = gw.serve(port=PORTS["export"], name=name)
        if proc is None:
            R["failed"].append(f"export_{gw.key}")
            continue
        entry = {"label": f"Passerelle {gw.label}, closed, bearer token, audited, ?format=csv",
                 "times": [], "rows": ROWS}
        R["export"][f"p_{gw.key}"] = entry
        entry["rss_start_kib"] = status_kib(proc.pid, "VmRSS")
        sampler = RssSampler(proc.pid)
        sampler.start()
        url = f"http://127.0.0.1:{PORTS['export']}/api/v1/data/conso-closed?format=csv"
        for i in range(REPS):
            code, size, secs, lines, err = curl_export(url, [f"Authorization: Bearer {gw.tokens['bench-reader']}"])
            log(f"export {gw.label} run {i + 1}: HTTP {code}, {size:,} bytes, {lines - 1:,} rows, {secs:.2f} s")
            if code != 200 or lines - 1 != ROWS:
                entry["error"] = f"HTTP {code}, {lines - 1} data rows, {size} bytes {err}"
                note(f"S4 {gw.label}: export incomplete: {entry['error']}")
                R["failed"].append(f"export_{gw.key}")
                break
            entry["times"].append(secs)
            entry["bytes"] = size
        sampler.running = False
        sampler.join()
        entry["rss_peak_sampled_kib"] = sampler.peak
        entry["vmhwm_kib"] = status_kib(proc.pid, "VmHWM")
        # The same rows as NDJSON and GeoJSON (lat/lon columns make the points).
        for fmt_key, count in (("ndjson", b"\n"), ("geojson", FEATURE)):
            fentry = {"label": f"Passerelle {gw.label}, closed, bearer token, audited, ?format={fmt_key}",
                      "times": [], "rows": ROWS}
            R["export"][f"p_{gw.key}_{fmt_key}"] = fentry
            furl = f"http://127.0.0.1:{PORTS['export']}/api/v1/data/conso-closed?format={fmt_key}"
            for i in range(REPS):
                code, size, secs, found, err = curl_export(
                    furl, [f"Authorization: Bearer {gw.tokens['bench-reader']}"], count=count)
                log(f"export {gw.label} {fmt_key} run {i + 1}: HTTP {code}, {size:,} bytes, {found:,} records, "
                    f"{secs:.2f} s")
                if code != 200 or found != ROWS:
                    fentry["error"] = f"HTTP {code}, {found} records, {size} bytes {err}"
                    note(f"S4 {gw.label} {fmt_key}: export incomplete: {fentry['error']}")
                    R["failed"].append(f"export_{gw.key}_{fmt_key}")
                    break
                fentry["times"].append(secs)
                fentry["bytes"] = size
        stop(proc)
    cmd_doc("curl -H 'Authorization: Bearer $TOKEN' '/api/v1/data/conso-closed?format=csv' -o file  "
            "(a fresh gateway process per store; VmRSS sampled every 50 ms, VmHWM at the end); "
            "then ?format=ndjson and ?format=geojson (records counted: lines, features)")

    if ds is not None:
        url = f"http://127.0.0.1:{PORTS['ds']}/bench/consommations_energie.csv?_stream=on&_size=max"
        entry = {"label": "Datasette .csv?_stream=on&_size=max", "times": [], "rows": ROWS}
        R["export"]["datasette"] = entry
        for i in range(DS_EXPORT_RUNS):
            code, size, secs, lines, err = curl_export(url, [], max_time=180)
            log(f"datasette csv run {i + 1}: HTTP {code}, {lines - 1:,} rows, {secs:.2f} s")
            if code != 200 or lines - 1 != ROWS:
                entry["error"] = f"HTTP {code}, {lines - 1} rows {err}"
                note(f"S4 Datasette export incomplete: {entry['error']}")
                break
            entry["times"].append(secs)
        cmd_doc("curl 'http://127.0.0.1:18001/bench/consommations_energie.csv?_stream=on&_size=max' -o file")


# ---------------------------------------------------------------- scenario 4c (compressed export)
ENCODINGS = ("identity", "gzip", "zstd")
DECODERS = {"identity": ["cat"], "gzip": ["gzip", "-dc"], "zstd": ["zstd", "-dcq"]}


def curl_raw(url, headers, path, max_time=300):
    """Downloads without decoding: size_download is the bytes on the wire."""
    head = path + ".headers"
    cmd = ["curl", "-sS", "--max-time", str(max_time), "-o", path, "-D", head, "-w",
           "%{http_code} %{size_download} %{time_total}"]
    for h in headers:
        cmd += ["-H", h]
    proc = run(cmd + [url], check=False, timeout=max_time + 30)
    parts = proc.stdout.split()
    code, size, secs = (int(parts[0]), int(parts[1]), float(parts[2])) if len(parts) == 3 else (0, 0, 0.0)
    coding = ""
    if os.path.exists(head):
        for line in open(head, errors="replace"):
            if line.lower().startswith("content-encoding:"):
                coding = line.split(":", 1)[1].strip()
        os.remove(head)
    return code, size, secs, coding, proc.stderr.strip()


def decoded_lines(path, encoding):
    """Lines and bytes of the decoded file, streamed through gzip/zstd."""
    lines = size = 0
    with open(path, "rb") as f:
        dec = subprocess.Popen(DECODERS[encoding], stdin=f, stdout=subprocess.PIPE)
        while chunk := dec.stdout.read(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
        dec.wait()
    return lines, size


def scenario_export_compressed(gws):
    """S4c: the S4 export with Accept-Encoding gzip and zstd next to the
    uncompressed one, a fresh gateway process per store and encoding (so
    VmHWM is that export's peak); the client stores the compressed bytes."""
    log("S4c compressed export: identity, gzip, zstd")
    R.setdefault("export_compressed", {})
    for gw in gws:
        if gw.error:
            continue
        for enc in ENCODINGS:
            name = f"passerelle_{gw.key}_export_{enc}"
            proc = gw.serve(port=PORTS["export"], name=name)
            if proc is None:
                R["failed"].append(f"export_{enc}_{gw.key}")
                continue
            entry = {"label": f"Passerelle {gw.label}, ?format=csv, Accept-Encoding: {enc}",
                     "store": gw.key, "encoding": enc, "times": [], "rows": ROWS}
            R["export_compressed"][f"{gw.key}_{enc}"] = entry
            entry["rss_start_kib"] = status_kib(proc.pid, "VmRSS")
            sampler = RssSampler(proc.pid)
            sampler.start()
            url = f"http://127.0.0.1:{PORTS['export']}/api/v1/data/conso-closed?format=csv"
            path = os.path.join(WORK, f"export.csv.{enc}")
            for i in range(REPS):
                code, size, secs, coding, err = curl_raw(
                    url, [f"Authorization: Bearer {gw.tokens['bench-reader']}", f"Accept-Encoding: {enc}"], path)
                lines, plain = decoded_lines(path, enc) if os.path.exists(path) else (0, 0)
                if os.path.exists(path):
                    os.remove(path)
                log(f"export {gw.label} {enc} run {i + 1}: HTTP {code}, {size:,} bytes on the wire "
                    f"({plain:,} decoded, Content-Encoding {coding or 'none'}), {lines - 1:,} rows, {secs:.2f} s")
                expected = "" if enc == "identity" else enc
                if code != 200 or lines - 1 != ROWS or coding != expected:
                    entry["error"] = f"HTTP {code}, {lines - 1} data rows, Content-Encoding {coding!r} {err}"
                    note(f"S4c {gw.label} {enc}: {entry['error']}")
                    R["failed"].append(f"export_{enc}_{gw.key}")
                    break
                entry["times"].append(secs)
                entry["wire_bytes"], entry["plain_bytes"] = size, plain
            sampler.running = False
            sampler.join()
            entry["rss_peak_sampled_kib"] = sampler.peak
            entry["vmhwm_kib"] = status_kib(proc.pid, "VmHWM")
            stop(proc)
    cmd_doc("curl -H 'Authorization: Bearer $TOKEN' -H 'Accept-Encoding: gzip|zstd' "
            "'/api/v1/data/conso-closed?format=csv' -o file  (not decoded by curl; rows counted "
            "through gzip -dc / zstd -dc; a fresh gateway process per store and encoding)")


# ---------------------------------------------------------------- S1e (the edge on and off)
def scenario_edge(gws):
    """S1e: S1 and S2 on one store with the edge on (compression negotiated,
    rate limiting on with limits set high) and off (both disabled), two
    gateway processes on the same database, rounds interleaved; every
    request asks for `Accept-Encoding: gzip` as a browser does."""
    R.setdefault("edge", {})
    for gw in gws:
        if gw.error:
            continue
        log(f"S1e edge on/off ({gw.label})")
        on = gw.serve(name=f"passerelle_{gw.key}_edge_on")
        off = gw.serve(port=PORTS["edge_off"], name=f"passerelle_{gw.key}_edge_off", extra=EDGE_OFF)
        if on is None or off is None:
            R["failed"].append(f"edge_{gw.key}")
            stop(on)
            stop(off)
            continue
        auth = [f"Authorization: Bearer {gw.tokens['bench-reader']}"]
        path = "?commune=eq.Troyes&limit=100"
        runs = []
        for dataset, headers in (("conso-open", []), ("conso-closed", auth)):
            for state, proc, port in (("on", on, gw.port), ("off", off, PORTS["edge_off"])):
                url = f"http://127.0.0.1:{port}/api/v1/data/{dataset}{path}"
                hdrs = dict(h.split(": ", 1) for h in headers + ["Accept-Encoding: gzip"])
                status, rh, _ = http(url, hdrs)
                coding = rh.get("Content-Encoding") or rh.get("content-encoding") or ""
                want = "gzip" if state == "on" else ""
                if status != 200 or coding != want:
                    note(f"S1e {gw.label} {dataset} edge {state}: HTTP {status}, Content-Encoding {coding!r}")
                    R["failed"].append(f"edge_{gw.key}")
                    continue
                runs.append((f"{gw.key}_{dataset}_{state}", url, proc, headers + ["Accept-Encoding: gzip"]))
        for key, url, proc, headers in runs:
            R["edge"][key] = []
            run(["wrk", "-t2", f"-c{CONNS}", "-d3s", "--timeout", "30s"]
                + sum([["-H", h] for h in headers], []) + [url], check=False, timeout=60)
        for i in range(1, REPS + 1):
            for key, url, proc, headers in runs:
                out = os.path.join(RAW, f"wrk_edge_{key}_{i}.txt")
                wrk_run(key, url, headers, CONNS, DURATION, out, {"server": proc.pid})
                try:
                    r = bu.parse_wrk(out)
                except (AttributeError, ValueError):
                    note(f"S1e {key} round {i}: wrk output unreadable")
                    continue
                R["edge"][key].append(r)
                log(f"S1e round {i} {key}: {r['rps']:,.0f} req/s, p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']}")
                if r["non2xx"] or r["sockerr"]:
                    note(f"S1e {key}: errors under load (non-2xx {r['non2xx']}, socket {r['sockerr']})")
                    R["failed"].append(f"edge_{gw.key}")
                bu.wait_idle(proc.pid, 60)
        stop(on)
        stop(off)
    cmd_doc("S1e: the S1/S2 URLs with -H 'Accept-Encoding: gzip' on two gateway processes of one store: "
            "edge on (defaults, anonymous limit 1e8 req/s) and edge off "
            "(PASSERELLE_SERVER__COMPRESSION__ENABLED=false PASSERELLE_LIMITS__ENABLED=false), rounds interleaved")


# ---------------------------------------------------------------- S7 (the catalogue page)
def scenario_catalogue_page(gws):
    """S7: server time of the catalogue page `GET /datasets` (anonymous, as a
    visitor opens it) with the 653-entry demo register imported on top of
    the bench datasets (`passerelle register import catalog/register-demo.csv`),
    p99 from wrk --latency. Budget: p99 < 50 ms."""
    R.setdefault("catalogue_page", {})
    register = os.path.join(ROOT, "catalog", "register-demo.csv")
    for gw in gws:
        if gw.error:
            continue
        log(f"S7 catalogue page ({gw.label})")
        proc = gw.cli(["register", "import", register], timeout=600)
        open(os.path.join(RAW, f"register_import_{gw.key}.txt"), "w").write(proc.stdout + proc.stderr)
        m = re.search(r"register: (\d+) created, (\d+) updated, (\d+) unchanged", proc.stdout + proc.stderr)
        if proc.returncode != 0 or not m or sum(int(g) for g in m.groups()) != 653:
            note(f"S7 {gw.label}: `passerelle register import` did not take 653 entries "
                 f"(exit {proc.returncode}): {(proc.stdout + proc.stderr)[-400:].strip()}")
            R["failed"].append(f"catalogue_page_{gw.key}")
            continue
        server = gw.serve(name=f"passerelle_{gw.key}_catalogue_page")
        if server is None:
            R["failed"].append(f"catalogue_page_{gw.key}")
            continue
        url = f"http://127.0.0.1:{gw.port}/datasets"
        status, rh, body = http(url, {"Accept-Language": "fr"})
        kind = rh.get("Content-Type") or rh.get("content-type") or ""
        if status != 200 or not kind.startswith("text/html"):
            note(f"S7 {gw.label}: GET /datasets answered HTTP {status} ({kind!r})")
            R["failed"].append(f"catalogue_page_{gw.key}")
            stop(server)
            continue
        key = f"{gw.key}_datasets"
        R["catalogue_page"][key] = []
        headers = ["Accept-Language: fr"]
        run(["wrk", "-t2", f"-c{CONNS}", "-d3s", "--timeout", "30s"]
            + sum([["-H", h] for h in headers], []) + [url], check=False, timeout=60)
        for i in range(1, REPS + 1):
            out = os.path.join(RAW, f"wrk_catalogue_page_{key}_{i}.txt")
            wrk_run(key, url, headers, CONNS, DURATION, out, {"server": server.pid})
            try:
                r = bu.parse_wrk(out)
            except (AttributeError, ValueError):
                note(f"S7 {key} round {i}: wrk output unreadable")
                continue
            R["catalogue_page"][key].append(r)
            log(f"S7 round {i} {key}: {r['rps']:,.0f} req/s, p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']}")
            if r["non2xx"] or r["sockerr"]:
                note(f"S7 {key}: errors under load (non-2xx {r['non2xx']}, socket {r['sockerr']})")
                R["failed"].append(f"catalogue_page_{gw.key}")
            bu.wait_idle(server.pid, 60)
        stop(server)
    cmd_doc("S7: passerelle register import catalog/register-demo.csv (653 entries); then "
            f"wrk -t2 -c{CONNS} -d{DURATION}s --latency --timeout 30s -H 'Accept-Language: fr' /datasets  (anonymous)")

# ---------------------------------------------------------------- S8 (two instances behind nginx)
NGINX_CONF = """daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream passerelle {{
{servers}        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://passerelle;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def start_nginx(name, port, upstream_ports):
    """nginx (the distribution's) on `port` in front of the gateways on `upstream_ports`,
    configured as deploy/nginx/passerelle.conf (keepalive, no buffering), one worker."""
    root = os.path.join(WORK, name)
    os.makedirs(root, exist_ok=True)
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in upstream_ports)
    conf = os.path.join(root, "nginx.conf")
    open(conf, "w").write(NGINX_CONF.format(root=root, servers=servers, port=port))
    proc = start(name, [NGINX, "-p", root, "-c", conf, "-e", os.path.join(root, "error.log")])
    if not wait_http(f"http://127.0.0.1:{port}/health/live", proc, 30):
        note(f"S8: nginx {name} did not answer: {tail(os.path.join(root, 'error.log'))}")
        stop(proc)
        return None
    return proc


def scenario_instances(gws):
    """S8: the PostgreSQL store served by one gateway and by two gateway
    processes of the same database, each behind the same nginx (one worker,
    keepalive), rounds interleaved: open read (page cache), open distinct
    point reads (no cache), closed read (ES256 + casbin + durable audit, one
    hash chain written by both instances). After the load, `passerelle audit
    verify` must pass over both instances' events."""
    R.setdefault("instances", {})
    pg = [g for g in gws if g.key == "pg" and not g.error]
    if not pg:
        return
    gw = pg[0]
    if not os.path.exists(NGINX):
        note(f"S8: nginx not found ({NGINX}); apt-get install nginx")
        R["failed"].append("instances")
        return
    log("S8 one instance and two instances behind nginx (PostgreSQL store)")
    first = gw.serve(name="passerelle_pg_first")
    second = gw.serve(port=PORTS["second"], name="passerelle_pg_second")
    one = start_nginx("nginx_one", PORTS["lb_one"], [gw.port])
    two = start_nginx("nginx_two", PORTS["lb_two"], [gw.port, PORTS["second"]])
    procs = [first, second, one, two]
    if any(p is None for p in procs):
        R["failed"].append("instances")
        for p in procs:
            stop(p)
        return
    script = os.path.join(RAW, "distinct_reads.lua")
    open(script, "w").write(DISTINCT_LUA % ROWS)
    auth = [f"Authorization: Bearer {gw.tokens['bench-reader']}"]
    path = "?commune=eq.Troyes&limit=100"
    kinds = [("open", "/api/v1/data/conso-open" + path, [], None),
             ("open_distinct", "", [], script),
             ("closed", "/api/v1/data/conso-closed" + path, auth, None)]
    runs = []
    for kind, url_path, headers, lua in kinds:
        for count, port in (("one", PORTS["lb_one"]), ("two", PORTS["lb_two"])):
            base = f"http://127.0.0.1:{port}"
            if not lua:
                status, _, body = http(base + url_path, dict(h.split(": ", 1) for h in headers))
                if status != 200:
                    note(f"S8 {kind} {count}: HTTP {status}: {body[:200]!r}")
                    R["failed"].append("instances")
                    continue
            runs.append((f"{kind}_{count}", base + url_path, headers, lua))
    pids = {"first": first.pid, "second": second.pid}
    for key, url, headers, lua in runs:
        R["instances"][key] = []
        extra = ["-s", lua] if lua else []
        run(["wrk", "-t2", f"-c{CONNS}", "-d3s", "--timeout", "30s"] + extra
            + sum([["-H", h] for h in headers], []) + [url], check=False, timeout=60)
    for i in range(1, REPS + 1):
        for key, url, headers, lua in runs:
            out = os.path.join(RAW, f"wrk_instances_{key}_{i}.txt")
            cmd = ["wrk", "-t2", f"-c{CONNS}", f"-d{DURATION}s", "--latency", "--timeout", "30s"]
            cmd += ["-s", lua] if lua else []
            cmd += sum([["-H", h] for h in headers], []) + [url]
            s0 = snap(pids)
            proc = run(cmd, check=False, timeout=DURATION + 60)
            s1 = snap(pids)
            open(out, "w").write(proc.stdout + proc.stderr)
            try:
                r = bu.parse_wrk(out)
            except (AttributeError, ValueError):
                note(f"S8 {key} round {i}: wrk output unreadable")
                continue
            r["cpu_s"] = {name: bu.cpu_delta(s0, s1, name) for name in pids}
            R["instances"][key].append(r)
            log(f"S8 round {i} {key}: {r['rps']:,.0f} req/s, p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']}, "
                f"CPU s first {r['cpu_s']['first']:.1f} second {r['cpu_s']['second']:.1f}")
            if r["non2xx"] or r["sockerr"]:
                note(f"S8 {key}: errors under load (non-2xx {r['non2xx']}, socket {r['sockerr']})")
                R["failed"].append("instances")
            bu.wait_idle(first.pid, 60)
    for p in procs:
        stop(p)
    proc = gw.cli(["audit", "verify"], timeout=900)
    open(os.path.join(RAW, "instances_audit_verify.txt"), "w").write(proc.stdout + proc.stderr)
    R["instances_verify"] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    if proc.returncode != 0:
        R["failed"].append("instances")
    cmd_doc("S8: two `passerelle serve` on the same PostgreSQL database; nginx (worker_processes 1, keepalive 64, "
            "proxy_buffering off) in front of the first only, and in front of both; the S1/S2 URLs and the "
            "distinct point reads through each nginx, rounds interleaved; then `passerelle audit verify`")


# ---------------------------------------------------------------- scenario 5u (upload over HTTP)
UPLOAD_BIG_ROWS = env_int("BENCH_UPLOAD_BIG_ROWS", 0)  # 0: no large-file RSS run


def curl_upload(url, token, path, max_time=1800):
    """PUT of a file as text/csv (curl -T: Content-Length, read from disk as it is sent).
    -> (status, answer dict or None, seconds, bytes sent, error text)."""
    out = os.path.join(WORK, "upload_answer.json")
    cmd = ["curl", "-sS", "--max-time", str(max_time), "-T", path, "-H", "Content-Type: text/csv",
           "-H", "Expect:", "-H", f"Authorization: Bearer {token}", "-o", out, "-w",
           "%{http_code} %{size_upload} %{time_total}", url]
    proc = run(cmd, check=False, timeout=max_time + 30)
    parts = proc.stdout.split()
    code, sent, secs = (int(parts[0]), int(float(parts[1])), float(parts[2])) if len(parts) == 3 else (0, 0, 0.0)
    answer, text = None, ""
    if os.path.exists(out):
        text = open(out, errors="replace").read()
        os.remove(out)
        try:
            answer = json.loads(text)
        except ValueError:
            pass
    return code, answer, secs, sent, (proc.stderr.strip() + " " + text[:400]).strip()


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def current_version_rows(gw, port, token):
    """The current version (number, rows...) from GET /datasets/conso-closed/versions, or (None, why)."""
    status, _, body = http(f"http://127.0.0.1:{port}/api/v1/datasets/conso-closed/versions",
                           {"Authorization": f"Bearer {token}"})
    if status != 200:
        return None, f"versions: HTTP {status} {body[:200].decode(errors='replace')}"
    data = json.loads(body)
    for v in data.get("versions") or []:
        if v.get("status") == "current":
            return v, None
    return None, f"versions: no current version in {body[:300].decode(errors='replace')}"


def upload_runs(gw, entry, path, rows, runs):
    """`runs` uploads of `path` to a fresh gateway process (VmRSS sampled every 50 ms,
    VmHWM at the end); each answer checked (HTTP 200, rows, bytes) and the current
    version's row count read back."""
    port = PORTS["upload"]
    proc = gw.serve(port=port, name=f"passerelle_{gw.key}_upload_{entry['file_rows']}")
    if proc is None:
        entry["error"] = gw.error
        R["failed"].append(f"upload_{gw.key}")
        return
    entry["rss_start_kib"] = status_kib(proc.pid, "VmRSS")
    sampler = RssSampler(proc.pid)
    sampler.start()
    url = f"http://127.0.0.1:{port}/api/v1/datasets/conso-closed/data?file_name={os.path.basename(path)}"
    size = os.path.getsize(path)
    token = gw.tokens["bench-publisher"]
    for i in range(runs):
        code, answer, secs, sent, err = curl_upload(url, token, path)
        log(f"upload {gw.label} {rows:,} rows run {i + 1}: HTTP {code}, {sent:,} bytes sent, {secs:.2f} s, "
            f"answer {json.dumps(answer)[:200] if answer else err[:300]}")
        problem = None
        if code != 200 or not isinstance(answer, dict):
            problem = f"HTTP {code}: {err[:400]}"
        elif answer.get("rows") != rows or answer.get("bytes") != size or answer.get("dry_run"):
            problem = f"answer rows {answer.get('rows')} bytes {answer.get('bytes')} (file: {rows} rows, {size} bytes)"
        else:
            current, why = current_version_rows(gw, port, token)
            if current is None:
                problem = why
            elif current.get("number") != answer.get("version") or current.get("rows") != rows:
                problem = f"current version {current} is not the upload's ({answer.get('version')}, {rows} rows)"
            else:
                entry.setdefault("versions", []).append(answer.get("version"))
        if problem:
            entry["error"] = problem
            note(f"S5u {gw.label}: upload of {rows:,} rows failed: {problem}")
            R["failed"].append(f"upload_{gw.key}")
            break
        entry["times"].append(secs)
    sampler.running = False
    sampler.join()
    entry["rss_peak_sampled_kib"] = sampler.peak
    entry["vmhwm_kib"] = status_kib(proc.pid, "VmHWM")
    stop(proc)
    log(f"upload {gw.label}: peak RSS sampled {sampler.peak / 1024:.1f} MiB, VmHWM {entry['vmhwm_kib'] / 1024:.1f} MiB")


def scenario_upload(gws):
    """S5u: `PUT /api/v1/datasets/conso-closed/data` of the 1M-row CSV (role bench-publisher:
    `publish` on it), a fresh gateway process per store, next to S5 (passerelle import,
    psql \\copy FROM, sqlite3 .import) measured in the same run; peak RSS of the process.
    With BENCH_UPLOAD_BIG_ROWS=N, one more upload per store of an N-row file
    (work/consommations_big.csv, generated once) for the RSS of a large upload."""
    log("S5u upload: PUT /api/v1/datasets/conso-closed/data")
    R.setdefault("upload", {})
    file_rows = count_lines(CSV) - 1
    assert file_rows == ROWS, f"{CSV} holds {file_rows} rows, expected {ROWS}"
    for gw in gws:
        if gw.error:
            continue
        entry = {"label": f"PUT /datasets/conso-closed/data ({gw.label}, text/csv, curl -T, new version)",
                 "times": [], "file_rows": ROWS, "bytes": os.path.getsize(CSV)}
        R["upload"][f"p_{gw.key}"] = entry
        upload_runs(gw, entry, CSV, ROWS, REPS)
    cmd_doc("curl -T work/consommations.csv -H 'Content-Type: text/csv' -H 'Authorization: Bearer $PUBLISHER' "
            "-X PUT '/api/v1/datasets/conso-closed/data'  (a fresh gateway process per store; answer checked: "
            "HTTP 200, rows, bytes, then GET /versions: the current version is the upload's with its rows; "
            "curl time_total; VmRSS sampled every 50 ms, VmHWM at the end)")
    if UPLOAD_BIG_ROWS:
        big = os.path.join(WORK, "consommations_big.csv")
        marker = big + ".rows"
        if not os.path.exists(big) or (open(marker).read() if os.path.exists(marker) else "") != str(UPLOAD_BIG_ROWS):
            log(f"generating {UPLOAD_BIG_ROWS:,} rows -> {big}")
            run(["python3", os.path.join(BENCH, "gen_dataset.py"), big + ".tmp", str(UPLOAD_BIG_ROWS)], timeout=3600)
            os.replace(big + ".tmp", big)
            open(marker, "w").write(str(UPLOAD_BIG_ROWS))
        for gw in gws:
            if gw.error:
                continue
            entry = {"label": f"PUT of {UPLOAD_BIG_ROWS:,} rows ({os.path.getsize(big) / 1e9:.2f} GB, {gw.label})",
                     "times": [], "file_rows": UPLOAD_BIG_ROWS, "bytes": os.path.getsize(big)}
            R["upload"][f"big_{gw.key}"] = entry
            upload_runs(gw, entry, big, UPLOAD_BIG_ROWS, 1)


def only(scenario):
    """BENCH_ONLY=export_compressed|edge|catalogue_page|instances|export_import|upload: that scenario alone
    (BENCH_STORES=sq,pg picks the stores), printed instead of rewriting RESULTS.md.
    export_import: S5 then S4 (CSV, and NDJSON when BENCH_EXPORT_FORMATS names it), each
    against its references (psql, sqlite3) measured in the same run.
    upload: S5 (the references and `passerelle import`) then S5u (the same file over HTTP);
    the references need only an empty database (BENCH_PEER_DB), not the loaded peers."""
    os.makedirs(RAW, exist_ok=True)
    peers = scenario in ("export_import", "upload")
    prepare_data(peers=scenario == "export_import")
    problem = check_binary()
    if problem:
        sys.exit(problem)
    stores = os.environ.get("BENCH_STORES", "sq,pg").split(",")
    gws = [gw for gw in gateways() if gw.key in stores]
    if peers:
        # The import resets each store and loads conso-closed; the sync and tokens follow.
        scenario_import(gws)
    else:
        for gw in gws:
            gw.reset()
    for gw in gws:
        setup_gateway(gw)
    import report
    if scenario == "export_import":
        scenario_export(gws, None)
        lines = report.export_import_lines(R)
    elif scenario == "upload":
        scenario_upload(gws)
        lines = report.upload_lines(R)
    elif scenario == "edge":
        scenario_edge(gws)
        lines = report.edge_lines(R)
    elif scenario == "catalogue_page":
        scenario_catalogue_page(gws)
        lines = report.catalogue_page_lines(R)
    elif scenario == "instances":
        scenario_instances(gws)
        lines = report.instances_lines(R)
    else:
        scenario_export_compressed(gws)
        lines = report.export_compressed_lines(R)
    json.dump(R, open(os.path.join(RAW, f"results_{scenario}.json"), "w"), indent=1, default=str)
    print("\n".join(lines))
    return 1 if R["failed"] or any(gw.error for gw in gws) else 0


# ---------------------------------------------------------------- scenario 6 (audit writer)
def scenario_audit(gws):
    """S6: the audit writer alone, durable events/s on PostgreSQL, at
    BENCH_AUDIT_CONCURRENCY recorders (R["audit"]) and at 256 (R["audit_256"])."""
    pg = [g for g in gws if g.key == "pg"][0]
    for concurrency, slot in ((AUDIT_CONCURRENCY, "audit"), (256, "audit_256")):
        if slot == "audit_256" and AUDIT_CONCURRENCY == 256:
            continue
        entry = {"events": AUDIT_EVENTS, "concurrency": concurrency}
        R[slot] = entry
        if R.get("binary_problem"):
            entry["status"] = "not measured (no usable gateway binary, see the problems above)"
            return
        log(f"S6 passerelle bench-audit --events {AUDIT_EVENTS} --concurrency {concurrency} (PostgreSQL)")
        try:
            proc = pg.cli(["bench-audit", "--events", str(AUDIT_EVENTS), "--concurrency", str(concurrency)],
                          timeout=300)
        except subprocess.TimeoutExpired:
            entry["status"] = "failed: timed out after 300 s"
            R["failed"].append(slot)
            continue
        text = proc.stdout + proc.stderr
        open(os.path.join(RAW, f"bench_{slot}.txt"), "w").write(text)
        m = re.search(r"events_per_second=([\d.eE+]+)", proc.stdout)
        if m and proc.returncode == 0:
            entry["events_per_second"] = float(m.group(1))
            entry["status"] = "ok"
        elif proc.returncode == 2 or "unrecognized subcommand" in text or "unexpected argument" in text:
            entry["status"] = "not available (the binary has no `bench-audit` subcommand)"
        else:
            entry["status"] = f"failed (exit {proc.returncode}): {text[-300:].strip()}"
            R["failed"].append(slot)
        log(f"S6 ({concurrency} recorders): {entry['status']}"
            + (f", {entry.get('events_per_second'):,.0f} ev/s" if m else ""))
    cmd_doc(f"DATABASE_URL=$PG/{GW_DB} passerelle bench-audit --events {AUDIT_EVENTS} "
            f"--concurrency {AUDIT_CONCURRENCY}  (and --concurrency 256)")


# ---------------------------------------------------------------- main
def versions():
    v = {}
    def out(cmd):
        try:
            p = run(cmd, check=False, timeout=30)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    v["datasette"] = out(["datasette", "--version"])
    v["postgresql"] = psql("SHOW server_version", db="postgres")
    v["sqlite3"] = out(["sqlite3", "--version"]).split()[0]
    v["wrk"] = out(["wrk", "-v"]).split(" Copyright")[0]
    v["rustc"] = out(["rustc", "--version"])
    v["python"] = sys.version.split()[0]
    v["passerelle"] = out([PASSERELLE, "--version"]) if PASSERELLE and os.path.isfile(PASSERELLE) else "n/a"
    try:
        v["git"] = run(["git", "-C", ROOT, "describe", "--always", "--dirty"], check=False).stdout.strip()
    except OSError:
        v["git"] = "?"
    v["host"] = f"{socket.gethostname()}, {os.cpu_count()} cores, " \
                f"{int(open('/proc/meminfo').readline().split()[1]) / 1024 / 1024:.0f} GiB"
    R["versions"] = v


def main():
    os.makedirs(RAW, exist_ok=True)
    for f in os.listdir(RAW):
        if f != "gateway_build.log":
            os.remove(os.path.join(RAW, f))
    for name, port in PORTS.items():
        if not port_free(port):
            sys.exit(f"port {port} ({name}) is busy: stop what listens there first")
    versions()
    prepare_data()
    gws = gateways()
    R["gateway_env"] = " ".join(f"{k}={v}" for k, v in sorted(gws[1].env().items())
                                if k.startswith("PASSERELLE_") or k in GATEWAY_ENV and k != "DATABASE_URL")
    problem = check_binary()
    R["binary_problem"] = problem
    if problem:
        for gw in gws:
            gw.error = problem
        note(f"Passerelle not measured: {problem}")
    scenario_import(gws)
    for gw in gws:
        setup_gateway(gw)

    log("starting floor, Datasette and the gateways")
    env = dict(os.environ, DATABASE_URL=f"{PG_BASE}/{PEER_DB}", BIND=f"127.0.0.1:{PORTS['floor']}", POOL="10")
    floor = start("floor", [FLOOR], env=env)
    ds = start("datasette", ["datasette", "serve", SQLITE_DB, "--host", "127.0.0.1", "--port", str(PORTS["ds"]),
                             "--setting", "num_sql_threads", "4"])
    if not wait_http(f"http://127.0.0.1:{PORTS['floor']}/static", floor, 60):
        sys.exit("the floor server did not start:\n" + tail(os.path.join(RAW, "floor.log")))
    if not wait_http(f"http://127.0.0.1:{PORTS['ds']}/-/versions.json", ds, 60):
        sys.exit("datasette did not start:\n" + tail(os.path.join(RAW, "datasette.log")))
    for gw in gws:
        if not gw.error:
            gw.proc = gw.serve()

    scenarios_http(gws, floor, ds)
    scenario_memory(gws)
    stop(floor)
    scenario_aggregate(gws)
    for gw in gws:
        stop(gw.proc)
    scenario_export(gws, ds)
    stop(ds)
    scenario_export_compressed(gws)
    scenario_edge(gws)
    scenario_catalogue_page(gws)
    scenario_instances(gws)
    scenario_audit(gws)
    R["duration_s"] = time.time() - T0
    json.dump(R, open(os.path.join(RAW, "results.json"), "w"), indent=1, default=str)
    import report
    report.write(R, RESULTS)
    log(f"done in {R['duration_s'] / 60:.1f} min: {RESULTS} (raw outputs in {RAW})")
    return 1 if R["failed"] or any(gw.error for gw in gws) else 0


if __name__ == "__main__":
    try:
        scenario = os.environ.get("BENCH_ONLY")
        code = only(scenario) if scenario in ("export_compressed", "edge", "catalogue_page", "instances",
                                               "export_import", "upload") else main()
    finally:
        stop_all()
    sys.exit(code)
