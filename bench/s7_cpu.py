"""S7 by CPU time: the catalogue page's server CPU per request and wrk latency,
for one binary, on a SQLite store with the demo catalogue and the 653-entry register.
Usage: python3 bench/s7_cpu.py BINARY TAG PORT [wrk]  (wrk: also two S7 wrk rounds)"""
import http.client, os, shutil, subprocess, sys, time
binary, tag, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with_wrk = len(sys.argv) > 4
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
work = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"passerelle-s7-{tag}")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
shutil.copytree(f"{repo}/catalog", f"{work}/catalog")
shutil.copytree(f"{repo}/policies", f"{work}/policies")
env = dict(os.environ, DATABASE_URL=f"sqlite:{work}/p.db", PASSERELLE_CATALOG_DIR=f"{work}/catalog",
           PASSERELLE_POLICIES_DIR=f"{work}/policies", PASSERELLE_SERVER__LISTEN=f"127.0.0.1:{port}",
           PASSERELLE_LIMITS__ANONYMOUS__REQUESTS="100000000", PASSERELLE_LIMITS__ANONYMOUS__BURST="100000000",
           RUST_LOG="warn")
def cli(*args):
    p = subprocess.run([binary, *args], env=env, cwd=work, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-500:] + p.stderr[-1500:]
    return p.stdout + p.stderr
cli("catalog", "sync")
out = cli("register", "import", f"{work}/catalog/register-demo.csv")
print(tag, "register:", [l for l in out.splitlines() if "register:" in l][-1:])
log = open(f"{work}/serve.log", "w")
server = subprocess.Popen([binary, "serve"], env=env, cwd=work, stdout=log, stderr=log)
try:
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/health/live"); c.getresponse().read(); break
        except OSError:
            time.sleep(0.2)
    def cpu():
        fields = open(f"/proc/{server.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    def page(path):
        c.request("GET", path, headers={"Accept-Language": "fr"}); r = c.getresponse(); body = r.read()
        assert r.status == 200, (r.status, body[:300])
        return body
    body = page("/datasets")
    print(tag, "page bytes", len(body))
    for _ in range(50): page("/datasets")
    for path in ("/datasets", "/datasets?q=eau", "/datasets?page=5&access=open"):
        n = 400
        before, t0 = cpu(), time.time()
        for _ in range(n): page(path)
        used, wall = cpu() - before, time.time() - t0
        print(f"{tag} {path}: {1000*used/n:.3f} ms CPU per page, {1000*wall/n:.3f} ms wall per sequential page ({n} pages)")
    if with_wrk:
        for i in (1, 2):
            w = subprocess.run(["wrk", "-t2", "-c32", "-d10s", "--latency", "--timeout", "30s", "-H", "Accept-Language: fr",
                                f"http://127.0.0.1:{port}/datasets"], capture_output=True, text=True)
            lines = [l for l in w.stdout.splitlines() if "Requests/sec" in l or l.strip().startswith(("50%", "99%")) or "Non-2xx" in l]
            print(tag, "wrk round", i, " | ".join(l.strip() for l in lines))
finally:
    server.terminate(); server.wait(10)
