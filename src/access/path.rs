//! Request-path interpretations used for access decisions.
//!
//! Upstreams disagree on how they read a path (`%2F`, `..;/` for Tomcat, `\` for IIS,
//! `//`). labgate decides on every interpretation it knows and takes the stricter
//! answer: a path is public only when all readings are public, and a route's rules apply
//! when any reading matches it. The path forwarded upstream is the RFC 3986 §6.2.2
//! normalisation of the request path (unreserved characters decoded, dot segments removed).

use std::borrow::Cow;

/// How many rounds of percent-decoding the decision's reading takes at most (double,
/// triple encoding...: `%2561` is `a` to an app that decodes twice). A path still changing
/// after that is refused.
const DECODE_ROUNDS: usize = 8;

/// Characters that Unicode normalisation (NFKC: Java's and .NET's URL normalisers, IDNA)
/// or a lax router turns into `.` or `/` (`\\`), mapped so in the lenient reading; a
/// redirect target holding one is refused (`oauth::redirect`).
pub(crate) const LOOKALIKES: &[(char, char)] = &[
    ('\u{3002}', '.'),
    ('\u{ff0e}', '.'),
    ('\u{ff61}', '.'),
    ('\u{2024}', '.'),
    ('\u{fe52}', '.'),
    ('\u{ff0f}', '/'),
    ('\u{2215}', '/'),
    ('\u{2044}', '/'),
    ('\u{29f8}', '/'),
    ('\u{ff3c}', '/'),
    ('\u{fe68}', '/'),
];

/// Characters routers and string helpers drop at the ends of a segment besides white
/// space: zero-width spaces and joiners, the word joiner, the BOM (JavaScript's `trim()`
/// strips U+FEFF).
fn invisible(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}')
}

/// The readings of a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathViews {
    /// RFC 3986 normal form: what labgate forwards.
    pub forward: String,
    /// Percent-decoded to a fixed point with its dot segments kept: what WSGI and ASGI
    /// servers (Werkzeug, gunicorn, uvicorn) route on (`/admin%2f..%2fx` is
    /// `/admin/../x` to Flask's `/admin/<path>`).
    pub decoded: String,
    /// Percent-decoded to a fixed point (`%252f` is `/` to apps and proxies that decode
    /// twice), `\` read as `/`, `;params` dropped, `//` collapsed, dot segments removed: the
    /// most-resolved reading any common server might use.
    pub resolved: String,
    /// `resolved` as lenient routers see it: `%uXXXX` decoded (IIS), NFKC look-alikes of
    /// `.` and `/` mapped to them, and each segment stripped of white space and invisible
    /// characters at both ends and of trailing dots (Windows) before dot segments are
    /// removed (`/admin%20`, `/%20admin`, `/admin.%20`, `/public/%20../admin`).
    pub lenient: String,
    /// `resolved` of the whole path, not cut at a decoded `?` or `#` (`/public/x%3f%2f..%2fadmin`
    /// is `/admin` to a static file server that decodes, then resolves).
    pub resolved_whole: String,
    /// `lenient` of the whole path, likewise.
    pub lenient_whole: String,
    /// The readings of the forwarded path, when it differs from the request's: the app
    /// decodes what labgate sends, and `remove_dot_segments` on the raw path can drop a
    /// segment holding `%2F` that a decoded reading keeps (`/x%2fy/../admin%2fz` is
    /// forwarded as `/admin%2Fz`).
    of_forward: Option<Box<PathViews>>,
    /// The PATH_INFO after a `*.php` segment of the readings above (`/public/index.php/admin`
    /// is `/admin` to a front controller), when there is one.
    after_scripts: Vec<String>,
    /// Whether some decoded reading keeps a `.` or `..` segment that an app could route on
    /// unresolved (Werkzeug strips leading slashes, nginx with `merge_slashes off` resolves
    /// `//..` differently): browsers never send one, so such a request faces every route.
    dot_segments: bool,
    /// Why no application should be handed this path, if so: it decodes to a control
    /// character (NUL, C0, DEL, C1) or to an overlong UTF-8 sequence, or it is still
    /// changing after [`DECODE_ROUNDS`].
    refused: Option<&'static str>,
}

