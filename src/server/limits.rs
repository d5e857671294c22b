//! Connection lifecycle limits shared by every listener: a deadline for the first bytes of a
//! connection (before hyper has chosen HTTP/1 or HTTP/2, when its own header timeout does not
//! run yet: a silent socket would hold a connection slot forever), and a cap on the
//! connections one client address may hold open.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4): reading stops as soon as the first bytes
/// differ from it (HTTP/1) or all of it has arrived (HTTP/2).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of an HTTP/2 frame header; its fourth byte is the frame type.
const H2_FRAME_HEADER: usize = 9;
/// The SETTINGS frame type, which must follow the preface (RFC 9113 §3.4).
const H2_SETTINGS: u8 = 0x4;

/// Reads the first bytes of a connection within `deadline`, enough for hyper to tell
/// HTTP/1 from HTTP/2 (for HTTP/2: the preface and the header of the client's first frame,
/// which must be SETTINGS), and returns the connection with them put back in front.
pub(crate) async fn sniff<I>(mut io: I, deadline: Duration) -> io::Result<Prefixed<I>>
where
    I: AsyncRead + Unpin,
{
    let mut buf = [0u8; H2_PREFACE.len() + H2_FRAME_HEADER];
    let mut n = 0;
    let read = async {
        while let Some(rest) = buf.get_mut(n..) {
            if rest.is_empty() {
                break;
            }
            let got = io.read(rest).await?;
            if got == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            n += got;
            let seen = buf.get(..n.min(H2_PREFACE.len())).unwrap_or_default();
            if !H2_PREFACE.starts_with(seen) {
                break;
            }
        }
        // An HTTP/2 client whose first frame is not SETTINGS is not one (hyper would
        // refuse it anyway); refusing here frees the slot at once.
        let is_h2 = n == buf.len() && buf.starts_with(H2_PREFACE);
        if is_h2 && buf.get(H2_PREFACE.len() + 3) != Some(&H2_SETTINGS) {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        Ok::<(), io::Error>(())
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(Prefixed {
        prefix: buf.get(..n).unwrap_or_default().to_vec(),
        at: 0,
        inner: io,
    })
}

/// A connection with bytes already read put back in front of it.
#[derive(Debug)]
pub(crate) struct Prefixed<I> {
    prefix: Vec<u8>,
    at: usize,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.at..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(out.remaining());
            out.put_slice(rest.get(..n).unwrap_or_default());
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Open connections per client address, capped.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; its slot is released when dropped.
#[derive(Debug)]
pub(crate) struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A slot for `ip`, or `None` when it already holds `cap` connections.
    pub(crate) fn admit(table: &Arc<PerIp>, ip: IpAddr, cap: usize) -> Option<IpSlot> {
        let mut open = table.open.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.table.open.lock() {
            if let Some(n) = open.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sniff_puts_the_bytes_back_and_times_out_on_silence() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut io = sniff(server, Duration::from_secs(1)).await.unwrap();
        let mut got = vec![0u8; 16];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
        // A long HTTP/1 head fills the sniff buffer and still passes, whole.
        let (mut client, server) = tokio::io::duplex(256);
        let head = b"GET /a/rather/long/path/that/fills/the/buffer HTTP/1.1\r\nHost: x\r\n\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut client, head)
            .await
            .unwrap();
        let mut io = sniff(server, Duration::from_secs(1)).await.unwrap();
        let mut got = vec![0u8; head.len()];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, head);

        let (_silent, server) = tokio::io::duplex(64);
        let err = sniff(server, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        // HTTP/2: the preface alone is not enough within the deadline; with the client's
        // SETTINGS frame header it passes and every byte comes back.
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, H2_PREFACE)
            .await
            .unwrap();
        let err = sniff(server, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let (mut client, server) = tokio::io::duplex(64);
        let settings = [0u8, 0, 0, H2_SETTINGS, 0, 0, 0, 0, 0];
        tokio::io::AsyncWriteExt::write_all(&mut client, H2_PREFACE)
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, &settings)
            .await
            .unwrap();
        let mut io = sniff(server, Duration::from_secs(1)).await.unwrap();
        let mut got = vec![0u8; H2_PREFACE.len() + settings.len()];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(got.get(H2_PREFACE.len() + 3), Some(&H2_SETTINGS));
    }

    #[test]
    fn per_ip_cap_and_release() {
        let t = Arc::new(PerIp::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = PerIp::admit(&t, ip, 2).unwrap();
        let _b = PerIp::admit(&t, ip, 2).unwrap();
        assert!(PerIp::admit(&t, ip, 2).is_none());
        drop(a);
        assert!(PerIp::admit(&t, ip, 2).is_some());
    }
}
