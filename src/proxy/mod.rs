//! Forwarding to the upstream: a pooled keep-alive client, bodies streamed both ways,
//! `Upgrade` (WebSocket) pass-through, and the upstream's faults classified as 502 / 504.
//!
//! The caller has already rewritten the request headers (see `headers`); this module only
//! moves bytes and strips hop-by-hop headers from the response.

mod body;
mod connector;
mod tunnel;

pub(crate) use body::Body;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::config::{UpstreamConfig, UpstreamTarget};
use crate::headers::{strip_fixed_hop_by_hop, strip_hop_by_hop};

/// A connection's share of the listener's limits (its connection permit, its per-client
/// slot), carried in each request's extensions so that a WebSocket tunnel, which outlives
/// the HTTP connection, keeps holding it until the socket closes.
#[derive(Clone)]
pub(crate) struct ConnectionHold {
    /// Never read: holding it is the point.
    _share: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl ConnectionHold {
    /// Holds `share` until the last clone is dropped.
    pub(crate) fn new(share: impl std::any::Any + Send + Sync) -> Self {
        ConnectionHold {
            _share: std::sync::Arc::new(share),
        }
    }
}

impl std::fmt::Debug for ConnectionHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionHold")
    }
}

/// Why forwarding failed, which decides the status code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// The upstream refused or could not be reached (502).
    #[error("upstream unreachable: {0}")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    /// The upstream did not answer in time (504).
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The upstream switched protocols without completing a WebSocket handshake (502).
    #[error("upstream answered 101 without a WebSocket handshake: {0}")]
    Handshake(&'static str),
}

impl ProxyError {
    /// The status to answer with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unreachable(_) | ProxyError::Handshake(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// The upstream application.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<connector::Connector, Incoming>,
    /// `http://authority` prefix used to build absolute URIs for the client.
    base: String,
    timeout: Duration,
    /// A WebSocket tunnel with no traffic for this long is closed (`server.idle_timeout`).
    tunnel_idle: Duration,
    /// This runtime's share of `upstream.max_connections` (`None`: no limit): a request
    /// holds one until its response body is done, and waits for one when none is free.
    slots: Option<Arc<Semaphore>>,
}

