//! The soak test's callers and their tally: signed-in browsers, forward-auth callers, CI
//! jobs and anonymous clients, each sending to the two replicas in turn the way a load
//! balancer would (a refused connection is tried on the other replica), and every answer
//! judged against what the fault in force at the time allows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Client, RequestBuilder};

/// Who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// A signed-in browser: `GET /app/...` with its session cookie.
    Browser,
    /// A front proxy asking `/oauth2/auth` about a signed-in user's request.
    ForwardAuth,
    /// A GitLab CI job with its ID token on `/deploy/...`.
    CiJob,
    /// Nobody: no cookie, no token.
    Anonymous,
}

impl Class {
    /// The answer when nothing is broken.
    pub fn normal(self) -> u16 {
        match self {
            Class::Browser | Class::CiJob => 200,
            Class::ForwardAuth => 202,
            Class::Anonymous => 401,
        }
    }
}

/// The fault in force. It stays in force from the moment it is injected until the probes
/// have seen every replica answer normally again after it was repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    RedisDown,
    GitlabSlow,
    GitlabErrors,
    UpstreamDown,
    CertificateReload,
    Rolling,
}

impl Fault {
    fn from_u8(v: u8) -> Fault {
        [
            Fault::None,
            Fault::RedisDown,
            Fault::GitlabSlow,
            Fault::GitlabErrors,
            Fault::UpstreamDown,
            Fault::CertificateReload,
            Fault::Rolling,
        ]
        .get(usize::from(v))
        .copied()
        .unwrap_or(Fault::None)
    }

    /// Whether `status` is an acceptable answer to `class` while this fault is in force.
    /// Redis down: fail closed (503) for whatever needs the session store. Upstream down:
    /// 502 for what is proxied. GitLab slow or failing, a certificate reload, a replica
    /// rolling: nothing but the normal answer (sessions are served within grace, the
    /// balancer moves to the other replica).
    pub fn allows(self, class: Class, status: u16) -> bool {
        if status == class.normal() {
            return true;
        }
        match self {
            Fault::RedisDown => {
                matches!(class, Class::Browser | Class::ForwardAuth) && status == 503
            }
            Fault::UpstreamDown => matches!(class, Class::Browser | Class::CiJob) && status == 502,
            _ => false,
        }
    }
}

/// Everything the callers saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answers by caller and status.
    pub answers: BTreeMap<(Class, u16), u64>,
    /// Requests a refused connection sent to the other replica.
    pub failovers: u64,
    /// Answers (or transport errors) no fault in force allowed.
    pub unexpected: u64,
    /// Of those, 5xx answers.
    pub unexpected_5xx: u64,
    /// The first few, described.
    pub unexpected_examples: Vec<String>,
    /// Signed-in browsers that were told to sign in again.
    pub sessions_lost: u64,
}

impl Tally {
    pub fn requests(&self) -> u64 {
        self.answers.values().sum()
    }
}

/// What the callers and the fault driver share.
pub struct Shared {
    pub started: Instant,
    fault: AtomicU8,
    stop: AtomicBool,
    pub tally: Mutex<Tally>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            started: Instant::now(),
            fault: AtomicU8::new(Fault::None as u8),
            stop: AtomicBool::new(false),
            tally: Mutex::new(Tally::default()),
        }
    }

    pub fn fault(&self) -> Fault {
        Fault::from_u8(self.fault.load(Ordering::SeqCst))
    }

    pub fn set_fault(&self, f: Fault) {
        self.fault.store(f as u8, Ordering::SeqCst);
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn unexpected(&self, what: String, is_5xx: bool) {
        let mut t = self.tally.lock().unwrap();
        t.unexpected += 1;
        if is_5xx {
            t.unexpected_5xx += 1;
        }
        if t.unexpected_examples.len() < 20 {
            t.unexpected_examples.push(format!(
                "{:>7.2}s {what}",
                self.started.elapsed().as_secs_f64()
            ));
        }
    }

    /// Sends one request the way a load balancer would: to `urls[turn % 2]`, or to the other
    /// replica when that one refuses the connection. Judges the answer against the fault in
    /// force when the request started or when it ended. Returns the status, if any.
    pub async fn send(
        &self,
        class: Class,
        urls: &[String; 2],
        turn: usize,
        make: impl Fn(&str) -> RequestBuilder,
    ) -> Option<u16> {
        let before = self.fault();
        for i in 0..2 {
            let Some(base) = urls.get((turn + i) % 2) else {
                break;
            };
            match make(base).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.bytes().await;
                    let after = self.fault();
                    let mut t = self.tally.lock().unwrap();
                    *t.answers.entry((class, status)).or_default() += 1;
                    drop(t);
                    if let Err(e) = body {
                        self.unexpected(format!("{class:?} {base}: body cut off: {e}"), false);
                    } else if !before.allows(class, status) && !after.allows(class, status) {
                        self.unexpected(
                            format!("{class:?} {base}: {status} during {before:?}/{after:?}"),
                            status >= 500,
                        );
                    }
                    return Some(status);
                }
                Err(e) if e.is_connect() => {
                    self.tally.lock().unwrap().failovers += 1;
                }
                Err(e) => {
                    self.unexpected(format!("{class:?} {base}: transport error: {e}"), false);
                    return None;
                }
            }
        }
        self.unexpected(
            format!("{class:?}: both replicas refused the connection"),
            false,
        );
        None
    }
}

/// The pause between two requests of one caller: enough callers at this pace keep both
/// replicas busy without saturating two shared cores.
pub const PACE: Duration = Duration::from_millis(4);

/// GET `path` as an API client (JSON), with whatever the client's cookie jar holds.
pub fn get(c: &Client, base: &str, path: &str) -> RequestBuilder {
    c.get(format!("{base}{path}"))
        .header(ACCEPT, "application/json")
}

/// A forward-auth question as nginx's `auth_request` asks it.
pub fn forward_auth(c: &Client, base: &str, path: &str) -> RequestBuilder {
    c.get(format!("{base}/oauth2/auth"))
        .header("x-original-uri", path)
        .header("x-original-method", "GET")
}

/// A CI job's request with its ID token.
pub fn ci(c: &Client, base: &str, path: &str, token: &str) -> RequestBuilder {
    c.get(format!("{base}{path}"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(ACCEPT, "application/json")
}
