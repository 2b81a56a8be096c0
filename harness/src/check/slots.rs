//! Per-message state of every (producer, key): a flag byte and a 32-bit position fingerprint,
//! indexed by sequence number, kept in fixed-size chunks handed out in the order keys need them.
//!
//! Sequence numbers are gapless per key, so a key's state is an array indexed by seq. With one
//! growing array per key, the newest entries of a thousand keys sit on a thousand different
//! pages, and nearly every event paid a TLB miss (on this VM the two stores at those array tails
//! were ~40 % of the delivery checker's time). Chunks allocated in turn keep the newest entries
//! of every key together, on a few pages.

const CHUNK: usize = 64;

/// How far past a key's newest chunk a sequence number may jump (4M messages). Producers number
/// each key's messages from 0 without gaps, so a larger jump can only come from a corrupt or
/// foreign record, and must not make the checker allocate towards it.
const MAX_JUMP_CHUNKS: usize = 1 << 16;

#[derive(Clone)]
struct Chunk {
    flags: [u8; CHUNK],
    /// 0 = no position recorded.
    pos: [u32; CHUNK],
}

const EMPTY: Chunk = Chunk {
    flags: [0; CHUNK],
    pos: [0; CHUNK],
};

/// The chunks of every key. Chunk 0 belongs to no key: records with an implausible sequence
/// number land there, so the hot path needs no failure case.
pub struct Slots {
    chunks: Vec<Chunk>,
    /// How many records landed in chunk 0, and the first such sequence number.
    pub implausible: u64,
    pub first_implausible: Option<u64>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            chunks: vec![EMPTY],
            implausible: 0,
            first_implausible: None,
        }
    }
}

/// Which chunks of `Slots` hold one key's messages, in seq order.
#[derive(Default)]
pub struct KeySlots {
    chunks: Vec<u32>,
}

/// Where one message's state lives (small, so `Option<Slot>` travels in registers).
#[derive(Clone, Copy)]
pub struct Slot {
    chunk: u32,
    at: u32,
}

impl Slot {
    /// True for the slot of an implausible record (chunk 0, shared, no key's).
    #[inline]
    pub fn is_implausible(self) -> bool {
        self.chunk == 0
    }

    fn new(chunk: u32, seq: u64) -> Slot {
        Slot {
            chunk,
            at: (seq % CHUNK as u64) as u32,
        }
    }
}

impl Slots {
    /// The slot of `seq`, allocating chunks up to it (usually none, or the key's next one).
    #[inline]
    pub fn slot(&mut self, key: &mut KeySlots, seq: u64) -> Slot {
        match key.chunks.get((seq / CHUNK as u64) as usize) {
            Some(&chunk) => Slot::new(chunk, seq),
            None => self.grow(key, seq),
        }
    }

    /// Once per 64 messages of a key: give it chunks up to `seq`, unless that is an implausible
    /// jump (see `MAX_JUMP_CHUNKS`), which is counted and sent to chunk 0.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, key: &mut KeySlots, seq: u64) -> Slot {
        let c = (seq / CHUNK as u64) as usize;
        if c - key.chunks.len() >= MAX_JUMP_CHUNKS {
            self.implausible += 1;
            self.first_implausible.get_or_insert(seq);
            return Slot::new(0, seq);
        }
        while key.chunks.len() <= c {
            key.chunks.push(self.chunks.len() as u32);
            self.chunks.push(EMPTY);
        }
        Slot::new(key.chunks[c], seq)
    }

    /// The slot of `seq` if the key has reached it.
    pub fn find(&self, key: &KeySlots, seq: u64) -> Option<Slot> {
        let c = usize::try_from(seq / CHUNK as u64).ok()?;
        key.chunks.get(c).map(|&chunk| Slot::new(chunk, seq))
    }

    #[inline]
    pub fn flags(&mut self, s: Slot) -> &mut u8 {
        &mut self.chunks[s.chunk as usize].flags[s.at as usize]
    }

    pub fn flags_of(&self, s: Slot) -> u8 {
        self.chunks[s.chunk as usize].flags[s.at as usize]
    }

    #[inline]
    pub fn pos(&mut self, s: Slot) -> &mut u32 {
        &mut self.chunks[s.chunk as usize].pos[s.at as usize]
    }

    /// One past the highest sequence number the key has state for.
    pub fn end(&self, key: &KeySlots) -> u64 {
        (key.chunks.len() * CHUNK) as u64
    }

    /// Every (seq, flags) of a key up to its last chunk; slots never touched have flags 0.
    pub fn iter<'a>(&'a self, key: &'a KeySlots) -> impl Iterator<Item = (u64, u8)> + 'a {
        key.chunks.iter().enumerate().flat_map(move |(c, &chunk)| {
            self.chunks[chunk as usize]
                .flags
                .iter()
                .enumerate()
                .map(move |(i, &f)| ((c * CHUNK + i) as u64, f))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_own_state_across_chunks() {
        let mut s = Slots::default();
        let (mut a, mut b) = (KeySlots::default(), KeySlots::default());
        for seq in 0..200 {
            let sa = s.slot(&mut a, seq);
            *s.flags(sa) = 1;
            let sb = s.slot(&mut b, seq * 2);
            *s.flags(sb) = 2;
            *s.pos(sb) = seq as u32 + 7;
        }
        let a_set: Vec<u64> = s
            .iter(&a)
            .filter(|(_, f)| *f == 1)
            .map(|(q, _)| q)
            .collect();
        assert_eq!(a_set, (0..200).collect::<Vec<_>>());
        let b_set: Vec<u64> = s
            .iter(&b)
            .filter(|(_, f)| *f == 2)
            .map(|(q, _)| q)
            .collect();
        assert_eq!(b_set, (0..200).map(|q| q * 2).collect::<Vec<_>>());
        assert!(
            s.iter(&a).all(|(_, f)| f != 2),
            "no key sees another's flags"
        );
        let found = s.find(&b, 398).map(|sl| *s.pos(sl));
        assert_eq!(found, Some(199 + 7));
        assert!(s.find(&a, 10_000).is_none());
        assert!(s.find(&a, u64::MAX).is_none());
        // A corrupt sequence number far ahead allocates nothing and is counted.
        let far = s.slot(&mut a, u64::MAX / 2);
        *s.flags(far) = 1;
        s.slot(&mut a, 64 * (4 + MAX_JUMP_CHUNKS as u64));
        assert_eq!(
            (s.implausible, s.first_implausible),
            (2, Some(u64::MAX / 2))
        );
        assert_eq!(a.chunks.len(), 4);
        assert!(
            s.iter(&a).filter(|(_, f)| *f == 1).count() == 200,
            "chunk 0 is no key's"
        );
        s.slot(&mut a, 64 * (3 + MAX_JUMP_CHUNKS as u64));
        assert_eq!(a.chunks.len(), 4 + MAX_JUMP_CHUNKS);
    }
}
