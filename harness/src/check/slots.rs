//! Per-message state of every (producer, key): a flag byte and a 32-bit position fingerprint,
//! indexed by sequence number, kept in fixed-size chunks handed out in the order keys need them.
//!
//! Sequence numbers are gapless per key, so a key's state is an array indexed by seq. With one
//! growing array per key, the newest entries of a thousand keys sit on a thousand different
//! pages, and nearly every event paid a TLB miss (on this VM the two stores at those array tails
//! were ~40 % of the delivery checker's time). Chunks allocated in turn keep the newest entries
//! of every key together, on a few pages.

const CHUNK: usize = 64;

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

/// The chunks of every key.
#[derive(Default)]
pub struct Slots {
    chunks: Vec<Chunk>,
}

/// Which chunks of `Slots` hold one key's messages, in seq order.
#[derive(Default)]
pub struct KeySlots {
    chunks: Vec<u32>,
}

/// Where one message's state lives.
#[derive(Clone, Copy)]
pub struct Slot {
    chunk: usize,
    at: usize,
}

impl Slots {
    /// The slot of `seq`, allocating chunks up to it (usually none, or the key's next one).
    #[inline]
    pub fn slot(&mut self, key: &mut KeySlots, seq: u64) -> Slot {
        let c = (seq / CHUNK as u64) as usize;
        while key.chunks.len() <= c {
            key.chunks.push(self.chunks.len() as u32);
            self.chunks.push(EMPTY);
        }
        Slot {
            chunk: key.chunks[c] as usize,
            at: (seq % CHUNK as u64) as usize,
        }
    }

    /// The slot of `seq` if the key has reached it.
    pub fn find(&self, key: &KeySlots, seq: u64) -> Option<Slot> {
        let c = usize::try_from(seq / CHUNK as u64).ok()?;
        key.chunks.get(c).map(|&chunk| Slot {
            chunk: chunk as usize,
            at: (seq % CHUNK as u64) as usize,
        })
    }

    #[inline]
    pub fn flags(&mut self, s: Slot) -> &mut u8 {
        &mut self.chunks[s.chunk].flags[s.at]
    }

    pub fn flags_of(&self, s: Slot) -> u8 {
        self.chunks[s.chunk].flags[s.at]
    }

    #[inline]
    pub fn pos(&mut self, s: Slot) -> &mut u32 {
        &mut self.chunks[s.chunk].pos[s.at]
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
    }
}
