"""Generates tests/data/open_redirects.txt: open-redirect payloads for labgate's rd check.

Every line is one payload (percent-encoded where it has bytes a URL line cannot hold) that
must NOT be accepted as a post-sign-in destination for public_url https://app.example.com
with allowed_redirect_domains = [".example.org"]. Run: python3 tests/data/generate_redirects.py
"""
import itertools
from urllib.parse import quote

EVIL = ["evil.com", "evil.com/path", "evil.com:443", "evil.com.", "EVIL.COM", "evil.com?x=app.example.com"]
out = []

def add(p):
    if p not in out:
        out.append(p)

for host in EVIL:
    # Scheme-relative and slash tricks.
    for prefix in ["//", "///", "////", "/\\", "\\/", "\\\\", "/\\/", "\\\\/", "/ /", "/\t/", "/%09/", "/%0a/", "/%0d/", "/%2f", "/%2F/", "/%5c", "/%5C/", "/%252f", "/%255c", "/%25252f", "%2f%2f", "%5c%5c", "/.%2f", "/%2e%2f/", "/\u3002/", "/%E3%80%82/"]:
        add(prefix + host)
    # Absolute URLs with schemes browsers accept.
    for scheme in ["https://", "http://", "HTTPS://", "https:/", "https:", "https:\\\\", "https:/\\", "//", "ftp://", "ws://", " https://", "\thttps://", "https:%2f%2f", "https%3a%2f%2f", "https%253a%252f%252f"]:
        add(scheme + host)

# Userinfo and look-alike hosts.
for p in [
    "https://app.example.com@evil.com", "https://app.example.com:@evil.com", "https://app.example.com%40evil.com",
    "https://evil.com\\@app.example.com", "https://evil.com#@app.example.com", "https://evil.com?@app.example.com",
    "https://app.example.com.evil.com", "https://app.example.comevil.com", "https://evilapp.example.com.evil.com",
    "https://app-example.com", "https://app.example.co", "https://app.examp1e.com", "https://xn--pp-ydd.example.com",
    "https://аpp.example.com", "https://app.example.com%2e", "https://app.example.com%00.evil.com",
    "https://app.example.com%2F@evil.com", "https://app.example.com\\.evil.com", "https://app.example.com:443@evil.com",
    "https://user:pass@app.example.com/", "https://@evil.com", "https://:@evil.com",
    "https://example.org.evil.com", "https://evilexample.org", "https://example.orgevil.com", "https://sub.example.org@evil.com",
    "http://app.example.com", "http://app.example.com:443/", "https://app.example.com:8443/",
]:
    add(p)

# IP forms of a foreign host.
for ip in ["127.0.0.1", "2130706433", "0x7f000001", "017700000001", "127.1", "[::1]", "[::ffff:7f00:1]", "0", "169.254.169.254", "0177.0.0.1"]:
    for prefix in ["//", "https://", "/\\", "http://"]:
        add(prefix + ip)

# Script and data schemes.
for p in ["javascript:alert(1)", "JavaScript:alert(1)", "java%0ascript:alert(1)", "javascript://%0aalert(1)", "javascript:/%0aalert(1)",
          "data:text/html,<script>alert(1)</script>", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "vbscript:msgbox(1)",
          "file:///etc/passwd", "blob:https://evil.com/x", "\u0001javascript:alert(1)", "%01javascript:alert(1)", "jav&#x09;ascript:alert(1)"]:
    add(p)

# Control characters and whitespace anywhere in an otherwise relative path.
for c in ["\r", "\n", "\t", "\x00", "\x0b", "\x0c", "\x7f", "\u00a0", "\u2028", "\u2029", "\ufeff", " "]:
    add("/" + c + "/evil.com")
    add("/x" + c + "Location: https://evil.com")
for enc in ["%0d%0aLocation:%20https://evil.com", "%00", "%09", "%20%2f%2fevil.com", "%E2%80%A8", "%C2%A0"]:
    add("/x" + enc)

# Not a path at all.
for p in ["evil.com", "evil.com/x", ".evil.com", "@evil.com", "?x=1", "#frag", "%2fevil.com", "\\evil.com", " /x", "~/x", "./x", "../x"]:
    add(p)

assert len(out) >= 300, len(out)
with open(__file__.replace("generate_redirects.py", "open_redirects.txt"), "w", encoding="utf-8") as f:
    for p in out:
        # One payload per line: encode the bytes a line cannot carry.
        f.write(p.encode("unicode_escape").decode("ascii") + "\n")
print(len(out), "payloads")
