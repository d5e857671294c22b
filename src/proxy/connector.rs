//! Connects to the one configured upstream, over TCP, TLS or a Unix socket, whatever the URI.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

/// Where to connect.
#[derive(Clone)]
pub(crate) enum Dest {
    /// `host:port`.
    Tcp(String),
    /// `host:port` over TLS, with the server name to verify.
    Tls(
        String,
        rustls_pki_types::ServerName<'static>,
        tokio_rustls::TlsConnector,
    ),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Debug for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Tcp(a) => write!(f, "tcp {a}"),
            Dest::Tls(a, ..) => write!(f, "tls {a}"),
            Dest::Unix(p) => write!(f, "unix {}", p.display()),
        }
    }
}

/// A connector that always dials the configured upstream.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    dest: Arc<Dest>,
}

impl Connector {
    /// A connector for `dest`.
    pub(crate) fn new(dest: Dest) -> Self {
        Connector {
            dest: Arc::new(dest),
        }
    }
}

/// An upstream connection.
#[derive(Debug)]
pub(crate) enum Stream {
    /// TCP.
    Tcp(TokioIo<TcpStream>),
    /// Unix socket.
    Unix(TokioIo<UnixStream>),
    /// TLS over TCP.
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

async fn tcp(addr: &str) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let dest = self.dest.clone();
        Box::pin(async move {
            match &*dest {
                Dest::Tcp(addr) => Ok(Stream::Tcp(TokioIo::new(tcp(addr).await?))),
                Dest::Tls(addr, name, connector) => {
                    let tls = connector.connect(name.clone(), tcp(addr).await?).await?;
                    Ok(Stream::Tls(Box::new(TokioIo::new(tls))))
                }
                Dest::Unix(path) => {
                    Ok(Stream::Unix(TokioIo::new(UnixStream::connect(path).await?)))
                }
            }
        })
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Calls the same method on whichever stream this is.
macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
            Stream::Tls($s) => {
                let $s = $s.as_mut();
                $e
            }
        }
    };
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
}
