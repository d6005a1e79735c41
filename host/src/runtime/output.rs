//! Guest stdout/stderr: kept in memory up to a cap and then silently
//! dropped, so a chatty guest neither fails its writes nor fills the host.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A capped in-memory sink; clones share the buffer.
#[derive(Debug, Clone)]
pub(super) struct CappedOutput {
    buf: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl CappedOutput {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            buf: Arc::new(Mutex::new(Vec::new())),
            capacity,
        }
    }

    /// Everything kept so far, lossily decoded as UTF-8.
    pub(super) fn text(&self) -> String {
        let buf = self
            .buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn append(&self, bytes: &[u8]) {
        let mut buf = self
            .buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = self.capacity.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::CappedOutput;

    #[test]
    fn keeps_up_to_capacity() {
        let out = CappedOutput::new(5);
        out.append(b"abc");
        out.append(b"defgh");
        assert_eq!(out.text(), "abcde");
    }
}
