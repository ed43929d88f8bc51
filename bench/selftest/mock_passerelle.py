#!/usr/bin/env python3
"""A stand-in for the `passerelle` binary, to test the harness itself while
the gateway is not built (bench/selftest/run.sh). It implements just the
command-line and HTTP interface bench.py uses, on a local SQLite file (the
DATABASE_URL only names that file). Its figures mean nothing.
"""
import base64
import csv
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLS = ["id", "batiment_id", "commune", "date", "energie", "conso_kwh", "surface_m2", "lat", "lon"]


def db_path():
    url = os.environ.get("DATABASE_URL", "sqlite:mock")
    return os.path.join(os.getcwd(), "mock-" + hashlib.sha1(url.encode()).hexdigest()[:10] + ".db")


def connect():
    db = sqlite3.connect(db_path(), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS audit (t REAL, path TEXT, status INTEGER)")
    return db


def import_file(ident, path):
    t = time.perf_counter()
    db = connect()
    table = ident.replace("-", "_")
    db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, batiment_id INTEGER, commune TEXT, date TEXT, "
               "energie TEXT, conso_kwh REAL, surface_m2 REAL, lat REAL, lon REAL)")
    with open(path, newline="") as f:
        r = csv.reader(f)
        next(r)
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO {table} VALUES (?,?,?,?,?,?,?,?,?)", r)
        db.execute("COMMIT")
    db.execute(f"CREATE INDEX {table}_commune ON {table} (commune)")
    n = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    print(f"imported {n} rows into `{ident}` version 1 in {time.perf_counter() - t:.2f} s")


def roles_of(headers):
    auth = headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return ["anonymous"]
    try:
        return json.loads(base64.urlsafe_b64decode(auth[7:].split(".")[1] + "==="))["roles"] + ["anonymous"]
    except (ValueError, IndexError, KeyError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.server.db.execute("INSERT INTO audit VALUES (?,?,?)", (time.time(), self.path, status))

    def do_GET(self):
        with self.server.lock:
            self.get()

    def get(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/health/live":
            return self.send(200, b'{"status":"ok"}')
        if not u.path.startswith("/api/v1/data/"):
            return self.send(404, b"{}")
        ident = u.path.rsplit("/", 1)[1]
        table = ident.replace("-", "_")
        q = dict(urllib.parse.parse_qsl(u.query))
        roles = roles_of(self.headers)
        if roles is None:
            return self.send(401, b'{"title":"bad token"}')
        if ident == "conso-closed":
            if "bench-reader" in roles:
                pass
            elif "bench-aggregator" in roles:
                if "select" not in q:
                    return self.send(403, b'{"title":"aggregates only"}')
            else:
                return self.send(401, b'{"title":"authentication required"}')
        db = self.server.db
        if q.get("select") == "commune,conso_kwh.sum(),count()":
            rows = db.execute(f"SELECT commune, sum(conso_kwh), count(*) FROM {table} GROUP BY commune").fetchall()
            kept = [r for r in rows if r[2] >= 11]
            body = json.dumps([{"commune": c, "sum": s, "count": n} for c, s, n in kept]).encode()
            return self.send(200, body, extra={"X-Suppressed-Groups": str(len(rows) - len(kept))})
        if q.get("format") == "csv":
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            cur = db.execute(f"SELECT * FROM {table} ORDER BY id")
            buf = [",".join(COLS) + "\n"]
            for row in cur:
                buf.append(",".join(str(x) for x in row) + "\n")
                if len(buf) >= 5000:
                    data = "".join(buf).encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    buf = []
            data = "".join(buf).encode()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            return
        commune = q.get("commune", "eq.")[3:]
        limit = int(q.get("limit", "100"))
        rows = db.execute(f"SELECT * FROM {table} WHERE commune = ? ORDER BY id LIMIT ?", (commune, limit))
        body = json.dumps([dict(zip(COLS, r)) for r in rows]).encode()
        self.send(200, body)


def main():
    args = sys.argv[1:]
    cmd = args[0] if args else "serve"
    if cmd in ("--help", "-h"):
        print("Usage: passerelle [COMMAND]\n\nCommands:\n  serve\n  catalog\n  import\n  token\n  bench-audit")
    elif cmd == "--version":
        print("passerelle-mock 0.0.0")
    elif cmd == "import":
        import_file(args[1], args[2])
    elif cmd == "catalog":
        import_file("conso-open", os.path.join(os.environ["PASSERELLE_CATALOG_DIR"], "consommations.csv"))
    elif cmd == "token":
        roles = args[args.index("--roles") + 1].split(",")
        payload = base64.urlsafe_b64encode(json.dumps({"sub": "bench", "roles": roles}).encode()).decode().rstrip("=")
        print(f"eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln")
    elif cmd == "bench-audit":
        n = int(args[args.index("--events") + 1])
        db = connect()
        t = time.perf_counter()
        for i in range(0, n, 500):
            db.execute("BEGIN")
            db.executemany("INSERT INTO audit VALUES (?,?,?)", [(time.time(), "/bench", 200)] * 500)
            db.execute("COMMIT")
        print(f"events_per_second={n / (time.perf_counter() - t):.1f}")
    elif cmd == "serve":
        host, port = os.environ["PASSERELLE_SERVER__LISTEN"].rsplit(":", 1)
        server = ThreadingHTTPServer((host, int(port)), Handler)
        server.daemon_threads = True
        server.db = connect()
        server.lock = threading.Lock()
        server.serve_forever()
    else:
        print(f"error: unrecognized subcommand '{cmd}'", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
