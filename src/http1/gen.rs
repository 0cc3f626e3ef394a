//! Seeded generation for the framing property tests of the HTTP/1.1
//! client (`client.rs`) and server (`server.rs`): one generator and one
//! mutation, so both sides are tried with the same kinds of damage, and one
//! reader that frames a message the way a connection does.

use bytes::BytesMut;

use super::framing::{Decoded, Framing};

/// A small seeded generator (xorshift64*), so that a failure replays.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Changes a few bytes of `wire`: overwrites, inserts, deletes, or cuts
/// it short, with bytes that matter to framing.
pub(super) fn mutate(rng: &mut Rng, wire: &mut Vec<u8>) {
    const BYTES: &[u8] = b"\r\n\x00 \t;:\",=0fF9-+xX\x7f\x80";
    for _ in 0..1 + rng.below(3) {
        if wire.is_empty() {
            return;
        }
        let at = rng.below(wire.len());
        let byte = BYTES[rng.below(BYTES.len())];
        match rng.below(4) {
            0 => wire[at] = byte,
            1 => wire.insert(at, byte),
            2 => {
                wire.remove(at);
            }
            _ => wire.truncate(at),
        }
    }
}

/// What reading one message off some bytes came to.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    Refused,
    /// The input ended before the message did.
    Incomplete,
    /// One message framed: the bytes it took and its body.
    Framed(usize, Vec<u8>),
}

/// Reads one message off `input` the way a connection does: the bytes
/// arrive in pieces that end at `cuts`, `head` takes the head off the
/// buffer once it is whole, and the body is decoded by its framing. When the
/// input ends, a framing that ends with the connection (a response read to
/// its close) frames what came; any other is incomplete.
pub(super) fn frame(
    input: &[u8],
    cuts: &[usize],
    mut head: impl FnMut(&mut BytesMut) -> Result<Option<Framing>, ()>,
) -> Outcome {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut pieces = cuts.iter().copied().chain([input.len()]);
    let mut framing = None;
    let mut body = Vec::new();
    loop {
        if framing.is_none() {
            match head(&mut buf) {
                Ok(f) => framing = f,
                Err(()) => return Outcome::Refused,
            }
        }
        if let Some(framing) = &mut framing {
            loop {
                match framing.decode(&mut buf) {
                    Ok(Decoded::Data(d)) => body.extend_from_slice(&d),
                    Ok(Decoded::More) => break,
                    Ok(Decoded::End) => return Outcome::Framed(fed - buf.len(), body),
                    Err(_) => return Outcome::Refused,
                }
            }
        }
        let Some(next) = pieces.next() else {
            return match framing {
                Some(f) if f.ends_at_close() => Outcome::Framed(fed, body),
                _ => Outcome::Incomplete,
            };
        };
        buf.extend_from_slice(&input[fed..next]);
        fed = next;
    }
}
