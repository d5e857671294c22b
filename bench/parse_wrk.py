"""Reads wrk --latency output on stdin; prints JSON {rps, p50_ms, p99_ms, errors, requests}."""
import json
import re
import sys

text = sys.stdin.read()


def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return None
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
reqs = re.search(r"(\d+) requests in", text)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
print(json.dumps({
    "rps": float(rps.group(1)) if rps else 0.0,
    "p50_ms": ms("50"),
    "p99_ms": ms("99"),
    "errors": errors,
    "requests": int(reqs.group(1)) if reqs else 0,
}))
