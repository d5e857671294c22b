"""Verifies a labgate assertion with the PyJWT snippet of docs/identity.md, as written there.

Usage: verify_assertion.py JWKS_URL ISSUER AUDIENCE TOKEN
Runs the first ```python block under "### Python" in docs/identity.md with its JWKS_URL,
ISSUER and AUDIENCE constants set to the arguments, then calls its identity(TOKEN).
Prints the claims as JSON and exits 0, or prints the error and exits 1 (2 when the snippet
cannot be found or run).
"""
import json
import pathlib
import re
import sys

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "identity.md"
CONSTANTS = ("JWKS_URL", "ISSUER", "AUDIENCE")


def fail(message: str):
    print(f"{DOC}: {message}", file=sys.stderr)
    sys.exit(2)


def snippet() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n### Python\n", 1)
    if len(section) != 2:
        fail("no '### Python' section")
    block = re.search(r"^```python\n(.*?)^```", section[1], re.S | re.M)
    if not block:
        fail("no python code block under '### Python'")
    return block.group(1)


def load(jwks_url: str, issuer: str, audience: str):
    """The snippet's identity(), with its three constants pointed at the labgate under test."""
    code = snippet()
    for name, value in zip(CONSTANTS, (jwks_url, issuer, audience)):
        code, n = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", code, count=1, flags=re.M)
        if n != 1:
            fail(f"the snippet does not set {name}")
    namespace: dict = {}
    exec(compile(code, f"{DOC}#python", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace["identity"]


if __name__ == "__main__":
    jwks_url, issuer, audience, token = sys.argv[1:5]
    identity = load(jwks_url, issuer, audience)
    try:
        print(json.dumps(identity(token)))
    except Exception as e:  # noqa: BLE001 - report any verification failure
        print(f"{type(e).__name__}: {e}")
        sys.exit(1)