impl PathViews {
    /// Builds the readings from a request target's path (query already split off by the
    /// URI parser; an encoded `%23` and anything after it is cut here as a fragment).
    pub fn new(raw_path: &str) -> Self {
        let raw = raw_path.split(['?', '#']).next().unwrap_or("");
        if plain(raw) {
            // Every reading is the path itself: no decoding, no dot segment, nothing to
            // trim or map (the common case, kept cheap).
            return PathViews {
                forward: raw.to_owned(),
                decoded: raw.to_owned(),
                resolved: raw.to_owned(),
                lenient: raw.to_owned(),
                resolved_whole: raw.to_owned(),
                lenient_whole: raw.to_owned(),
                of_forward: None,
                after_scripts: Vec::new(),
                dot_segments: false,
                refused: None,
            };
        }
        Self::read(raw)
    }

    /// Every reading of `raw` (path only), worked out in full.
    fn read(raw: &str) -> Self {
        let forward = remove_dot_segments(&decode_unreserved(raw));
        let forward = if forward.starts_with('/') {
            forward
        } else {
            format!("/{forward}")
        };
        let (whole, stable, overlong) = decode_to_fixed_point(raw);
        // Encoded `#` and `?` end the path for apps that decode before routing, and not for
        // those that decode and resolve the whole (a static file server, `http.server`):
        // both are readings.
        let decoded = whole.split(['#', '?']).next().unwrap_or("").to_owned();
        let slashed = decoded.replace('\\', "/");
        let slashed_whole = whole.replace('\\', "/");
        let loose = loosen(&slashed);
        let loose_whole = loosen(&slashed_whole);
        let refused = if whole
            .chars()
            .chain(loose_whole.chars())
            .any(char::is_control)
        {
            Some("the path decodes to a control character")
        } else if overlong {
            Some("the path holds an overlong UTF-8 encoding")
        } else if !stable {
            Some("the path is percent-encoded too many times over")
        } else {
            None
        };
        let of_forward = (forward != raw).then(|| Box::new(PathViews::new(&forward)));
        let refused = refused.or(of_forward.as_ref().and_then(|f| f.refused));
        let dot_segments = [raw, slashed_whole.as_str(), loose_whole.as_str()]
            .iter()
            .any(|p| has_dot_segment(p))
            || of_forward.as_ref().is_some_and(|f| f.dot_segments);
        let resolved = resolve(&slashed, false);
        let lenient = resolve(&loose, true);
        let resolved_whole = resolve(&slashed_whole, false);
        let lenient_whole = resolve(&loose_whole, true);
        let mut after_scripts = Vec::new();
        for r in [
            &forward,
            &decoded,
            &resolved,
            &lenient,
            &resolved_whole,
            &lenient_whole,
        ] {
            if let Some(a) = after_script(r) {
                if !after_scripts.contains(&a) {
                    after_scripts.push(a);
                }
            }
        }
        PathViews {
            of_forward,
            dot_segments,
            after_scripts,
            forward,
            resolved,
            lenient,
            resolved_whole,
            lenient_whole,
            decoded: if decoded.starts_with('/') {
                decoded
            } else {
                format!("/{decoded}")
            },
            refused,
        }
    }

    /// Whether the request faces every route: some reading keeps a dot segment (see
    /// [`PathViews`]'s field), which no browser sends.
    pub fn faces_every_route(&self) -> bool {
        self.dot_segments
    }

