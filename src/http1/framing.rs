//! HTTP/1.1 message framing shared by the server ([`super::server`]) and the
//! client ([`super::client`]): how a head's `Content-Length` and
//! `Transfer-Encoding` lines decide where a body ends (RFC 9112 §6), the
//! chunked decoder with its bounds on lines, extensions and trailers, the
//! token grammar, and the socket read both sides fill their buffers with.
//! One reader for both directions means a request and a response are held to
//! the same rules by the same code.

use std::io;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection failed or closed during the exchange.
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    /// The upstream's answer is not HTTP/1.1 this client can read.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("{0}")]
    Other(String),
    /// No response head within the first-byte time limit.
    #[error("no response within the time limit")]
    TimedOut,
}

/// Reads what `io` holds onto the end of `buf`, growing it when little room
/// is left; `Ok(0)` once the peer has closed its side.
pub(super) fn poll_fill(
    io: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(READ_SIZE);
    }
    loop {
        std::task::ready!(io.poll_read_ready(cx))?;
        let room = buf.capacity() - buf.len();
        match io.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Ok(n) if n > 0 && n < room => {
                // A read that left room in the buffer emptied the socket, so
                // its read readiness is cleared without a second read that
                // would only answer EAGAIN (tokio's own `poll_read` does the
                // same). Bytes or a close that come later raise a new
                // edge-triggered event, which marks the socket readable again.
                let _ = io.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
                return Poll::Ready(Ok(n));
            }
            r => return Poll::Ready(r),
        }
    }
}

/// The most header lines a response head may have, and its most bytes.
pub(super) const MAX_HEADERS: usize = 128;
pub(super) const MAX_HEAD_BYTES: usize = 256 * 1024;
/// The longest chunk-size or trailer line read before giving up.
pub(super) const MAX_LINE_BYTES: usize = 16 * 1024;
/// The most bytes and field lines a chunked body's trailer section may have
/// (the trailers are read and dropped, so they need not be large).
pub(super) const MAX_TRAILER_BYTES: u32 = 16 * 1024;
pub(super) const MAX_TRAILER_FIELDS: u16 = 64;
/// The most bytes of chunk extensions one body may carry, over all its
/// chunks (as hyper): the extensions are read and dropped, and without a
/// sum a body of one-byte chunks could make a reader scan a thousand times
/// more bytes than the body limit lets through.
pub(super) const MAX_EXTENSION_BYTES: u32 = 16 * 1024;
/// A read asks for at least this much room, and grows the buffer by `READ_SIZE`.
pub(super) const MIN_READ: usize = 2 * 1024;
pub(super) const READ_SIZE: usize = 16 * 1024;

/// What a message head's framing headers said (responses here, requests in
/// [`super::server`]).
#[derive(Default)]
pub(super) struct Framer {
    /// What the `Transfer-Encoding` lines named, if there were any.
    pub coding: Option<Coding>,
    pub length: Option<u64>,
    pub close: bool,
    keep_alive: bool,
}

/// The transfer codings of a message, as far as framing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    /// Exactly `chunked`, once: the only coding this side reads.
    Chunked,
    /// `chunked` more than once, or a `Transfer-Encoding` that names no coding.
    Invalid,
    /// Some coding other than `chunked` (a request gets 501, a response is refused).
    Unsupported,
}

