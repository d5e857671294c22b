"""Signs in through a real browser-like flow and prints the Cookie header for the target.

Usage: login.py START_URL USER PASSWORD
Follows redirects by hand; fills the GitLab stand-in's sign-in form and consent page when
they appear; stops when the flow is back on START_URL's origin outside the auth endpoints.
Works for labgate (/oauth2/start) and Apache + mod_auth_openidc alike.
"""
import html
import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main(start, user, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    target = urllib.parse.urlparse(start)

    def go(url, data=None):
        req = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode() if data else None,
                                     headers={"Accept": "text/html"})
        try:
            r = opener.open(req, timeout=10)
            return r.status, r.headers, r.read().decode(errors="replace"), r.geturl()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode(errors="replace"), url

    url, data = start, None
    for _ in range(20):
        status, headers, body, at = go(url, data)
        data = None
        if status in (301, 302, 303, 307, 308):
            url = urllib.parse.urljoin(at, headers["Location"])
            continue
        here = urllib.parse.urlparse(at)
        if 'name="password"' in body:
            form = {k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', body)}
            data = {"username": user, "password": password, "return_to": form.get("return_to", "")}
            url = urllib.parse.urljoin(at, re.search(r'<form method="post" action="([^"]+)"', body).group(1))
            continue
        if 'value="Authorize"' in body:
            first = body.split("</form>")[0]
            data = {k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', first) if k != "commit"}
            url = urllib.parse.urljoin(at, re.search(r'<form method="post" action="([^"]+)"', first).group(1))
            continue
        if 'Sign in with GitLab' in body:
            url = urllib.parse.urljoin(at, re.search(r'href="([^"]*oauth2/start[^"]*)"', body).group(1).replace("&amp;", "&"))
            continue
        on_app = (here.hostname, here.port) == (target.hostname, target.port) and not here.path.startswith(("/oauth2/", "/oidc/"))
        if on_app and status == 200:
            break
        sys.exit(f"login failed at {at}: {status}\n{body[:500]}")
    req = urllib.request.Request(start)
    jar.add_cookie_header(req)
    print(req.get_header("Cookie"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
