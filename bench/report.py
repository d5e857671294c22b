"""Turns bench/run's measurements into a markdown table (printed, and written to
bench/RESULTS.md for a full run or target/bench-quick.md for --quick)."""
import datetime
import json
import os
import statistics
import sys

(w, quick, rss_idle, rss_big, big_conns, big_ok, rss_before_up, rss_peak, upload, upload_code,
 signins, t0, t1, signin_ticks, clk, dur, conns, rounds, proxy_cpus, load_cpus, proxy_ncpu,
 nginx_big, nginx_big_ok) = sys.argv[1:24]
quick = quick == "1"
clk = int(clk)
runs = [json.loads(l) for l in open(os.path.join(w, "runs.jsonl"))]
fixed = [json.loads(l) for l in open(os.path.join(w, "fixed.jsonl"))] if os.path.exists(os.path.join(w, "fixed.jsonl")) else []

order = ["upstream", "nginx", "bare-hyper", "labgate-cookie", "labgate-redis", "labgate-ws", "labgate-auth", "apache-openidc"]
names = {
    "upstream": "upstream direct (tiny hyper server)",
    "nginx": "nginx plain reverse proxy (no auth)",
    "bare-hyper": "bare hyper proxy, labgate's runtime layout (no auth; the floor)",
    "labgate-cookie": "labgate, signed in (cookie store)",
    "labgate-redis": "labgate, signed in (Redis store)",
    "labgate-ws": "labgate, signed in, `runtime = \"work-stealing\"` (one shared runtime)",
    "labgate-auth": "labgate /oauth2/auth (forward-auth)",
    "apache-openidc": "Apache 2.4 + mod_auth_openidc, signed in",
}
med = {}
for t in order:
    rs = [r for r in runs if r["target"] == t]
    med[t] = {
        "rps": statistics.median(r["rps"] for r in rs),
        "p50": statistics.median(r["p50_ms"] or 0 for r in rs),
        "p99": statistics.median(r["p99_ms"] or 0 for r in rs),
        "errors": sum(r["errors"] for r in rs),
        # CPU of the target's own processes per request, over all rounds.
        "cpu_us": sum(r["cpu_ticks"] for r in rs) / clk * 1e6 / (sum(r["requests"] for r in rs) or 1),
    }
nginx = med["nginx"]["rps"] or 1
apache = med["apache-openidc"]["rps"] or 1
lines = []
p = lines.append
p(f"# labgate benchmark{' (quick run: debug build, numbers not meaningful)' if quick else ''}")
p("")
p(f"{datetime.date.today().isoformat()} · {os.cpu_count()} cores · wrk 1 thread, {conns} connections, {dur} × {rounds} alternating rounds (median) · loopback")
p(f"· proxies pinned to CPU {proxy_cpus} ({proxy_ncpu} core(s); nginx {proxy_ncpu} worker(s)), wrk, upstream, stand-in and Redis to CPU {load_cpus}")
p("")
p("| target | requests/s | vs nginx | p50 ms | p99 ms | errors | CPU µs / request | CPU vs nginx |")
p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
ncpu = med["nginx"]["cpu_us"] or 1
for t in order:
    m = med[t]
    p(f"| {names[t]} | {m['rps']:,.0f} | {m['rps'] / nginx:.2f}x | {m['p50']:.2f} | {m['p99']:.2f} | {m['errors']} | {m['cpu_us']:.1f} | {m['cpu_us'] / ncpu:.2f}x |")
p("")
p("CPU µs / request: user + system time of the target's own processes (nginx master and workers, Apache and its "
  "children, the labgate process; for the upstream row, the upstream itself) during the run, divided by the requests wrk completed.")
p("")
lg = med["labgate-cookie"]["rps"]
auth = med["labgate-auth"]["rps"]
bare = med["bare-hyper"]
p(f"labgate (cookie store) vs the bare hyper proxy (its floor): **{lg / (bare['rps'] or 1):.2f}x** the throughput at "
  f"**{med['labgate-cookie']['cpu_us'] / (bare['cpu_us'] or 1):.2f}x** the CPU per request; the bare proxy vs nginx: "
  f"{bare['rps'] / nginx:.2f}x the throughput at {bare['cpu_us'] / ncpu:.2f}x the CPU.")
p("")
p(f"labgate (cookie store) vs nginx plain proxy: **{lg / nginx:.2f}x** the throughput at **{med['labgate-cookie']['cpu_us'] / ncpu:.2f}x** the CPU per request; "
  f"`/oauth2/auth` **{auth / nginx:.2f}x**; vs Apache + mod_auth_openidc: **{lg / apache:.1f}x** the throughput.")
p("")
if fixed:
    f = {x["target"]: x for x in fixed}
    if "upstream" in f and "labgate-cookie" in f:
        added = f["labgate-cookie"]["p99_ms"] - f["upstream"]["p99_ms"]
        p(f"Latency at half of labgate's peak ({f['upstream']['rate']:,} req/s fixed rate, oha): upstream p99 {f['upstream']['p99_ms']:.3f} ms, "
          f"labgate p99 {f['labgate-cookie']['p99_ms']:.3f} ms: **{added:.3f} ms added at p99** (p50 {f['labgate-cookie']['p50_ms'] - f['upstream']['p50_ms']:.3f} ms).")
        others = [(n, t) for n, t in (("nginx plain proxy", "nginx"), ("bare hyper proxy", "bare-hyper"), ("labgate `runtime = \"work-stealing\"`", "labgate-ws")) if t in f]
        if others:
            p("At the same rate: " + "; ".join(f"{n} p99 {f[t]['p99_ms']:.3f} ms ({f[t]['p99_ms'] - f['upstream']['p99_ms']:.3f} ms added)" for n, t in others) + ".")
        p("")
big = json.loads(big_ok)
mb = lambda kb: int(kb) / 1024
p("| memory (labgate RSS) | MiB |")
p("| --- | ---: |")
p(f"| idle, after the runs above | {mb(rss_idle):.1f} |")
p(f"| with {int(big_conns):,} concurrent keep-alive connections ({big['rps']:,.0f} req/s, {big['errors']} errors) | {mb(rss_big):.1f} |")
nbig = json.loads(nginx_big_ok)
p(f"| nginx (master and worker), the same {int(big_conns):,} connections ({nbig['rps']:,.0f} req/s, {nbig['errors']} errors) | {mb(nginx_big):.1f} |")
p(f"| growth during a {int(upload) / 2**20:,.0f} MiB upload (HTTP {upload_code}) | {mb(int(rss_peak) - int(rss_before_up)):.1f} |")
p("")
secs = float(t1) - float(t0)
p(f"Sign-ins: {int(signins)} complete browser-style flows (labgate + stand-in + a Python client, 4 at a time) in {secs:.2f} s = "
  f"**{int(signins) / secs:.1f} sign-ins/s**; labgate's own CPU per sign-in: **{int(signin_ticks) / clk / int(signins) * 1000:.1f} ms**.")
text = "\n".join(lines) + "\n"
print(text)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
target = os.path.join(root, "target", "bench-quick.md") if quick else os.path.join(root, "bench", "RESULTS.md")
os.makedirs(os.path.dirname(target), exist_ok=True)
# The soak section (written by bench/soak) is kept: it comes from a different run.
soak = ""
if not quick and os.path.exists(target):
    old = open(target).read()
    if "\n## labgate soak" in old:
        soak = old[old.index("\n## labgate soak"):]
with open(target, "w") as fh:
    fh.write(text.rstrip("\n") + "\n" + soak)
print(f"(written to {os.path.relpath(target, root)})")