    /// Why the path must be refused (400) rather than judged, if it must.
    pub fn refused(&self) -> Option<&'static str> {
        self.refused
    }

    /// Every strict reading (the same string repeated when they agree): public paths must
    /// match every one of them.
    pub fn all(&self) -> Vec<&str> {
        let mut out = vec![
            self.forward.as_str(),
            &self.decoded,
            &self.resolved,
            &self.lenient,
            &self.resolved_whole,
            &self.lenient_whole,
        ];
        if let Some(f) = &self.of_forward {
            out.extend(f.all());
        }
        // Public behind a PHP front controller only when its PATH_INFO is public too.
        out.extend(self.after_scripts.iter().map(String::as_str));
        out
    }

    /// Every reading a route is matched against (SPEC §9): the strict ones, plus the
    /// loose readings of routers that ignore case (Spring, IIS, ASP.NET, with Unicode case
    /// folding: `ı`, `İ`, `ſ`, the Kelvin sign are ASCII letters to them) or a `.format`
    /// suffix of a segment (Rails, Spring's suffix patterns, also `.tar.gz`): `/ADMIN`,
    /// `/adm%C4%B1n` and `/admin.tar.gz` are `/admin` too. A route applies when any reading
    /// matches, so the stricter answer wins. Distinct readings only.
    pub fn route_readings(&self) -> Vec<Cow<'_, str>> {
        let mut out: Vec<Cow<'_, str>> = vec![Cow::Borrowed(self.forward.as_str())];
        let uniform = self.of_forward.is_none()
            && self.after_scripts.is_empty()
            && [
                &self.decoded,
                &self.resolved,
                &self.lenient,
                &self.resolved_whole,
                &self.lenient_whole,
            ]
            .iter()
            .all(|r| **r == self.forward);
        if uniform
            && self.forward.is_ascii()
            && !self
                .forward
                .bytes()
                .any(|b| b.is_ascii_uppercase() || b == b'.')
        {
            return out;
        }
        let lenient_lower = fold_case(&self.lenient);
        let whole_lower = fold_case(&self.lenient_whole);
        let bare = strip_formats(&lenient_lower);
        let bare_whole = strip_formats(&whole_lower);
        for r in [
            Cow::Borrowed(self.decoded.as_str()),
            Cow::Borrowed(self.resolved.as_str()),
            Cow::Borrowed(self.lenient.as_str()),
            Cow::Borrowed(self.resolved_whole.as_str()),
            Cow::Borrowed(self.lenient_whole.as_str()),
            Cow::Owned(fold_case(&self.forward)),
            Cow::Owned(fold_case(&self.decoded)),
            Cow::Owned(fold_case(&self.resolved)),
            Cow::Owned(lenient_lower),
            Cow::Owned(whole_lower),
            Cow::Owned(bare),
            Cow::Owned(bare_whole),
        ] {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        if let Some(f) = &self.of_forward {
            for r in f.route_readings() {
                if !out.contains(&r) {
                    out.push(Cow::Owned(r.into_owned()));
                }
            }
        }
        // A PHP front controller (`/index.php/admin`): Symfony and Laravel route on the
        // PATH_INFO after the script.
        let scripts: Vec<String> = out.iter().filter_map(|r| after_script(r)).collect();
        for r in scripts {
            if !out.iter().any(|o| *o == r) {
                out.push(Cow::Owned(r));
            }
        }
        out
    }
}

/// `raw` percent-decoded until decoding changes nothing; whether that happened within
/// [`DECODE_ROUNDS`], and whether some round produced an overlong UTF-8 sequence (`%c0%af`
/// is `/` to old decoders). Invalid UTF-8 becomes U+FFFD.
fn decode_to_fixed_point(raw: &str) -> (String, bool, bool) {
    // On bytes, not text: a decoder that decodes twice sees `%C0%25AF` as C0 AF (an
    // overlong `/`) although neither round alone holds it whole.
    let mut bytes = raw.as_bytes().to_vec();
    let mut stable = false;
    for _ in 0..DECODE_ROUNDS {
        if !bytes.contains(&b'%') {
            stable = true;
            break;
        }
        let next: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if next == bytes {
            stable = true;
            break;
        }
        bytes = next;
    }
    if !stable {
        stable = percent_encoding::percent_decode(&bytes).eq(bytes.iter().copied());
    }
    let overlong = has_overlong(&bytes);
    (
        String::from_utf8_lossy(&bytes).into_owned(),
        stable,
        overlong,
    )
}

/// Whether `bytes` hold an overlong UTF-8 lead: `C0`/`C1` + continuation, `E0 80..9F`,
/// `F0 80..8F` (never valid UTF-8; decoded as `.` or `/` by lax decoders).
fn has_overlong(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| {
        matches!(
            (w.first(), w.get(1)),
            (Some(0xc0 | 0xc1), Some(0x80..=0xbf))
                | (Some(0xe0), Some(0x80..=0x9f))
                | (Some(0xf0), Some(0x80..=0x8f))
        )
    })
}