impl Framer {
    pub(super) fn see(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), SendError> {
        let tokens = || {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
        };
        if name == header::CONTENT_LENGTH {
            // One number a line: a list (`5, 5`) is refused, as hyper does,
            // though the same number on two lines is taken (RFC 9110 §8.6).
            let n = parse_length(value.as_bytes().trim_ascii())
                .ok_or(SendError::Malformed("the content-length is not valid"))?;
            if self.length.is_some_and(|l| l != n) {
                return Err(SendError::Malformed(
                    "the message has conflicting content-lengths",
                ));
            }
            self.length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // Every line counts, not only the last: `chunked` twice (over one
            // line or two) or beside another coding is how a message gets
            // framed one way here and another way by a peer (RFC 9112 §6.1).
            // Empty list elements are ignored (RFC 9110 §5.6.1).
            let mut named = false;
            for token in tokens().filter(|t| !t.is_empty()) {
                named = true;
                self.coding = Some(match self.coding {
                    Some(Coding::Unsupported) => Coding::Unsupported,
                    _ if !token.eq_ignore_ascii_case(b"chunked") => Coding::Unsupported,
                    None => Coding::Chunked,
                    Some(_) => Coding::Invalid,
                });
            }
            if !named && self.coding != Some(Coding::Unsupported) {
                self.coding = Some(Coding::Invalid);
            }
        } else if name == header::CONNECTION {
            for token in tokens() {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }

    /// How a response's body ends (RFC 9112 §6.3). A transfer coding other
    /// than `chunked` alone is refused rather than read until the close, as
    /// the RFC allows: the gateway would pass on a body coded in a way the
    /// client is not told of, since `Transfer-Encoding` is per hop.
    pub(super) fn framing(
        &self,
        status: StatusCode,
        head_only: bool,
    ) -> Result<Framing, SendError> {
        if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Ok(Framing::Length(0));
        }
        match (self.coding, self.length) {
            (Some(Coding::Chunked), _) => Ok(Framing::CHUNKED),
            (Some(Coding::Invalid), _) => Err(SendError::Malformed(
                "the response's transfer-encoding is not valid",
            )),
            (Some(Coding::Unsupported), _) => Err(SendError::Malformed(
                "the response has a transfer coding other than chunked",
            )),
            (None, None) => Ok(Framing::UntilClose),
            (None, Some(n)) => Ok(Framing::Length(n)),
        }
    }

    /// Whether the connection may carry another request after this response.
    pub(super) fn keeps_alive(&self, version: Version) -> bool {
        if version == Version::HTTP_10 {
            self.keep_alive
        } else {
            !self.close
        }
    }
}

pub(super) fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// How much of a response body is left, and how its end will be known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Framing {
    Length(u64),
    /// Where the decoder stands, and the extension bytes read so far.
    Chunked(Chunked, u32),
    UntilClose,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes to go.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, in the trailer section (which is dropped),
    /// with the bytes and field lines read of it so far.
    Trailers {
        bytes: u32,
        fields: u16,
    },
    Done,
}

/// What a look at the buffered bytes gave.
#[derive(Debug, PartialEq)]
pub(super) enum Decoded {
    Data(Bytes),
    /// Nothing more until more bytes arrive.
    More,
    End,
}

impl Framing {
    /// A chunked body, before its first chunk.
    pub(super) const CHUNKED: Framing = Framing::Chunked(Chunked::Size, 0);

