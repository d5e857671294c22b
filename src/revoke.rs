//! `labgate sessions revoke --user id:N`: an operator ends every session of one GitLab
//! user in the shared store, for every replica at once, and the audit log says so.

use std::process::ExitCode;

use crate::config::Config;
use crate::oauth::gitlab::Gitlab;
use crate::session::Sessions;

/// Exit code for a usage or configuration problem.
const EXIT_USAGE: u8 = 2;

/// Reads `id:<n>`: a GitLab user id (never a username, which its owner can change).
pub fn parse_user(text: &str) -> Result<u64, String> {
    text.strip_prefix("id:")
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            format!(
                "--user: expected id:<GitLab user id> (e.g. id:42; the number on the user's GitLab profile or in Admin > Users), not {text:?}"
            )
        })
}

/// Ends user `user`'s sessions; exit 0 with how many, 1 when the store failed, 2 for a
/// usage problem or the cookie store (whose sessions live in browsers).
pub fn command(config: &Config, user: &str) -> ExitCode {
    let user_id = match parse_user(user) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("labgate: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if config.session.redis.is_none() {
        eprintln!(
            "labgate: sessions are kept in the browsers' cookies (session.store = \"cookie\"), so there is nothing on the server to revoke. \
             With the Redis store every session can be ended; with the cookie store, end everyone's by rotating session.cookie_secret, \
             or let GitLab's events (gitlab.webhook_secret) make this person's sessions ask GitLab again."
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("labgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let sessions = match Sessions::new(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("labgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Their GitLab tokens too (best effort): a copy of a session a replica still holds
        // cannot be revalidated with them.
        let listed = match sessions.list(user_id).await {
            Ok(listed) => listed.unwrap_or_default(),
            Err(e) => {
                eprintln!("labgate: the session store failed, nothing was revoked: {e}");
                return ExitCode::FAILURE;
            }
        };
        if !listed.is_empty() {
            match Gitlab::new(&config.gitlab, crate::app::redirect_uri(config)) {
                Ok(gitlab) => {
                    for l in &listed {
                        gitlab.revoke(&l.session.access_token).await;
                    }
                }
                Err(e) => eprintln!("labgate: GitLab's tokens were not revoked: {e}"),
            }
        }
        match sessions.end_all(user_id).await {
            Ok(n) => {
                tracing::warn!(target: "labgate::audit", user_id, sessions = n, "an operator revoked every session of a user (labgate sessions revoke)");
                println!("ended {n} session(s) of GitLab user id:{user_id}; replicas stop accepting them within session.redis_cache_ttl");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("labgate: the session store failed, nothing may have been revoked: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_user;

    #[test]
    fn only_numeric_ids_are_read() {
        assert_eq!(parse_user("id:42"), Ok(42));
        for bad in [
            "42",
            "id:",
            "id:0",
            "id:-1",
            "id:+42",
            "id:042",
            "id:18446744073709551616",
            "id:4x",
            "bob",
            "id: 42",
            "username:bob",
        ] {
            assert!(parse_user(bad).is_err(), "{bad}");
        }
    }
}
