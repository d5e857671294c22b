"""Lints and renders a Helm chart with Helm's own SDK (helm-python-sdk: Helm 4 as a library),
for tests/it/packaging/helm.rs.

Usage:
  helm_chart.py lint CHART [VALUES.yaml ...]
  helm_chart.py render CHART [VALUES.yaml ...]

The values files are merged in order, as `helm -f A -f B` merges them. The release is
named "labgate" in the namespace "auth".

lint prints helm lint --strict's report as JSON ({"messages": [{"severity", "path",
"error"}], "errors": [...]}; severity 1 info, 2 warning, 3 error) and exits 0.
render prints {"manifests": {template path: rendered text}} as JSON and exits 0; when the
values or a template are refused (values.schema.json, a `fail`), it prints Helm's message
on stderr and exits 1. A missing SDK exits 2.
"""
import json
import sys

try:
    import helm_python
except ImportError:
    print("helm-python-sdk is not installed: python3 -m pip install helm-python-sdk "
          "(scripts/test installs it)", file=sys.stderr)
    sys.exit(2)

RELEASE = "labgate"
NAMESPACE = "auth"
# The Kubernetes version the chart is linted for (tests/it/packaging.rs validates against it).
KUBE_VERSION = "v1.35.0"


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, maps merged key by key, as Helm merges values files."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def values(files: list) -> dict:
    out = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            out = merge(out, helm_python.values_from_yaml(f.read()) or {})
    return out


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in ("lint", "render"):
        print(__doc__, file=sys.stderr)
        return 2
    command, chart, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    vals = values(files)
    if command == "lint":
        report = helm_python.lint(chart, vals, strict=True, namespace=NAMESPACE,
                                  kube_version=KUBE_VERSION)
        print(json.dumps(report))
        return 0
    try:
        with helm_python.Chart.load(chart) as loaded:
            manifests = loaded.render(vals, name=RELEASE, namespace=NAMESPACE,
                                      is_install=True)
    except helm_python.HelmError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"manifests": manifests}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