/// A decoded path as lenient routers read it: `%uXXXX` decoded (IIS), NFKC-normalised
/// (fullwidth `ａ`, `／`, `．`, mathematical and circled letters, `‥`), the remaining
/// look-alikes of `.` and `/` that IDNA maps (`。`) mapped, `\\` as `/`.
fn loosen(decoded: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let percent_u = decode_percent_u(decoded);
    let normalised: String = if percent_u.is_ascii() {
        percent_u.into_owned()
    } else {
        // NFKC: fullwidth forms, mathematical and circled letters, `‥`, ligatures.
        percent_u.nfkc().collect()
    };
    normalised
        .chars()
        .map(|c| {
            LOOKALIKES
                .iter()
                .find(|(from, _)| *from == c)
                .map_or(c, |(_, to)| *to)
        })
        .map(|c| if c == '\\' { '/' } else { c })
        .collect()
}

/// Whether every reading of `raw` is `raw` itself: it starts with `/`, holds only letters,
/// digits, `-`, `_`, `~`, `.` and single `/`, no segment starts or ends with `.` (dot
/// segments, trailing dots, dot-files), and no segment ends in `.php`.
fn plain(raw: &str) -> bool {
    let b = raw.as_bytes();
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    // `/` itself, or segments none of them empty but for a trailing `/`.
    let segments = rest.strip_suffix('/').unwrap_or(rest);
    b.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'~' | b'.' | b'/'))
        && (rest.is_empty()
            || segments.split('/').all(|seg| {
                !seg.is_empty() && !seg.starts_with('.') && !seg.ends_with('.') && !is_php(seg)
            }))
}

/// Whether a segment names a PHP script (`index.php`, any case).
fn is_php(seg: &str) -> bool {
    seg.len() >= 4
        && seg
            .get(seg.len() - 4..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".php"))
}

/// Whether `path` has a `.` or `..` segment (`;params`, white space and invisible
/// characters around it ignored).
fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|seg| {
        let seg = seg.split(';').next().unwrap_or("").trim_matches(invisible);
        seg == "." || seg == ".."
    })
}

/// The path after a PHP script segment that is followed by more (`/index.php/admin` is
/// `/admin` to the front controller), if there is one.
fn after_script(path: &str) -> Option<String> {
    let mut segments = path.split('/');
    let mut seen = 0;
    for seg in segments.by_ref() {
        seen += 1;
        if seen > 1 && is_php(seg) {
            let rest: Vec<&str> = segments.collect();
            return (!rest.is_empty()).then(|| format!("/{}", rest.join("/")));
        }
    }
    None
}