impl Upstream {
    /// A pooled client for the configured upstream, for one of `runtimes` worker runtimes
    /// (each gets its share of `max_connections`).
    pub fn new(
        cfg: &UpstreamConfig,
        tunnel_idle: Duration,
        runtimes: usize,
    ) -> Result<Self, String> {
        let (dest, base) = match &cfg.target {
            UpstreamTarget::Http {
                tls: true,
                authority,
            } => {
                let host = authority.host().trim_matches(['[', ']']).to_owned();
                let name = rustls_pki_types::ServerName::try_from(host)
                    .map_err(|e| format!("upstream.url: {e}"))?;
                (
                    connector::Dest::Tls(authority.to_string(), name, tls_connector(cfg)?),
                    format!("http://{authority}"),
                )
            }
            UpstreamTarget::Http { authority, .. } => (
                connector::Dest::Tcp(authority.to_string()),
                format!("http://{authority}"),
            ),
            UpstreamTarget::Unix(path) => (
                connector::Dest::Unix(path.clone()),
                "http://localhost".to_owned(),
            ),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .build(connector::Connector::new(dest));
        let slots = (cfg.max_connections > 0).then(|| {
            Arc::new(Semaphore::new(
                cfg.max_connections.div_ceil(runtimes.max(1)).max(1),
            ))
        });
        Ok(Upstream {
            client,
            base,
            timeout: cfg.timeout,
            tunnel_idle,
            slots,
        })
    }

    /// Sends `req` (headers already rewritten; `path_and_query` is what the upstream gets)
    /// and returns the upstream's response with its body streaming. `hold` is the client
    /// connection's share of the limits, kept by a WebSocket tunnel until it closes.
    pub(crate) async fn forward(
        &self,
        mut req: Request<Incoming>,
        path_and_query: &str,
        hold: &ConnectionHold,
    ) -> Result<Response<Body>, ProxyError> {
        let h2_websocket = is_h2_websocket(&req);
        let upgrade = wants_upgrade(&req) || h2_websocket;
        let hold = upgrade.then(|| hold.clone());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        // The Connection-nominated headers were removed before labgate set its own.
        strip_fixed_hop_by_hop(req.headers_mut());
        // What the upstream must answer a WebSocket handshake with (RFC 6455 §4.2.2): proof
        // that it speaks WebSocket, not just a 101 (which would turn the client's socket into
        // a raw pipe to the app that labgate never reads again).
        let mut expected_accept = None;
        if h2_websocket {
            // RFC 8441 §5: a WebSocket over an HTTP/2 stream becomes an RFC 6455 handshake
            // to an HTTP/1.1 upstream. The key is the proxy's own (the h2 client sends none).
            *req.method_mut() = http::Method::GET;
            req.extensions_mut().remove::<hyper::ext::Protocol>();
            let key = websocket_key();
            expected_accept = Some(websocket_accept(&key));
            let h = req.headers_mut();
            if let Ok(key) = HeaderValue::from_str(&key) {
                h.insert(SEC_WEBSOCKET_KEY, key);
            }
        } else if upgrade {
            expected_accept = req
                .headers()
                .get(SEC_WEBSOCKET_KEY)
                .and_then(|k| k.to_str().ok())
                .map(websocket_accept);
        }
        if upgrade {
            // Exactly the one protocol labgate tunnels, whatever list the client offered.
            let h = req.headers_mut();
            h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
        let mut uri = String::with_capacity(self.base.len() + path_and_query.len());
        uri.push_str(&self.base);
        uri.push_str(path_and_query);
        // An unparsable target was already rejected by the router; fall back to "/".
        *req.uri_mut() = uri.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
        *req.version_mut() = http::Version::HTTP_11;

        // A connection slot (at once when one is free, else in turn), then the response
        // head: both within `upstream.timeout`.
        let sent = async {
            let slot = match &self.slots {
                Some(slots) => slots.clone().acquire_owned().await.ok(),
                None => None,
            };
            (slot, self.client.request(req).await)
        };
        let (slot, mut resp) = match tokio::time::timeout(self.timeout, sent).await {
            Ok((slot, Ok(r))) => (slot, r),
            Ok((_, Err(e))) => return Err(ProxyError::Unreachable(e)),
            Err(_) => return Err(ProxyError::Timeout(self.timeout)),
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Dropping the response closes the upstream connection: it is never reused.
            if let Err(why) = check_handshake(&resp, expected_accept.as_deref()) {
                return Err(ProxyError::Handshake(why));
            }
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let tunnel_idle = self.tunnel_idle;
                tokio::spawn(async move {
                    // The tunnel counts against the connection limits until it closes.
                    let _hold = hold;
                    let (Ok(client), Ok(upstream)) = (client_upgrade.await, upstream_upgrade.await)
                    else {
                        tracing::debug!("upgrade did not complete");
                        return;
                    };
                    let client = TokioIo::new(client);
                    let upstream = TokioIo::new(upstream);
                    if let Err(e) = tunnel::splice(client, upstream, tunnel_idle).await {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                });
                let (mut parts, _) = resp.into_parts();
                if h2_websocket {
                    // The h2 client's CONNECT succeeds with 200 and no handshake headers.
                    parts.status = StatusCode::OK;
                    strip_hop_by_hop(&mut parts.headers);
                    parts.headers.remove("sec-websocket-accept");
                }
                return Ok(Response::from_parts(parts, Body::empty()));
            }
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::Upstream(body, slot)))
    }
}

/// rustls for an https upstream: the platform's roots plus `upstream.ca_file`; never an
/// "insecure" mode.
fn tls_connector(cfg: &UpstreamConfig) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(ca) = &cfg.ca_file {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("upstream.ca_file: cannot read {}: {e}", ca.display()))?;
        for c in certs {
            let c = c.map_err(|e| format!("upstream.ca_file: {}: {e}", ca.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("upstream.ca_file: {}: {e}", ca.display()))?;
        }
    }
    let mut config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

const SEC_WEBSOCKET_KEY: http::HeaderName = http::HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: http::HeaderName =
    http::HeaderName::from_static("sec-websocket-accept");

/// Whether a 101 completes the WebSocket handshake labgate offered: `Upgrade: websocket`
/// and the `Sec-WebSocket-Accept` of the key sent (RFC 6455 §4.2.2, §4.1 items 2-4). Any
/// other 101 (to a request labgate offered no upgrade, an `h2c` switch, a missing or wrong
/// accept key) is refused: the connection would stop being HTTP that labgate reads.
fn check_handshake<B>(
    resp: &Response<B>,
    expected_accept: Option<&str>,
) -> Result<(), &'static str> {
    let Some(expected) = expected_accept else {
        return Err("no WebSocket handshake was offered");
    };
    if resp.version() != http::Version::HTTP_11 {
        return Err("a 101 that is not HTTP/1.1");
    }
    let h = resp.headers();
    let one = |name: &http::HeaderName| {
        let mut all = h.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().map(str::trim),
            _ => None,
        }
    };
    if !one(&UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err("the answer does not upgrade to websocket");
    }
    if !h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    {
        return Err("the answer's Connection does not name upgrade");
    }
    if one(&SEC_WEBSOCKET_ACCEPT) != Some(expected) {
        return Err("Sec-WebSocket-Accept does not match the key sent");
    }
    Ok(())
}

