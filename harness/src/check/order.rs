//! Puts events back into time order within a bounded window before the checkers see them.
//!
//! Worker processes stream their events through separate pipes, so the history file interleaves
//! them in arrival order, which can trail the true order by a flush interval. Checkers that reason
//! about "before" (per-key order, first delivery vs redelivery) need time order; a window of a few
//! seconds restores it with memory bounded by the events of that window.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::history::Event;

pub const WINDOW_NS: u64 = 2_000_000_000;

struct Item {
    t: u64,
    n: u64,
    ev: Event,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.n) == (o.t, o.n)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.t, self.n).cmp(&(o.t, o.n))
    }
}

/// Yields the events of `inner` sorted by time, provided no event arrives more than `window`
/// after a later-stamped one (ties keep arrival order).
pub struct TimeOrdered<I> {
    inner: I,
    heap: BinaryHeap<Reverse<Item>>,
    newest: u64,
    n: u64,
    window: u64,
    done: bool,
}

impl<I: Iterator<Item = Event>> TimeOrdered<I> {
    pub fn new(inner: I, window: u64) -> Self {
        TimeOrdered {
            inner,
            heap: BinaryHeap::new(),
            newest: 0,
            n: 0,
            window,
            done: false,
        }
    }
}

impl<I: Iterator<Item = Event>> Iterator for TimeOrdered<I> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(Reverse(top)) = self.heap.peek() {
                if self.done || top.t.saturating_add(self.window) < self.newest {
                    return self.heap.pop().map(|Reverse(i)| i.ev);
                }
            }
            if self.done {
                return None;
            }
            match self.inner.next() {
                Some(ev) => {
                    let t = ev.time();
                    self.newest = self.newest.max(t);
                    self.n += 1;
                    self.heap.push(Reverse(Item { t, n: self.n, ev }));
                }
                None => self.done = true,
            }
        }
    }
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
        Event::ConsumerError {
            t,
            consumer: 0,
            error: String::new(),
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
    fn late_arrivals_beyond_the_window_pass_through_in_arrival_order() {
        let input = vec![at(1_000), err(2_000), err(10)];
        let out: Vec<u64> = TimeOrdered::new(input.into_iter(), 100)
            .map(|e| e.time())
            .collect();
        assert_eq!(out, vec![1_000, 10, 2_000]);
    }
}