/// IIS's `%uXXXX` escapes decoded; anything else kept as it is.
fn decode_percent_u(s: &str) -> Cow<'_, str> {
    if !s.contains("%u") && !s.contains("%U") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(['%']) {
        out.push_str(rest.get(..at).unwrap_or(""));
        let tail = rest.get(at..).unwrap_or("");
        let escape = tail
            .get(1..6)
            .filter(|e| e.starts_with(['u', 'U']))
            .and_then(|e| e.get(1..))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        match escape {
            Some(c) => {
                out.push(c);
                rest = tail.get(6..).unwrap_or("");
            }
            None => {
                out.push('%');
                rest = tail.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A decoded path with `;params` dropped, empty segments collapsed and dot segments
/// removed; `lenient`: each segment first stripped of white space and invisible characters
/// at both ends and of trailing dots (a dot segment stays one).
fn resolve(decoded: &str, lenient: bool) -> String {
    let mut segments = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        let seg = if lenient {
            let t = seg.trim_matches(invisible);
            if t == "." || t == ".." {
                t
            } else {
                t.trim_end_matches(|c: char| c == '.' || invisible(c))
            }
        } else {
            seg
        };
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut resolved = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        resolved.push('/');
        resolved.push_str(s);
    }
    if resolved.is_empty() || (decoded.ends_with('/') && !segments.is_empty()) {
        resolved.push('/');
    }
    resolved
}

/// Removes every `.format` suffix from each segment (`/a.tar.gz/b.html` -> `/a/b`);
/// dot-files (`/.well-known`) keep their name.
fn strip_formats(path: &str) -> String {
    path.split('/')
        .map(
            |seg| match seg.char_indices().skip(1).find(|(_, c)| *c == '.') {
                Some((at, _)) => seg.get(..at).unwrap_or(seg),
                None => seg,
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Lower-cases `s` the way case-insensitive routers compare it: ASCII letters, and any
/// character whose upper or lower case is an ASCII letter becomes that letter (Java's
/// `equalsIgnoreCase` and .NET's invariant comparisons fold `ı`/`İ` to `i`, `ſ` to `s`,
/// the Kelvin sign to `k`); other characters are lower-cased.
fn fold_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let upper: Vec<char> = c.to_uppercase().collect();
        let lower: Vec<char> = c.to_lowercase().collect();
        let folded = match (upper.as_slice(), lower.first()) {
            ([u], _) if u.is_ascii_alphabetic() => Some(u.to_ascii_lowercase()),
            (_, Some(l)) if l.is_ascii_alphabetic() => Some(*l),
            _ => None,
        };
        match folded {
            Some(a) => out.push(a),
            None => out.extend(lower),
        }
    }
    out
}

/// Decodes `%XX` only where XX is an unreserved character (RFC 3986 §2.3), upper-cases
/// the hex of the others; invalid escapes are kept as they are. Works on bytes: `%` and hex
/// digits are ASCII, so every other byte (multi-byte characters included) is copied as is.
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                Some((h, l))
            }
            _ => None,
        };
        match hex {
            Some((h, l)) => {
                let v = (hex_value(h) << 4) | hex_value(l);
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(v);
                } else {
                    out.extend([b'%', h.to_ascii_uppercase(), l.to_ascii_uppercase()]);
                }
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII was replaced by ASCII, so the bytes are still UTF-8.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// The value of one ASCII hex digit (callers check `is_ascii_hexdigit`).
fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

/// RFC 3986 §5.2.4 remove_dot_segments.
fn remove_dot_segments(path: &str) -> String {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return path.to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice
)]
mod tests {
    use super::*;

    #[test]
    fn readings() {
        let cases = [
            ("/", "/", "/"),
            ("/a/b", "/a/b", "/a/b"),
            ("/admin/../admin", "/admin", "/admin"),
            ("/%61dmin", "/admin", "/admin"),
            ("//admin", "//admin", "/admin"),
            ("/public/..%2Fadmin", "/public/..%2Fadmin", "/admin"),
            ("/admin%23x", "/admin%23x", "/admin"),
            ("/admin%3F/public", "/admin%3F/public", "/admin"),
            ("/admin;x", "/admin;x", "/admin"),
            ("/public/..;/admin", "/public/..;/admin", "/admin"),
            ("/a/./b/../c/", "/a/c/", "/a/c/"),
            ("/..", "/", "/"),
            ("/x\\..\\admin", "/x\\..\\admin", "/admin"),
            ("/%2e%2e/admin", "/admin", "/admin"),
            ("/a%2fb", "/a%2Fb", "/a/b"),
            ("/caf%C3%A9", "/caf%C3%A9", "/café"),
            // Decoded to a fixed point: what a second decoder (PHP's urldecode of
            // REQUEST_URI, a second proxy) sees.
            ("/%2561dmin/x", "/%2561dmin/x", "/admin/x"),
            ("/admin%252fx", "/admin%252fx", "/admin/x"),
            ("/public/..%252fadmin", "/public/..%252fadmin", "/admin"),
            ("/public/..%25252fadmin", "/public/..%25252fadmin", "/admin"),
            ("/100%25", "/100%25", "/100%"),
        ];
        for (raw, forward, resolved) in cases {
            let v = PathViews::new(raw);
            assert_eq!(v.forward, forward, "forward of {raw}");
            assert_eq!(v.resolved, resolved, "resolved of {raw}");
        }
    }

    #[test]
    fn lenient_routers_are_a_reading() {
        let v = PathViews::new("/admin%20");
        assert_eq!(v.resolved, "/admin ");
        assert_eq!(v.lenient, "/admin");
        assert!(v.all().contains(&"/admin"));
        for (raw, lenient) in [
            ("/public/..%20/admin", "/admin"),
            ("/public/%20../admin", "/admin"),
            ("/admin%C2%A0/x", "/admin/x"),
            ("/%20admin", "/admin"),
            ("/admin%E2%80%8B", "/admin"),
            ("/admin%EF%BB%BF", "/admin"),
            ("/admin%20.", "/admin"),
            ("/admin.", "/admin"),
            ("/%u0061dmin", "/admin"),
            ("/public/%ef%bc%8e%ef%bc%8e/admin", "/admin"),
            ("/public/..%EF%BC%8Fadmin", "/admin"),
            ("/public/..%EF%BB%BF/admin", "/admin"),
            ("/.well-known/x", "/.well-known/x"),
        ] {
            assert_eq!(PathViews::new(raw).lenient, lenient, "{raw}");
        }
        assert!(PathViews::new("/ADMIN%20")
            .route_readings()
            .iter()
            .any(|r| r.as_ref() == "/admin"));
    }

    #[test]
    fn control_characters_and_endless_encodings_are_refused() {
        for raw in [
            "/admin%00",
            "/admin%2500",
            "/admin%09",
            "/admin%0a",
            "/admin%0D%0A",
            "/admin%7f",
            "/admin%C2%85",
            "/a%252525252525252525252fb",
            "/%c0%afadmin",
            "/%C1%9Cadmin",
            "/%e0%80%afadmin",
        ] {
            assert!(PathViews::new(raw).refused().is_some(), "{raw}");
        }
        for raw in ["/", "/admin%20x", "/caf%C3%A9", "/a%2fb", "/100%", "/%zz"] {
            assert_eq!(PathViews::new(raw).refused(), None, "{raw}");
        }
    }

    #[test]
    fn an_encoded_query_or_fragment_does_not_hide_the_rest() {
        for raw in [
            "/public/x%3f%2f..%2f..%2fadmin/secret.txt",
            "/public/x%23%2f..%2f..%2fadmin/secret.txt",
            "/public/x%253f%2f..%2f..%2fadmin",
        ] {
            let v = PathViews::new(raw);
            assert!(
                v.all().iter().any(|r| r.starts_with("/admin")),
                "{raw}: {:?}",
                v.all()
            );
        }
        // A `?` in a page name is still a path.
        let v = PathViews::new("/wiki/What%3F");
        assert!(v.all().iter().all(|r| r.starts_with("/wiki/What")), "{v:?}");
    }

    #[test]
    fn what_is_forwarded_is_read_too() {
        // `remove_dot_segments` drops the segment `x%2Fy` whole; the app decodes the rest.
        let v = PathViews::new("/x%2fy/../admin%2fsecret.txt");
        assert_eq!(v.forward, "/admin%2Fsecret.txt");
        assert!(v
            .route_readings()
            .iter()
            .any(|r| r.as_ref() == "/admin/secret.txt"));
        let v = PathViews::new("/public/a%2fb/../..%2fadmin/secret.txt");
        assert!(v.all().contains(&"/admin/secret.txt"), "{:?}", v.all());
        // Split across two decoding rounds: still one overlong `/`, one control character.
        assert!(PathViews::new("/public/..%C0%25AFadmin")
            .refused()
            .is_some());
        assert!(PathViews::new("/public/%C2%2585").refused().is_some());
        // A fullwidth slash split the same way is mapped; `‥` is `..` to NFKC.
        assert!(PathViews::new("/public/..%EF%25BC%258Fadmin")
            .all()
            .contains(&"/admin"));
        assert!(PathViews::new("/public/%E2%80%A5/admin")
            .all()
            .contains(&"/admin"));
    }

    #[test]
    fn the_plain_shortcut_agrees_with_the_full_reading() {
        // Every string of up to 6 characters over an alphabet that reaches every branch of
        // `plain`: where it says "plain", the full reading must be the path itself.
        let alphabet = ['/', 'a', 'A', '.', '-', 'p', 'h'];
        let mut checked = 0;
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            if plain(&s) {
                let full = PathViews::read(&s);
                assert!(full.all().iter().all(|r| *r == s), "{s}: {full:?}");
                assert!(!full.faces_every_route() && full.refused().is_none(), "{s}");
                checked += 1;
            }
            if s.len() < 6 {
                for c in alphabet {
                    stack.push(format!("{s}{c}"));
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn plain_paths_are_their_own_readings() {
        for raw in ["/", "/a/b", "/a.json/b", "/a-b_c~d/", "/admin/x.tar.gz"] {
            assert!(plain(raw), "{raw}");
            let fast = PathViews::new(raw);
            assert!(fast.all().iter().all(|r| *r == raw), "{raw}");
        }
        for raw in [
            "",
            "a",
            "//a",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/.well-known",
            "/a.",
            "/a/b.",
            "/index.php/x",
            "/INDEX.PHP/x",
            "/a%2fb",
            "/a;b",
            "/a b",
            "/a\\b",
            "/é",
        ] {
            assert!(!plain(raw), "{raw}");
        }
    }

    #[test]
    fn dot_segments_face_every_route() {
        for raw in [
            "//admin%2f..%2fx",
            "/%2fadmin%2f..%2fx",
            "/x%2f..%2fadmin%2f%2f..%2fsecret.txt",
            "/x/..%2fadmin%2f%2f..%2fz",
            "/a/%2e%2e/b",
            "/a/..;/b",
            "/a/.%20/b",
        ] {
            assert!(PathViews::new(raw).faces_every_route(), "{raw}");
        }
        for raw in ["/", "/a/b", "/a.b/c", "/.well-known/x", "/a/...", "/a%2fb"] {
            assert!(!PathViews::new(raw).faces_every_route(), "{raw}");
        }
        // A PHP front controller's PATH_INFO must be public too.
        assert!(PathViews::new("/public/index.php/admin")
            .all()
            .contains(&"/admin"));
    }

    #[test]
    fn fullwidth_letters_and_php_front_controllers() {
        assert!(PathViews::new("/%ef%bd%81dmin").lenient == "/admin");
        let has = |raw: &str, want: &str| {
            PathViews::new(raw)
                .route_readings()
                .iter()
                .any(|r| r.as_ref() == want)
        };
        assert!(has("/index.php/admin", "/admin"));
        assert!(has("/app.php/admin/users", "/admin/users"));
        assert!(has("/x/INDEX.PHP/admin", "/admin"));
        assert!(!has("/index.php", "/"));
        // %u escapes to control characters are refused like percent ones.
        assert!(PathViews::new("/public/%u0000").refused().is_some());
    }

    #[test]
    fn decoded_reading_keeps_dot_segments() {
        // What Werkzeug, gunicorn and uvicorn route on: `/admin/<path>` matches.
        let v = PathViews::new("/admin%2f..%2fx");
        assert_eq!(v.decoded, "/admin/../x");
        assert_eq!(v.resolved, "/x");
        assert!(v.route_readings().iter().any(|r| r.starts_with("/admin/")));
        assert!(v.all().contains(&"/admin/../x"));
    }

    #[test]
    fn loose_readings_for_routes() {
        let has = |raw: &str, want: &str| {
            PathViews::new(raw)
                .route_readings()
                .iter()
                .any(|r| r.as_ref() == want)
        };
        assert!(has("/ADMIN", "/admin"));
        assert!(has("/admin.json", "/admin"));
        assert!(has("/Admin.JSON/x", "/admin/x"));
        assert!(has("/admin;jsessionid=1", "/admin"));
        assert!(has("/.well-known/x", "/.well-known/x"));
        assert!(has("/admin.tar.gz", "/admin"));
        assert!(has("/admin.x.y/z", "/admin/z"));
        assert!(has("/adm%C4%B1n", "/admin"));
        assert!(has("/ADM%C4%B0N", "/admin"));
        assert!(has("/%C5%BFecret", "/secret"));
        assert!(has("/\u{212a}ey", "/key"));
        assert_eq!(PathViews::new("/a").route_readings().len(), 1);
    }
}
