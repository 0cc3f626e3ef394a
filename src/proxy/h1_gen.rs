//! Seeded generation for the framing property tests of the HTTP/1.1
//! client (`h1.rs`) and server (`h1_server.rs`): one generator and one
//! mutation, so both sides are tried with the same kinds of damage.

/// A small seeded generator (xorshift64*), so that a failure replays.
pub(crate) struct Rng(pub u64);

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
pub(crate) fn mutate(rng: &mut Rng, wire: &mut Vec<u8>) {
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
