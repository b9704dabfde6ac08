//! A guest's stdout and stderr, written to eddy's log one line per event, tagged with the
//! processor's name and the stream (`processor=only-dogs stream=stderr`). Lines longer than
//! [`MAX_LINE`] are cut.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line logged, in bytes.
pub const MAX_LINE: usize = 4096;

/// The stdout or stderr of one processor's instances.
#[derive(Clone)]
pub struct GuestOutput {
    processor: Arc<str>,
    stream: &'static str,
}

impl GuestOutput {
    /// Output of `processor` on `stream` (`"stdout"` or `"stderr"`).
    pub fn new(processor: Arc<str>, stream: &'static str) -> Self {
        Self { processor, stream }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter { out: self.clone(), buf: Vec::new() })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp1/p3 guests use this path; eddy links WASIp2.
        Box::new(tokio::io::sink())
    }
}

struct LineWriter {
    out: GuestOutput,
    buf: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let cut = &line[..line.len().min(MAX_LINE)];
        let text = String::from_utf8_lossy(cut);
        let text = text.trim_end_matches('\r');
        tracing::info!(processor = &*self.out.processor, stream = self.out.stream, "{text}");
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.buf.extend_from_slice(&bytes);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.buf.len() > MAX_LINE {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
        }
    }
}
