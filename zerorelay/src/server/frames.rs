//! A connection's output: server-to-client WebSocket frames (RFC 6455 §5.2,
//! unmasked) encoded straight into one buffer and written with one call.
//!
//! Deliveries are the hot path. Each is the shared frame text with the
//! recipient's `seq` spliced in; writing its pieces here costs one copy and
//! no allocation, where a tungstenite `Message` would need an owned `String`
//! per recipient and a second copy into tungstenite's own buffer. tungstenite
//! still reads frames, answers pings and performs the close handshake; the
//! connection flushes tungstenite before it writes this buffer, so frames
//! never interleave.

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Capacity kept between flushes; a larger buffer (after a burst) is
/// released so that an idle connection stays small.
const KEEP_CAPACITY: usize = 4 << 10;

const FIN: u8 = 0x80;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// Frames waiting to be written.
#[derive(Debug, Default)]
pub(crate) struct Output {
    buf: Vec<u8>,
}

impl Output {
    /// Appends a text frame.
    pub(crate) fn text(&mut self, text: &str) {
        self.text_parts(&[text.as_bytes()]);
    }

    /// Appends one text frame made of `parts` (valid UTF-8 together).
    pub(crate) fn text_parts(&mut self, parts: &[&[u8]]) {
        let len = parts.iter().map(|p| p.len()).sum();
        self.buf.reserve(10 + len);
        self.header(OP_TEXT, len);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
    }

    /// Appends a close frame: the code, then as much of `reason` as fits a
    /// control frame (125 bytes in all), cut at a character boundary. For
    /// closes written past tungstenite, after it failed on the input.
    pub(crate) fn close(&mut self, code: u16, reason: &str) {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.header(OP_CLOSE, 2 + end);
        self.buf.extend_from_slice(&code.to_be_bytes());
        self.buf.extend_from_slice(&reason.as_bytes()[..end]);
    }

    /// Appends an empty ping.
    pub(crate) fn ping(&mut self) {
        self.header(OP_PING, 0);
    }

    /// Whether nothing is waiting.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes everything waiting to `io` and flushes it (a TLS stream holds
    /// records until then).
    pub(crate) async fn write_to<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        io.write_all(&self.buf).await?;
        io.flush().await?;
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        Ok(())
    }

    fn header(&mut self, opcode: u8, len: usize) {
        self.buf.push(FIN | opcode);
        if len < 126 {
            self.buf.push(len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            self.buf.push(126);
            self.buf.extend_from_slice(&len.to_be_bytes());
        } else {
            self.buf.push(127);
            self.buf.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }

    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    #[cfg(test)]
    fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    /// Parses back what was written with tungstenite's own header parser.
    fn parse(mut b: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let mut c = std::io::Cursor::new(b);
            let (h, len) = FrameHeader::parse(&mut c)
                .expect("valid")
                .expect("complete");
            assert!(h.is_final && h.mask.is_none() && !h.rsv1 && !h.rsv2 && !h.rsv3);
            let start = c.position() as usize;
            let end = start + len as usize;
            out.push((h.opcode, b[start..end].to_vec()));
            b = &b[end..];
        }
        out
    }

    #[test]
    fn frames_of_every_length_class_parse_back() {
        let mut o = Output::default();
        let short = "a".repeat(125);
        let medium = "b".repeat(126);
        let large = "c".repeat(65_536);
        o.text("");
        o.text(&short);
        o.text(&medium);
        o.text(&large);
        o.text_parts(&[b"{\"seq\":", b"42", b"}"]);
        o.ping();
        let frames = parse(o.bytes());
        let text = OpCode::Data(Data::Text);
        assert_eq!(
            frames,
            vec![
                (text, Vec::new()),
                (text, short.into_bytes()),
                (text, medium.into_bytes()),
                (text, large.into_bytes()),
                (text, b"{\"seq\":42}".to_vec()),
                (
                    OpCode::Control(
                        tokio_tungstenite::tungstenite::protocol::frame::coding::Control::Ping
                    ),
                    Vec::new()
                ),
            ]
        );
        let mut o = Output::default();
        o.close(1002, &"é".repeat(100));
        let frames = parse(o.bytes());
        assert_eq!(frames.len(), 1);
        assert!(frames[0].1.len() <= 125);
        assert_eq!(&frames[0].1[..2], &1002u16.to_be_bytes());
        assert!(std::str::from_utf8(&frames[0].1[2..]).is_ok());
        // RFC 6455 §5.2: FIN + text, then 126 and a 16-bit length.
        let mut o = Output::default();
        o.text(&"x".repeat(300));
        assert_eq!(&o.bytes()[..4], &[0x81, 126, 0x01, 0x2c]);
    }

    #[tokio::test]
    async fn a_written_buffer_is_emptied_and_does_not_stay_large() {
        let mut o = Output::default();
        o.text(&"x".repeat(100_000));
        let mut sink = Vec::new();
        o.write_to(&mut sink).await.expect("writes");
        assert_eq!(sink.len(), 100_000 + 10);
        assert!(o.is_empty());
        assert!(o.buf.capacity() <= KEEP_CAPACITY);
    }
}
