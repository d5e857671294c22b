//! `labgate healthcheck [--ready]`: a probe for images without curl or a shell (Docker's
//! `HEALTHCHECK`, a Kubernetes `exec` probe). It connects to the configured main listener
//! (`server.listen`; an unspecified address is reached on loopback), GETs `/ping` (liveness)
//! or `/ready` (readiness: GitLab discovery loaded, session store reachable; SPEC §3) and
//! reports one line. Short timeouts: a hung labgate is an unhealthy one.
//!
//! With `server.tls_cert_file` it speaks HTTPS and accepts only the certificate the config
//! names (pinned: the address it dials is not a name the certificate covers), or, with
//! `--insecure`, any certificate, which is refused unless the address is a loopback one.
//!
//! It owns the probe only; the endpoints it asks are `admin.rs`'s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, HOST, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::config::ServerConfig as ServerSettings;

/// Time to establish the TCP connection, and again for the TLS handshake: a listener that
/// accepts nothing within it is as good as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Time for the answer once connected: `/ready` may wait on GitLab discovery or the
/// session store, which labgate itself bounds well below this.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(4);

/// The most of an error body quoted in the reason (labgate's answers are one short line).
const REASON_BYTES: usize = 200;

/// What to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET /ping`: the process serves requests.
    Live,
    /// `GET /ready`: and it can sign people in.
    Ready,
}

impl Probe {
    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Probe::Live => "/ping",
            Probe::Ready => "/ready",
        }
    }
}

