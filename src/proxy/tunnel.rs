//! An upgraded connection (WebSocket) spliced to the upstream's, closed when it carries no
//! byte either way for the idle timeout: an idle tunnel would otherwise hold its connection
//! slot for ever (nginx's `proxy_read_timeout` plays this role for it).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Copies both ways until either side closes or nothing moves for `idle`.
pub(crate) async fn splice<A, B>(client: A, upstream: B, idle: Duration) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let moved = Arc::new(AtomicBool::new(false));
    let mut client = Watched {
        inner: client,
        moved: moved.clone(),
    };
    let mut upstream = Watched {
        inner: upstream,
        moved: moved.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
    loop {
        tokio::select! {
            r = &mut copy => return r.map(|_| ()),
            _ = tick.tick() => {
                if !moved.swap(false, Ordering::Relaxed) {
                    tracing::debug!("idle tunnel closed");
                    return Ok(());
                }
            }
        }
    }
}

/// An I/O object that notes when bytes are read from it.
struct Watched<I> {
    inner: I,
    moved: Arc<AtomicBool>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
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
}