    /// Takes the next piece of the body from the front of `buf`.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, SendError> {
        match self {
            Framing::Length(0) => Ok(Decoded::End),
            Framing::Length(left) => Ok(take_up_to(buf, left)),
            Framing::UntilClose if buf.is_empty() => Ok(Decoded::More),
            Framing::UntilClose => Ok(Decoded::Data(buf.split().freeze())),
            Framing::Chunked(state, extensions) => loop {
                match *state {
                    Chunked::Size => {
                        let Some((size, ext)) = take_line(buf, chunk_size)? else {
                            return Ok(Decoded::More);
                        };
                        *extensions = extensions.saturating_add(ext as u32);
                        if *extensions > MAX_EXTENSION_BYTES {
                            return Err(SendError::Malformed("the chunk extensions are too large"));
                        }
                        *state = if size == 0 {
                            Chunked::Trailers {
                                bytes: 0,
                                fields: 0,
                            }
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Chunked::Data(mut left) => {
                        let data = take_up_to(buf, &mut left);
                        *state = if left == 0 {
                            Chunked::DataEnd
                        } else {
                            Chunked::Data(left)
                        };
                        return Ok(data);
                    }
                    Chunked::DataEnd => {
                        // Exactly CRLF after the data: anything else means
                        // the size did not frame the chunk.
                        match buf.get(..2) {
                            Some(b"\r\n") => buf.advance(2),
                            None if buf.first().is_none_or(|&b| b == b'\r') => {
                                return Ok(Decoded::More)
                            }
                            _ => {
                                return Err(SendError::Malformed("a chunk is longer than its size"))
                            }
                        }
                        *state = Chunked::Size;
                    }
                    Chunked::Trailers { bytes, fields } => {
                        let Some(len) = take_line(buf, |l| trailer_line(l).map(|()| l.len()))?
                        else {
                            return Ok(Decoded::More);
                        };
                        if len == 0 {
                            *state = Chunked::Done;
                            continue;
                        }
                        let bytes = bytes.saturating_add(len as u32 + 2);
                        let fields = fields + 1;
                        if bytes > MAX_TRAILER_BYTES || fields > MAX_TRAILER_FIELDS {
                            return Err(SendError::Malformed("the trailer section is too large"));
                        }
                        *state = Chunked::Trailers { bytes, fields };
                    }
                    Chunked::Done => return Ok(Decoded::End),
                }
            },
        }
    }

    /// The body ends with the connection; any other framing is cut short by it.
    pub(crate) fn ends_at_close(&self) -> bool {
        matches!(self, Framing::UntilClose)
    }
}

/// Up to `left` bytes of body off the front of `buf`, counted off `left`.
fn take_up_to(buf: &mut BytesMut, left: &mut u64) -> Decoded {
    if buf.is_empty() {
        return Decoded::More;
    }
    let n = (*left).min(buf.len() as u64);
    *left -= n;
    Decoded::Data(buf.split_to(n as usize).freeze())
}

/// Reads one line (without its CRLF) with `read` and drops it from the
/// front of `buf`; `None` while the line is incomplete. The line is read
/// where it lies, not split off. A line must end with CRLF (RFC 9112 §7.1):
/// a bare LF is where a lenient peer and a strict one disagree on where a
/// chunk ends, which is how a second request is smuggled inside a body.
fn take_line<T>(
    buf: &mut BytesMut,
    read: impl FnOnce(&[u8]) -> Result<T, SendError>,
) -> Result<Option<T>, SendError> {
    const TOO_LONG: SendError = SendError::Malformed("a chunk line is too long");
    match memchr::memchr(b'\n', buf) {
        Some(at) if at > MAX_LINE_BYTES => Err(TOO_LONG),
        Some(at) => {
            let line = buf[..at]
                .strip_suffix(b"\r")
                .ok_or(SendError::Malformed("a chunk line does not end with CRLF"))?;
            let value = read(line)?;
            buf.advance(at + 1);
            Ok(Some(value))
        }
        None if buf.len() > MAX_LINE_BYTES => Err(TOO_LONG),
        None => Ok(None),
    }
}

/// The size on a chunk-size line, whose extensions must follow the grammar
/// (RFC 9112 §7.1.1): `1*HEXDIG *( BWS ";" BWS name [ BWS "=" BWS value ] )`,
/// a name a token and a value a token or a quoted string. Nothing else may
/// stand on the line: no space before the size or after it (unless an
/// extension follows), no CR, NUL or other control byte.
/// Returns the size and the length of the extensions.
fn chunk_size(line: &[u8]) -> Result<(u64, usize), SendError> {
    const BAD_SIZE: SendError = SendError::Malformed("a chunk size is not valid");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BAD_SIZE);
    }
    let mut size = 0u64;
    for &d in &line[..digits] {
        // Below 2^60, however many leading zeros: no chunk is that large,
        // and the sum of sizes cannot overflow before a limit stops it.
        if size >> 56 != 0 {
            return Err(BAD_SIZE);
        }
        let v = (d as char).to_digit(16).unwrap_or_default();
        size = size << 4 | u64::from(v);
    }
    chunk_ext(&line[digits..])?;
    Ok((size, line.len() - digits))
}

