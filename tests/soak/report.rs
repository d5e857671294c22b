//! The soak test's report: a Markdown page (printed, and written next to the test binary's
//! temporary files) with what the callers saw, what each replica used, and how long each
//! fault took to recover from.

use std::fmt::Write;
use std::time::Duration;

use crate::load::Tally;
use crate::Usage;

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub fn render(
    cycles: usize,
    elapsed: Duration,
    tally: &Tally,
    usage: &[Usage; 2],
    recoveries: &[(String, Duration)],
    drains: &[(String, Duration)],
    gitlab_requests: usize,
) -> String {
    let mut s = String::new();
    let requests = tally.requests();
    let _ = writeln!(
        s,
        "## labgate soak: {cycles} cycle(s) of faults in {:.0} s\n",
        elapsed.as_secs_f64()
    );
    let _ = writeln!(s, "| figure | value |\n| --- | ---: |");
    let _ = writeln!(s, "| requests answered | {requests} |");
    let _ = writeln!(
        s,
        "| requests/s (mean) | {:.0} |",
        requests as f64 / elapsed.as_secs_f64().max(1.0)
    );
    let _ = writeln!(s, "| unexpected answers | {} |", tally.unexpected);
    let _ = writeln!(s, "| of which 5xx | {} |", tally.unexpected_5xx);
    let _ = writeln!(s, "| sessions lost | {} |", tally.sessions_lost);
    let _ = writeln!(
        s,
        "| balancer failovers (refused connections) | {} |",
        tally.failovers
    );
    let _ = writeln!(s, "| requests labgate made to GitLab | {gitlab_requests} |");
    for (i, u) in usage.iter().enumerate() {
        let _ = writeln!(
            s,
            "| replica {}: peak RSS / peak open fds / fds after warm-up → at end | {:.1} MiB / {} / {} → {} |",
            ["a", "b"][i],
            u.peak_rss_kib as f64 / 1024.0,
            u.peak_fds,
            u.fds_after_warm_up,
            u.fds_at_end
        );
    }
    let _ = writeln!(s, "\n| answers | count |\n| --- | ---: |");
    for ((class, status), n) in &tally.answers {
        let _ = writeln!(s, "| {class:?} {status} | {n} |");
    }
    let _ = writeln!(s, "\n| fault | recovered after repair |\n| --- | ---: |");
    for (what, d) in recoveries {
        let _ = writeln!(s, "| {what} | {} |", ms(*d));
    }
    let _ = writeln!(s, "\n| SIGTERM | drained and exited 0 in |\n| --- | ---: |");
    for (what, d) in drains {
        let _ = writeln!(s, "| {what} | {} |", ms(*d));
    }
    if !tally.unexpected_examples.is_empty() {
        let _ = writeln!(
            s,
            "\nUnexpected (first {}):",
            tally.unexpected_examples.len()
        );
        for e in &tally.unexpected_examples {
            let _ = writeln!(s, "- {e}");
        }
    }
    s
}
