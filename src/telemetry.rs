//! Logging: the subscriber (text or JSON lines on stderr, filtered by `log.level` with
//! RUST_LOG-style directives, colour only on a terminal) and the access log's caller slot.
//!
//! Tokens, secrets and cookies are never passed to the logger in the first place: secrets
//! are `Secret` (Debug prints `<redacted>`), the access log records the path without its
//! query and names the caller by username (or `ci:<project>`), never by a credential.

use std::cell::RefCell;
use std::future::Future;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::identity::Principal;

/// The tracing target of the one line written per request.
pub const ACCESS_TARGET: &str = "labgate::access";

/// Installs the global subscriber; a second call is a no-op (tests).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    // The level can change while serving (a configuration reload).
    match format {
        // Every line carries its request's span (the request id).
        LogFormat::Json => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                let _ = LEVEL.set(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }));
            }
        }
        LogFormat::Text => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                let _ = LEVEL.set(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }));
            }
        }
    }
}

/// Sets the log level or filter of the running process (`log.level` after a reload).
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    match LEVEL.get() {
        Some(set) => set(filter),
        None => Err("logging was not set up by labgate".into()),
    }
}

/// Replaces the filter of the subscriber [`init`] installed.
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

static LEVEL: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

/// Whether log lines are coloured: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>). A file, a pipe or a container
/// runtime's log collector gets plain text.
pub fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// Whether the access line is written at the current level; when it is not, nothing is
/// prepared for it (no copy of the path, no client address worked out).
pub fn access_enabled() -> bool {
    tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
}

tokio::task_local! {
    /// Who the request being served is from, once the authenticate phase knows.
    static CALLER: RefCell<Option<Principal>>;
}

/// Tells the access log who the current request is from (the authenticate phase, for
/// admitted and refused callers alike). Outside [`with_caller`] it does nothing. Keeps a
/// reference to the principal's session: no allocation.
pub fn record_caller(p: &Principal) {
    let _ = CALLER.try_with(|c| {
        if let Ok(mut slot) = c.try_borrow_mut() {
            *slot = Some(p.clone());
        }
    });
}

/// One request's future with a caller slot: await it, then [`caller`] says whoever
/// [`record_caller`] named meanwhile.
pub type WithCaller<F> = tokio::task::futures::TaskLocalFuture<RefCell<Option<Principal>>, F>;

/// Gives one request's future a caller slot.
pub fn with_caller<F: Future>(fut: F) -> WithCaller<F> {
    CALLER.scope(RefCell::new(None), fut)
}

/// The caller [`record_caller`] named in a finished [`with_caller`] future (`None`:
/// anonymous).
pub fn caller<F: Future>(scoped: std::pin::Pin<&mut WithCaller<F>>) -> Option<Principal> {
    scoped.take_value().and_then(RefCell::into_inner)
}

/// A string from the network written into a log line so that it cannot break the line or
/// forge a field: bytes outside visible ASCII, `"` and `\` are percent-encoded (the
/// encoding a URL path already uses, so an escaped path still reads as the path).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0.as_bytes();
        let mut clean_from = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if matches!(b, b'!'..=b'~') && b != b'"' && b != b'\\' {
                continue;
            }
            // `i` and `clean_from` are at ASCII bytes (or the start), so char boundaries.
            f.write_str(self.0.get(clean_from..i).unwrap_or(""))?;
            write!(f, "%{b:02X}")?;
            clean_from = i + 1;
        }
        f.write_str(self.0.get(clean_from..).unwrap_or(""))
    }
}

/// `text` for a terminal or a config comment: control characters (`\r`, ESC, line
/// breaks) shown as `\u{..}` escapes, everything else as it is (unlike [`Escaped`], which
/// is for log fields and percent-encodes spaces and non-ASCII too).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(
            colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None), "a pipe or a file");
        assert!(!colour(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn escaped_keeps_paths_readable_and_lines_whole() {
        for (raw, logged) in [
            ("/reports/2026", "/reports/2026"),
            ("/a%20b", "/a%20b"),
            ("/a b", "/a%20b"),
            ("/x\"y\\z", "/x%22y%5Cz"),
            ("/line\nbreak\r", "/line%0Abreak%0D"),
            ("/é", "/%C3%A9"),
            ("/\u{1b}[31mred", "/%1B[31mred"),
            ("", ""),
            ("ci:acme/deployer", "ci:acme/deployer"),
        ] {
            assert_eq!(Escaped(raw).to_string(), logged, "{raw:?}");
        }
    }
}
