//! Guest stdout/stderr: accepted in full (so a chatty guest never fails on a
//! closed pipe) but only the first `cap` bytes are kept, then forwarded to
//! the gateway log tagged with the plugin name, one event per line, with
//! control characters escaped so guest text cannot forge log lines.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::log::escaped;

/// A size-capped, cloneable capture buffer.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    buf: Vec<u8>,
    cap: usize,
    dropped: usize,
}

impl CapturedOutput {
    pub fn new(cap: usize) -> Self {
        CapturedOutput {
            inner: Arc::new(Mutex::new(Captured {
                buf: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = c.cap.saturating_sub(c.buf.len());
        let keep = room.min(bytes.len());
        c.buf.extend_from_slice(&bytes[..keep]);
        c.dropped += bytes.len() - keep;
    }

    /// Take what was kept and log it: one `info` event per non-empty line,
    /// tagged with the plugin and the stream, escaped; `dropped` (bytes
    /// past the cap) goes on the last event.
    pub fn forward(&self, plugin: &str, stream: &'static str) {
        let (text, dropped) = self.take();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        for (i, line) in lines.iter().enumerate() {
            let dropped = if i + 1 == lines.len() { dropped } else { 0 };
            tracing::info!(plugin, stream, dropped, "{}", escaped(line));
        }
    }

    /// The kept text (lossy UTF-8) and how many bytes were dropped.
    pub fn take(&self) -> (String, usize) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&c.buf).into_owned();
        c.buf.clear();
        (text, std::mem::take(&mut c.dropped))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_cap_bytes_and_counts_the_rest() {
        let mut out = CapturedOutput::new(4);
        out.write(Bytes::from_static(b"hello")).unwrap();
        out.write(Bytes::from_static(b"world")).unwrap();
        assert_eq!(out.take(), ("hell".to_owned(), 6));
        assert_eq!(out.take(), (String::new(), 0));
    }
}