/// Why the probe failed; each names the address or URL it was about.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    /// Nothing listens, or the connection was refused.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The listener did not accept (or finish the TLS handshake) in time.
    #[error("no connection to {addr} within {timeout:?}")]
    ConnectTimeout {
        /// The address dialled.
        addr: SocketAddr,
        /// [`CONNECT_TIMEOUT`].
        timeout: Duration,
    },
    /// The TLS handshake failed (including a certificate other than the configured one).
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        /// The address dialled.
        addr: SocketAddr,
        /// The TLS error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS client could not be set up (the provider lacks the protocol versions).
    #[error("cannot set up TLS: {0}")]
    TlsSetup(#[source] rustls::Error),
    /// The configured certificate cannot be read, so there is nothing to pin.
    #[error("server.tls_cert_file: {0}")]
    Certificate(String),
    /// `--insecure` towards an address that is not this machine's.
    #[error("--insecure skips certificate verification only towards a loopback address; {addr} is not one: drop --insecure (the configured certificate is checked)")]
    InsecureNotLoopback {
        /// The address that would have been dialled.
        addr: SocketAddr,
    },
    /// The HTTP exchange failed (connection closed, malformed answer).
    #[error("{url}: {source}")]
    Http {
        /// What was asked.
        url: String,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// No whole answer in time.
    #[error("{url}: no answer within {timeout:?}")]
    ResponseTimeout {
        /// What was asked.
        url: String,
        /// [`RESPONSE_TIMEOUT`].
        timeout: Duration,
    },
    /// labgate answered, but not 200.
    #[error("{url} answered {status}: {reason}")]
    Status {
        /// What was asked.
        url: String,
        /// The status.
        status: StatusCode,
        /// The start of the body (labgate says what is missing, e.g. "GitLab discovery not loaded").
        reason: String,
    },
}

/// The address a probe dials for `listen`: an unspecified address (`0.0.0.0`, `[::]`)
/// accepts on loopback too, so that is where it is reached.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Asks labgate's main listener; `Ok` holds the one-line report of a healthy answer.
pub async fn check(
    server: &ServerSettings,
    probe: Probe,
    insecure: bool,
) -> Result<String, Unhealthy> {
    let addr = probe_addr(server.listen);
    let tls = match &server.tls_cert_file {
        None => None,
        Some(_) if insecure && !addr.ip().is_loopback() => {
            return Err(Unhealthy::InsecureNotLoopback { addr });
        }
        Some(_) if insecure => Some(client_config(Arc::new(AnyCertificate(provider())))?),
        Some(file) => {
            let pinned = CertificateDer::pem_file_iter(file)
                .map_err(|e| {
                    Unhealthy::Certificate(format!("cannot read {}: {e}", file.display()))
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    Unhealthy::Certificate(format!(
                        "{} is not a PEM certificate chain: {e}",
                        file.display()
                    ))
                })?;
            let Some(leaf) = pinned.into_iter().next() else {
                return Err(Unhealthy::Certificate(format!(
                    "{} holds no certificate",
                    file.display()
                )));
            };
            Some(client_config(Arc::new(Pinned {
                leaf,
                provider: provider(),
            }))?)
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{}", probe.path());
    let tcp = connect(addr).await?;
    match tls {
        None => exchange(tcp, addr, probe, &url).await,
        Some(config) => {
            let connector = tokio_rustls::TlsConnector::from(config);
            let name = ServerName::IpAddress(addr.ip().into());
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| Unhealthy::ConnectTimeout {
                    addr,
                    timeout: CONNECT_TIMEOUT,
                })?
                .map_err(|source| Unhealthy::Tls { addr, source })?;
            exchange(stream, addr, probe, &url).await
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, Unhealthy> {
    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| Unhealthy::ConnectTimeout {
            addr,
            timeout: CONNECT_TIMEOUT,
        })?
        .map_err(|source| Unhealthy::Connect { addr, source })
}

/// One HTTP/1.1 GET of `probe`'s path on `io`, bounded by [`RESPONSE_TIMEOUT`].
async fn exchange<T>(io: T, addr: SocketAddr, probe: Probe, url: &str) -> Result<String, Unhealthy>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| Unhealthy::Http {
        url: url.to_owned(),
        source,
    };
    let answer = async {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(http)?;
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.uri_mut() = Uri::from_static(probe.path());
        let headers = req.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
            headers.insert(HOST, host);
        }
        headers.insert(USER_AGENT, HeaderValue::from_static("labgate-healthcheck"));
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        let request = async {
            let resp = send.send_request(req).await.map_err(http)?;
            let status = resp.status();
            // A longer body is cut: the reason is its first line.
            let body = Limited::new(resp.into_body(), REASON_BYTES)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Ok::<_, Unhealthy>((status, body))
        };
        // The connection is driven here, not by a spawned task: it ends with the probe.
        tokio::pin!(conn);
        tokio::select! {
            r = request => r,
            Err(e) = &mut conn => Err(http(e)),
        }
    };
    let (status, body) = tokio::time::timeout(RESPONSE_TIMEOUT, answer)
        .await
        .map_err(|_| Unhealthy::ResponseTimeout {
            url: url.to_owned(),
            timeout: RESPONSE_TIMEOUT,
        })??;
    if status == StatusCode::OK {
        Ok(format!("{url} answered {status}"))
    } else {
        Err(Unhealthy::Status {
            url: url.to_owned(),
            status,
            reason: one_line(&body),
        })
    }
}

/// The body's first line, trimmed, so that the report stays one line.
fn one_line(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        "(no body)".into()
    } else {
        line.to_owned()
    }
}

/// The crypto provider labgate's server uses (ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client speaking HTTP/1.1 that trusts what `verifier` accepts.
fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<Arc<ClientConfig>, Unhealthy> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(Unhealthy::TlsSetup)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts exactly the configured certificate: the probe dials an IP address the
/// certificate need not name, and the file is the server's own, so byte equality is the
/// strongest check there is. The handshake signatures are verified as usual.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the one in server.tls_cert_file".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `--insecure` (loopback only): any certificate; the handshake signatures are still
/// verified, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `labgate healthcheck`: exit 0 healthy, 1 unhealthy (Docker reserves 2), one line
/// either way. The config is read as `run` reads it (file, environment, flags); the
/// published-secret refusal is `run`'s to report, not the probe's.
pub fn command(
    file: Option<&std::path::Path>,
    overrides: &crate::config::Overrides,
    ready: bool,
    insecure: bool,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let config = match crate::config::load(file, std::env::vars(), overrides) {
        Ok(c) => c,
        Err(e) => {
            let first = e
                .problems
                .first()
                .map_or_else(String::new, |p| format!(": {}: {}", p.key, p.message));
            let more = match e.problems.len() {
                0 | 1 => String::new(),
                n => format!(" (and {} more: labgate check lists them)", n - 1),
            };
            eprintln!("unhealthy: configuration error{first}{more}");
            return ExitCode::FAILURE;
        }
    };
    let probe = if ready { Probe::Ready } else { Probe::Live };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(check(&config.server, probe, insecure)));
    let printable = crate::telemetry::printable;
    match result {
        // What the listener answered is shown escaped: a stranger on the port must not
        // repaint the line (`\r`, ANSI) into "healthy".
        Ok(Ok(report)) => {
            println!("healthy: {}", printable(&report.to_string()));
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: {}", printable(&e.to_string()));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_probed_on_loopback() {
        for (listen, dialled) in [
            ("0.0.0.0:4180", "127.0.0.1:4180"),
            ("[::]:4180", "[::1]:4180"),
            ("10.1.2.3:8443", "10.1.2.3:8443"),
            ("127.0.0.1:1", "127.0.0.1:1"),
        ] {
            let listen: SocketAddr = listen.parse().unwrap_or_else(|_| unreachable!());
            assert_eq!(probe_addr(listen).to_string(), dialled, "{listen}");
        }
    }

    #[test]
    fn the_reason_is_one_line() {
        assert_eq!(
            one_line("GitLab discovery not loaded\nmore"),
            "GitLab discovery not loaded"
        );
        assert_eq!(one_line("  \n"), "(no body)");
    }
}
