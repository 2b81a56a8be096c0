//! Puts events back into time order within a bounded window before the checkers see them.
//!
//! Worker processes stream their events through separate pipes, so the history file interleaves
//! them in arrival order, which can trail the true order by a flush interval. The checkers that
//! reason about "before" (per-key order, first delivery vs redelivery) need deliveries in time
//! order; a short window restores it with memory bounded by the deliveries of that window.
//!
//! Histories are nearly sorted, so the buffer is a deque kept in order: an event usually goes on
//! the back, and a late one is inserted a short distance from it.

use std::collections::VecDeque;

use crate::history::Event;

/// Workers flush before every acknowledgement and after every batch, so their events trail the
/// true order by milliseconds. 200 ms is ample, and keeps the buffer small enough to stay in
/// cache (a larger one made the checkers memory-bound).
pub const WINDOW_NS: u64 = 200_000_000;

/// Yields the events of `inner` sorted by time, provided no event arrives more than `window`
/// after a later-stamped one (ties keep arrival order).
pub struct TimeOrdered<I> {
    inner: I,
    buf: VecDeque<(u64, Event)>,
    newest: u64,
    window: u64,
    done: bool,
}

impl<I: Iterator<Item = Event>> TimeOrdered<I> {
    pub fn new(inner: I, window: u64) -> Self {
        TimeOrdered {
            inner,
            buf: VecDeque::new(),
            newest: 0,
            window,
            done: false,
        }
    }

    #[inline]
    fn insert(&mut self, t: u64, ev: Event) {
        // After the last element not later than t: stable for ties, O(1) when in order.
        let at = match self.buf.back() {
            Some((last, _)) if *last > t => self.buf.partition_point(|(x, _)| *x <= t),
            _ => self.buf.len(),
        };
        self.buf.insert(at, (t, ev));
    }
}

impl<I: Iterator<Item = Event>> Iterator for TimeOrdered<I> {
    type Item = Event;

    #[inline]
    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some((front, _)) = self.buf.front() {
                if self.done || front.saturating_add(self.window) < self.newest {
                    return self.buf.pop_front().map(|(_, ev)| ev);
                }
            }
            if self.done {
                return None;
            }
            match self.inner.next() {
                Some(ev) if !needs_order(&ev) => return Some(ev),
                Some(ev) => {
                    let t = ev.time();
                    self.newest = self.newest.max(t);
                    self.insert(t, ev);
                }
                None => self.done = true,
            }
        }
    }
}

/// The records whose relative order a checker depends on: deliveries (per-key order, first
/// delivery vs redelivery) and consumers' lives (a rebalance begins at a membership change and
/// ends at the deliveries after it). Everything else is counted by its own timestamp or by
/// identity, so it skips the buffer, which keeps the buffer small enough to stay in cache.
fn needs_order(ev: &Event) -> bool {
    matches!(ev, Event::Deliver { .. } | Event::Worker { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Phase;

    fn at(t: u64) -> Event {
        Event::Phase {
            t,
            phase: Phase::LoadEnd,
        }
    }

    fn err(t: u64) -> Event {
        Event::Deliver {
            t,
            consumer: 0,
            id: crate::message::MsgId {
                producer: 0,
                key: 0,
                seq: 0,
            },
            intended: 0,
            pos: crate::history::Position::Unknown,
            redelivered: false,
            receive_count: 1,
        }
    }

    #[test]
    fn restores_order_within_the_window() {
        let input = vec![err(10), err(30), err(20), err(25), err(100), err(5_000)];
        let out: Vec<u64> = TimeOrdered::new(input.into_iter(), 50)
            .map(|e| e.time())
            .collect();
        assert_eq!(out, vec![10, 20, 25, 30, 100, 5_000]);
    }

    #[test]
    fn ties_keep_arrival_order() {
        let input = vec![at(10), err(10), at(5), err(10)];
        let out: Vec<bool> = TimeOrdered::new(input.into_iter(), 50)
            .map(|e| matches!(e, Event::Phase { .. }))
            .collect();
        // Sorted: the phase at 5, then the three events at 10 in the order they arrived.
        assert_eq!(out, vec![true, true, false, false]);
    }

    #[test]
    fn late_arrivals_beyond_the_window_pass_through_in_arrival_order() {
        let input = vec![at(1_000), err(2_000), err(10)];
        let out: Vec<u64> = TimeOrdered::new(input.into_iter(), 100)
            .map(|e| e.time())
            .collect();
        assert_eq!(out, vec![1_000, 10, 2_000]);
    }
}
