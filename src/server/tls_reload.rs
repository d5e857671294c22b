//! The HTTPS listener's certificate, re-read when its files change (cert-manager, Let's
//! Encrypt renewals): new connections get the new certificate, open ones keep theirs, a
//! bad new file is logged and the old certificate stays.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_rustls::rustls::ServerConfig;

/// Modification times of the certificate and key files.
type Stamp = Option<(SystemTime, SystemTime)>;

/// The current server certificate and the files it came from.
pub struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<ServerConfig>, Stamp)>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

fn mtimes(cert: &PathBuf, key: &PathBuf) -> Stamp {
    let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

impl TlsReloader {
    /// Loads the certificate; an error here stops labgate at start.
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Arc<TlsReloader>, String> {
        let cfg = crate::server::tls::server_config(&cert, &key)?;
        let stamp = mtimes(&cert, &key);
        Ok(Arc::new(TlsReloader {
            cert,
            key,
            current: RwLock::new((cfg, stamp)),
        }))
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let cfg = self
            .current
            .read()
            .map(|c| c.0.clone())
            .unwrap_or_else(|p| p.into_inner().0.clone());
        tokio_rustls::TlsAcceptor::from(cfg)
    }

    /// Re-reads the files if they changed; returns whether a new certificate is in use.
    pub fn reload_if_changed(&self) -> bool {
        let stamp = mtimes(&self.cert, &self.key);
        let unchanged = self.current.read().map(|c| c.1 == stamp).unwrap_or(false);
        if unchanged || stamp.is_none() {
            return false;
        }
        match crate::server::tls::server_config(&self.cert, &self.key) {
            Ok(cfg) => {
                if let Ok(mut c) = self.current.write() {
                    *c = (cfg, stamp);
                }
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // Often the cert and key are written one after the other: try again later.
                tracing::warn!(error = %e, "TLS files changed but do not load yet; keeping the current certificate");
                false
            }
        }
    }

    /// Watches the files every `every` until the process ends.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.reload_if_changed();
            }
        });
    }
}