/// Checks what follows a chunk's size against the chunk-ext grammar.
fn chunk_ext(mut rest: &[u8]) -> Result<(), SendError> {
    const BAD_EXT: SendError = SendError::Malformed("a chunk extension is not valid");
    while !rest.is_empty() {
        rest = skip_ws(rest).strip_prefix(b";").ok_or(BAD_EXT)?;
        rest = skip_ws(rest);
        let name = token_len(rest);
        if name == 0 {
            return Err(BAD_EXT);
        }
        rest = &rest[name..];
        if let Some(value) = skip_ws(rest).strip_prefix(b"=") {
            let value = skip_ws(value);
            let len = match value.first() {
                Some(b'"') => quoted_len(value).ok_or(BAD_EXT)?,
                _ => token_len(value),
            };
            if len == 0 {
                return Err(BAD_EXT);
            }
            rest = &value[len..];
        }
    }
    Ok(())
}

/// Checks one trailer field line: `token ":" OWS field-value OWS`, where
/// the value holds visible bytes, spaces and tabs only (RFC 9112 §5). A
/// line that starts with whitespace (obs-fold) has no name, and fails.
fn trailer_line(line: &[u8]) -> Result<(), SendError> {
    let name = token_len(line);
    match line.get(name) {
        Some(b':') if name > 0 && line[name + 1..].iter().all(|&b| is_field_byte(b)) => Ok(()),
        _ if line.is_empty() => Ok(()),
        _ => Err(SendError::Malformed("a trailer field is not valid")),
    }
}

/// A byte a field value may hold: VCHAR, obs-text, SP or HTAB.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// Whether `b` may appear in a token (RFC 9110 §5.6.2): a byte-indexed table,
/// so the check is one load.
pub(super) fn is_tchar(b: u8) -> bool {
    const TCHAR: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            t[i] = b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                );
            i += 1;
        }
        t
    };
    TCHAR[b as usize]
}

/// The length of the token at the front of `s` (0 if none).
fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| is_tchar(b)).count()
}