/// `Sec-WebSocket-Accept` for `key`: base64 of the SHA-1 of the key and RFC 6455's GUID.
fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut sha = sha1::Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// An HTTP/2 extended CONNECT for a WebSocket (RFC 8441): `:method CONNECT`,
/// `:protocol websocket`.
pub(crate) fn is_h2_websocket<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_2
        && req.method() == http::Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (RFC 6455 §4.1).
fn websocket_key() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// An HTTP/1.1 `GET` with `Connection: upgrade` + `Upgrade: websocket` and one valid
/// `Sec-WebSocket-Key` (16 bytes, base64: RFC 6455 §4.1 item 7). Other protocols (`h2c`,
/// TLS upgrades) are not tunnelled: a tunnel would outlive the request labgate judged.
fn wants_upgrade<B>(req: &Request<B>) -> bool {
    use base64::Engine;
    let mut keys = req.headers().get_all(SEC_WEBSOCKET_KEY).iter();
    let key_ok = match (keys.next(), keys.next()) {
        (Some(k), None) => base64::engine::general_purpose::STANDARD
            .decode(k.as_bytes())
            .is_ok_and(|b| b.len() == 16),
        _ => false,
    };
    key_ok
        && req.method() == http::Method::GET
        && req.version() == http::Version::HTTP_11
        && req
            .headers()
            .get(UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',').any(|p| {
                    p.trim()
                        .split('/')
                        .next()
                        .is_some_and(|n| n.eq_ignore_ascii_case("websocket"))
                })
            })
        && req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_rfc_6455() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn only_a_complete_handshake_opens_a_tunnel() {
        let resp = |headers: &[(&str, &str)]| {
            let mut r = Response::builder().status(101);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.body(()).unwrap()
        };
        let good = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ];
        let accept = Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(check_handshake(&resp(&good), accept).is_ok());
        assert!(check_handshake(&resp(&good), None).is_err());
        let mut old = resp(&good);
        *old.version_mut() = http::Version::HTTP_10;
        assert!(check_handshake(&old, accept).is_err());
        for bad in [
            &good[..2],
            &[good[0], good[2]][..],
            &[("upgrade", "h2c"), good[1], good[2]][..],
            &[good[0], good[1], ("sec-websocket-accept", "x")][..],
            &[good[0], good[1], good[2], good[2]][..],
        ] {
            assert!(check_handshake(&resp(bad), accept).is_err(), "{bad:?}");
        }
    }
}
