//! A stream with the first bytes of its request put back in front: the
//! listener reads them to choose between the WebSocket upgrade and the
//! HTTP surface, and whichever serves the connection reads them again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::protocol::WS_PATH;

/// `GET /ws` and one more byte: enough to tell the upgrade path apart.
const HEAD: usize = 4 + WS_PATH.len() + 1;

/// The first bytes of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    bytes: [u8; HEAD],
    len: u8,
}

/// A stream that yields `head` before its own bytes.
pub(crate) struct Prefixed<S> {
    head: Head,
    at: u8,
    inner: S,
}

impl<S: AsyncRead + Unpin> Prefixed<S> {
    /// Reads until the head says which path the request is for (at most
    /// [`HEAD`] bytes; fewer when they already differ from `GET /ws`).
    pub(crate) async fn read_head(io: &mut S) -> io::Result<Head> {
        let mut head = Head {
            bytes: [0; HEAD],
            len: 0,
        };
        let want = format!("GET {WS_PATH}");
        while (head.len as usize) < HEAD {
            let n = io.read(&mut head.bytes[head.len as usize..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            head.len += n as u8;
            let got = &head.bytes[..head.len as usize];
            let common = got.len().min(want.len());
            if got[..common] != want.as_bytes()[..common] {
                break;
            }
        }
        Ok(head)
    }
}

impl<S> Prefixed<S> {
    pub(crate) fn new(head: Head, inner: S) -> Self {
        Prefixed { head, at: 0, inner }
    }

    /// Whether the request is `GET /ws` (with a query string or not).
    pub(crate) fn is_websocket_path(&self) -> bool {
        let h = &self.head.bytes[..self.head.len as usize];
        h.len() == HEAD
            && h.starts_with(b"GET ")
            && &h[4..HEAD - 1] == WS_PATH.as_bytes()
            && matches!(h[HEAD - 1], b' ' | b'?')
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.head.len {
            let rest = &this.head.bytes[this.at as usize..this.head.len as usize];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n as u8;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn head_of(request: &[u8]) -> (bool, Vec<u8>) {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(request).await.unwrap();
        drop(a);
        let head = Prefixed::read_head(&mut b).await.unwrap();
        let mut p = Prefixed::new(head, b);
        let ws = p.is_websocket_path();
        let mut all = Vec::new();
        p.read_to_end(&mut all).await.unwrap();
        (ws, all)
    }

    #[tokio::test]
    async fn the_upgrade_path_is_told_apart_and_nothing_is_lost() {
        for (req, ws) in [
            (&b"GET /ws HTTP/1.1\r\n\r\n"[..], true),
            (b"GET /ws?token=x HTTP/1.1\r\n\r\n", true),
            (b"GET /wss HTTP/1.1\r\n\r\n", false),
            (b"GET /metrics HTTP/1.1\r\n\r\n", false),
            (b"POST /ws HTTP/1.1\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\n\r\n", false),
        ] {
            let (is_ws, all) = head_of(req).await;
            assert_eq!(is_ws, ws, "{}", String::from_utf8_lossy(req));
            assert_eq!(all, req);
        }
    }
}