/// The length of the quoted string at the front of `s`, quotes included;
/// `None` if it is not closed or holds a byte a quoted string may not.
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let next = *s.get(i + 1)?;
                if !is_field_byte(next) {
                    return None;
                }
                i += 2;
            }
            b if is_field_byte(b) => i += 1,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting a chunked body into reads decodes to the same data.
    #[test]
    fn chunked_bodies_decode_whatever_the_reads() {
        let wire: &[u8] =
            b"4\r\ndata\r\nA;ext=1\r\n0123456789\r\n3\r\nend\r\n0\r\ntrailer: x\r\n\r\n";
        for piece in 1..wire.len() {
            let mut framing = Framing::CHUNKED;
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut ended = false;
            for part in wire.chunks(piece) {
                buf.extend_from_slice(part);
                loop {
                    match framing.decode(&mut buf).unwrap() {
                        Decoded::Data(d) => out.extend_from_slice(&d),
                        Decoded::More => break,
                        Decoded::End => {
                            ended = true;
                            break;
                        }
                    }
                }
            }
            assert!(ended, "pieces of {piece}");
            assert_eq!(out, b"data0123456789end", "pieces of {piece}");
            assert!(buf.is_empty());
        }
    }

    /// Decodes `wire` as a whole chunked body: its data, or the error.
    fn dechunk(wire: &[u8]) -> Result<Vec<u8>, SendError> {
        let mut framing = Framing::CHUNKED;
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        loop {
            match framing.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::More => return Err(SendError::Malformed("incomplete")),
                Decoded::End => return Ok(out),
            }
        }
    }

    #[test]
    fn chunked_bodies_follow_the_grammar_of_rfc_9112() {
        let good: [&[u8]; 8] = [
            b"3\r\nabc\r\n0\r\n\r\n",
            b"3;a\r\nabc\r\n0\r\n\r\n",
            b"3 \t; a = b ;c=\"x\\\"y\"\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"\"\r\nabc\r\n0\r\n\r\n",
            b"0003\r\nabc\r\n000\r\n\r\n",
            b"3\r\nabc\r\n0\r\nx-a: 1\r\nx-b:\r\nx-c: \x80 \t\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
        ];
        for wire in good {
            let data = dechunk(wire)
                .unwrap_or_else(|e| panic!("{e}: {:?}", wire.escape_ascii().to_string()));
            assert!(data == b"abc" || data == b"0123456789");
        }
        let bad: [&[u8]; 24] = [
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc\r\n0\n\r\n",
            b"3\r\nabc\r\n0\r\n\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3\r\nabc\r\r\n0\r\n\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"3 \r\nabc\r\n0\r\n\r\n",
            b"+3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b";a\r\nabc\r\n0\r\n\r\n",
            b"3;\r\nabc\r\n0\r\n\r\n",
            b"3;a \r\nabc\r\n0\r\n\r\n",
            b"3;a=\r\nabc\r\n0\r\n\r\n",
            b"3;a=b c\r\nabc\r\n0\r\n\r\n",
            b"3;a\rb\r\nabc\r\n0\r\n\r\n",
            b"3;a=\x00\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"b\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"\x01\"\r\nabc\r\n0\r\n\r\n",
            b"3;a,b\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\nno colon\r\n\r\n",
            b"3\r\nabc\r\n0\r\n: no name\r\n\r\n",
            b"3\r\nabc\r\n0\r\nx-a: 1\r\n folded\r\n\r\n",
            b"3\r\nabc\r\n0\r\nx-a: \x00\r\n\r\n",
        ];
        for wire in bad {
            assert!(
                dechunk(wire).is_err(),
                "accepted {:?}",
                wire.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn trailer_sections_and_chunk_lines_are_bounded() {
        let fields = "x-t: 1\r\n".repeat(usize::from(MAX_TRAILER_FIELDS));
        assert!(dechunk(format!("0\r\n{fields}\r\n").as_bytes()).is_ok());
        let fields = "x-t: 1\r\n".repeat(usize::from(MAX_TRAILER_FIELDS) + 1);
        assert!(dechunk(format!("0\r\n{fields}\r\n").as_bytes()).is_err());
        let big = format!("x-t: {}\r\n", "v".repeat(4000)).repeat(5);
        assert!(dechunk(format!("0\r\n{big}\r\n").as_bytes()).is_err());
        // Extensions are summed over the body: many small ones are refused
        // past the sum, each line well under the line limit.
        let ext = format!(";a={}", "b".repeat(1000));
        let chunks = |n: usize| format!("1{ext}\r\nx\r\n").repeat(n) + "0\r\n\r\n";
        assert_eq!(dechunk(chunks(16).as_bytes()).unwrap().len(), 16);
        assert!(dechunk(chunks(17).as_bytes()).is_err());
        // A line over the limit is refused whether it is whole or not yet.
        let long = format!("3;a={}\r\nabc\r\n0\r\n\r\n", "b".repeat(MAX_LINE_BYTES));
        assert!(dechunk(long.as_bytes()).is_err());
        let mut framing = Framing::CHUNKED;
        let mut buf = BytesMut::from(&long.as_bytes()[..MAX_LINE_BYTES + 1]);
        assert!(framing.decode(&mut buf).is_err());
    }

    #[test]
    fn chunk_sizes_that_overflow_are_refused() {
        assert!(chunk_size(b"ffffffffffffffff").is_err());
        assert_eq!(chunk_size(b"fFfF ; x=y").unwrap(), (0xffff, 6));
        assert!(chunk_size(b"").is_err());
    }
}
