//! The embedded demo and test fixtures: a GitLab stand-in and an echo upstream.

/// Runs `labgate dev`.
pub async fn run_demo() -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
