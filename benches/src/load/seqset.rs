//! Sets of message sequence numbers (one bit per number, growing as needed):
//! which messages of one publisher a subscriber received, which of them the
//! broker acknowledged. Loss is counted from these, message by message, not
//! from "highest sequence seen".

/// A set of `u64` sequence numbers starting at 0, dense (one bit each).
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `seq`; false when it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.words.len() {
            self.words.resize((w + 1).next_power_of_two(), 0);
        }
        let mask = 1u64 << b;
        if self.words[w] & mask != 0 {
            return false;
        }
        self.words[w] |= mask;
        self.len += 1;
        true
    }

    pub fn contains(&self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        self.words.get(w).is_some_and(|x| x & (1u64 << b) != 0)
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many of `0..n` the set holds.
    pub fn count_below(&self, n: u64) -> u64 {
        let full = (n / 64) as usize;
        let mut c: u64 = self.words.iter().take(full).map(|w| u64::from(w.count_ones())).sum();
        let rest = n % 64;
        if rest > 0 {
            if let Some(w) = self.words.get(full) {
                c += u64::from((w & ((1u64 << rest) - 1)).count_ones());
            }
        }
        c
    }

    /// How many numbers of `self` are missing from `other`.
    pub fn missing_from(&self, other: &SeqSet) -> u64 {
        self.words.iter().enumerate().map(|(i, w)| u64::from((w & !other.words.get(i).copied().unwrap_or(0)).count_ones())).sum()
    }

    /// The set `0..n`.
    pub fn first(n: u64) -> Self {
        let mut s = SeqSet { words: vec![u64::MAX; (n / 64) as usize], len: n };
        if !n.is_multiple_of(64) {
            s.words.push((1u64 << (n % 64)) - 1);
        }
        s
    }
}

/// Packet identifiers cycle through 1..=65535; the publisher gives message
/// `seq` the identifier `seq % 65535 + 1`.
pub const PKID_CYCLE: u64 = 65_535;

pub fn pkid_of(seq: u64) -> u16 {
    (seq % PKID_CYCLE) as u16 + 1
}

/// The message a PUBACK with identifier `pkid` acknowledges: the latest of the
/// first `sent` messages that carried it (fewer than [`PKID_CYCLE`] messages
/// are ever unacknowledged at once). `None` for an identifier no message sent
/// so far carried (0, or one not reached yet).
pub fn seq_of_pkid(pkid: u16, sent: u64) -> Option<u64> {
    if pkid == 0 || sent == 0 {
        return None;
    }
    let want = u64::from(pkid) - 1;
    let last = sent - 1;
    let back = (last % PKID_CYCLE + PKID_CYCLE - want) % PKID_CYCLE;
    last.checked_sub(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_reports_duplicates_and_counts() {
        let mut s = SeqSet::new();
        assert!(s.is_empty());
        assert!(s.insert(0));
        assert!(s.insert(5));
        assert!(s.insert(1000));
        assert!(!s.insert(5));
        assert_eq!(s.len(), 3);
        assert!(s.contains(1000) && s.contains(0) && !s.contains(999) && !s.contains(1_000_000));
    }

    #[test]
    fn count_below_counts_only_the_prefix() {
        let mut s = SeqSet::new();
        for x in [0, 1, 63, 64, 65, 200] {
            s.insert(x);
        }
        assert_eq!(s.count_below(0), 0);
        assert_eq!(s.count_below(1), 1);
        assert_eq!(s.count_below(63), 2);
        assert_eq!(s.count_below(64), 3);
        assert_eq!(s.count_below(66), 5);
        assert_eq!(s.count_below(200), 5);
        assert_eq!(s.count_below(10_000), 6);
    }

    #[test]
    fn missing_from_counts_each_gap() {
        let sent = SeqSet::first(130);
        assert_eq!(sent.len(), 130);
        assert_eq!(sent.count_below(1000), 130);
        let mut got = SeqSet::new();
        for x in 0..130 {
            if x != 7 && x != 64 && x != 129 {
                got.insert(x);
            }
        }
        got.insert(500); // received but never accepted: not an offset for a loss
        assert_eq!(sent.missing_from(&got), 3);
        assert_eq!(SeqSet::first(0).missing_from(&got), 0);
        assert_eq!(SeqSet::first(64).len(), 64);
    }

    #[test]
    fn pkids_map_back_to_their_message() {
        for seq in [0, 1, 65_533, 65_534, 65_535, 65_536, 200_000] {
            let pkid = pkid_of(seq);
            assert!(pkid >= 1);
            for later in 0..3 {
                assert_eq!(seq_of_pkid(pkid, seq + 1 + later), Some(seq), "seq {seq}, sent {}", seq + 1 + later);
            }
        }
        assert_eq!(seq_of_pkid(0, 10), None);
        assert_eq!(seq_of_pkid(11, 10), None);
        assert_eq!(seq_of_pkid(1, 0), None);
    }
}
