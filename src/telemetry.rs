//! Logging setup: text or JSON lines through `tracing`, filtered by `log.level`
//! (RUST_LOG-style directives). Tokens, secrets and cookies are never passed to the
//! logger in the first place: secrets are `Secret` (Debug prints `<redacted>`) and the
//! access log records the path without its query.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op (tests).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Every line carries its request's span (the request id).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
