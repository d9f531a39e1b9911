//! The per-session outbox: seq assignment, bounded retention of
//! unacknowledged deliveries, acknowledgements, and gap detection.
//!
//! Invariant: the outbox holds exactly the deliveries with seq in
//! `base..next`, in order. Seqs in `acked+1..base` were dropped by a bound
//! before being acknowledged; a client that has not seen them is told with a
//! `gap` frame before any later message. Because only the oldest entries are
//! ever dropped, one comparison (`sent + 1 < base`) finds every gap.

use std::collections::VecDeque;

use crate::protocol::Delivery;

/// The reason carried by `gap` frames caused by the outbox bounds.
pub const GAP_REASON_OUTBOX_FULL: &str = "outbox_full";

/// The next item for the writer, borrowed from the outbox.
#[derive(Debug)]
pub enum Unsent<'a> {
    /// `from..=to` were dropped.
    Gap(u64, u64),
    /// A delivery with this recipient's seq.
    Message(u64, &'a Delivery),
}

/// Sequence numbers, retained deliveries and acknowledgements of one session.
#[derive(Debug)]
pub struct Outbox {
    entries: VecDeque<Delivery>,
    bytes: usize,
    /// Bytes of the deliveries not yet handed to the writer.
    unsent_bytes: usize,
    base: u64,
    next: u64,
    acked: u64,
    sent: u64,
    /// The highest seq handed to a writer before the last resume: items up
    /// to it are sent again.
    resent_up_to: u64,
    dropped_total: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// An empty outbox; the first delivery gets seq 1.
    pub fn new() -> Self {
        Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            unsent_bytes: 0,
            base: 1,
            next: 1,
            acked: 0,
            sent: 0,
            resent_up_to: 0,
            dropped_total: 0,
        }
    }

    /// Appends a delivery with the next seq, then drops the oldest
    /// unacknowledged deliveries while over either bound. Returns how many
    /// were dropped.
    pub fn push(&mut self, d: Delivery, max_messages: usize, max_bytes: usize) -> u64 {
        self.bytes += d.size();
        self.unsent_bytes += d.size();
        self.entries.push_back(d);
        self.next += 1;
        let mut dropped = 0;
        while self.entries.len() > max_messages || self.bytes > max_bytes {
            if self.drop_oldest().is_none() {
                break;
            }
            dropped += 1;
        }
        self.dropped_total += dropped;
        dropped
    }

    /// Drops the oldest retained delivery (acknowledged or not); a client
    /// that has not been sent it gets a gap. Returns its size.
    fn drop_oldest(&mut self) -> Option<usize> {
        let old = self.entries.pop_front()?;
        self.bytes -= old.size();
        if self.base > self.sent {
            self.unsent_bytes -= old.size();
        }
        self.base += 1;
        Some(old.size())
    }

    /// Drops the oldest deliveries until at least `bytes` are freed (or
    /// nothing is left): what the server-wide outbox budget takes from a
    /// session. Returns how many were dropped and the bytes freed.
    pub fn trim(&mut self, bytes: usize) -> (u64, usize) {
        let (mut count, mut freed) = (0, 0);
        while freed < bytes {
            let Some(size) = self.drop_oldest() else {
                break;
            };
            count += 1;
            freed += size;
        }
        self.dropped_total += count;
        (count, freed)
    }

    /// Bytes of the deliveries queued and not yet handed to the writer.
    pub fn unsent_bytes(&self) -> usize {
        self.unsent_bytes
    }

    /// The seq of the newest delivery (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next - 1
    }

    /// The highest acknowledged seq.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The highest seq handed to the attached connection's writer.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Items with a seq up to this one were handed to a writer before the
    /// last resume: sending them now is a redelivery.
    pub fn resent_up_to(&self) -> u64 {
        self.resent_up_to
    }

    /// Deliveries not yet handed to the writer.
    pub fn unsent(&self) -> u64 {
        self.last_seq() - self.sent
    }

    /// Deliveries retained for redelivery.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes retained.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Deliveries ever dropped by the bounds.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// A cumulative acknowledgement. Acknowledging a seq that was never
    /// delivered is an error; acknowledging an old seq again is not.
    pub fn ack(&mut self, seq: u64) -> Result<(), String> {
        if seq > self.sent {
            return Err(format!(
                "cannot acknowledge seq {seq}: only seqs up to {} were delivered",
                self.sent
            ));
        }
        self.release(seq);
        Ok(())
    }

    fn release(&mut self, seq: u64) {
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        while self.base <= seq {
            match self.entries.pop_front() {
                Some(d) => {
                    self.bytes -= d.size();
                    self.base += 1;
                }
                None => {
                    self.base = seq + 1;
                    break;
                }
            }
        }
    }

    /// Prepares for a (re)attached connection whose client has processed
    /// every seq up to `last_seq`: acknowledges them and rewinds the writer
    /// so that every later retained delivery is sent again, in order.
    pub fn resume(&mut self, last_seq: u64) -> Result<(), String> {
        if last_seq > self.last_seq() {
            return Err(format!(
                "resume.last_seq {last_seq} is ahead of the session, whose last seq is {}",
                self.last_seq()
            ));
        }
        self.release(last_seq);
        self.resent_up_to = self.resent_up_to.max(self.sent);
        self.sent = self.acked;
        self.unsent_bytes = self.bytes;
        Ok(())
    }

    /// Marks items as sent, handing each to `emit` in order: first a gap if
    /// deliveries the client has not seen were dropped, then deliveries in
    /// seq order, borrowed (the outbox keeps them until they are
    /// acknowledged). Stops after `max` items, or after an item for which
    /// `emit` returns false. Returns whether more remain.
    pub fn send_next(&mut self, max: usize, mut emit: impl FnMut(Unsent<'_>) -> bool) -> bool {
        let mut n = 0;
        if self.sent + 1 < self.base && self.sent < self.last_seq() {
            let go_on = emit(Unsent::Gap(self.sent + 1, self.base - 1));
            self.sent = self.base - 1;
            n += 1;
            if !go_on {
                return self.sent < self.last_seq();
            }
        }
        while self.sent < self.last_seq() && n < max {
            let idx = (self.sent + 1 - self.base) as usize;
            let d = &self.entries[idx];
            self.unsent_bytes -= d.size();
            let go_on = emit(Unsent::Message(self.sent + 1, d));
            self.sent += 1;
            n += 1;
            if !go_on {
                break;
            }
        }
        self.sent < self.last_seq()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DeliveryKind;

    fn d(n: u64) -> Delivery {
        Delivery::new(DeliveryKind::Direct, None, None, None, &n.to_string(), 0)
    }

    /// Sends up to `max` items: their labels, and whether more remain.
    fn send(o: &mut Outbox, max: usize) -> (Vec<String>, bool) {
        let mut sent = vec![];
        let more = o.send_next(max, |u| {
            sent.push(match u {
                Unsent::Message(seq, _) => seq.to_string(),
                Unsent::Gap(a, b) => format!("gap{a}-{b}"),
            });
            true
        });
        (sent, more)
    }

    #[test]
    fn unsent_bytes_follow_pushes_sends_drops_trims_and_resumes() {
        let mut o = Outbox::new();
        let size = d(1).size();
        for i in 0..4 {
            o.push(d(i), 10, 1 << 20);
        }
        assert_eq!(o.unsent_bytes(), 4 * size);
        send(&mut o, 1);
        assert_eq!(o.unsent_bytes(), 3 * size);
        // Dropping the sent oldest frees no unsent bytes; the next does.
        assert_eq!(o.trim(2 * size), (2, 2 * size));
        assert_eq!(o.unsent_bytes(), 2 * size);
        assert_eq!(o.bytes(), 2 * size);
        assert_eq!(send(&mut o, 10).0, ["gap2-2", "3", "4"]);
        assert_eq!(o.unsent_bytes(), 0);
        o.resume(2).unwrap();
        assert_eq!(o.unsent_bytes(), 2 * size);
        assert_eq!(o.dropped_total(), 2);
    }

    #[test]
    fn seqs_start_at_one_and_are_contiguous() {
        let mut o = Outbox::new();
        for i in 0..3 {
            o.push(d(i), 10, 1 << 20);
        }
        assert_eq!(
            send(&mut o, 10),
            (vec!["1".into(), "2".into(), "3".into()], false)
        );
        assert_eq!(o.unsent(), 0);
    }

    #[test]
    fn send_next_stops_after_the_item_emit_refuses_more_for() {
        let mut o = Outbox::new();
        for i in 0..5 {
            o.push(d(i), 10, 1 << 20);
        }
        let mut seen = vec![];
        let more = o.send_next(10, |u| {
            if let Unsent::Message(seq, _) = u {
                seen.push(seq);
            }
            seen.len() < 2
        });
        assert!(more);
        assert_eq!(seen, [1, 2]);
        assert_eq!(o.unsent(), 3);
        assert_eq!(
            send(&mut o, 10),
            (vec!["3".into(), "4".into(), "5".into()], false)
        );
    }

    #[test]
    fn resume_redelivers_unacked_in_order_after_last_seq() {
        let mut o = Outbox::new();
        for i in 0..5 {
            o.push(d(i), 10, 1 << 20);
        }
        send(&mut o, 10);
        o.ack(2).unwrap();
        o.resume(3).unwrap();
        assert_eq!(send(&mut o, 10).0, ["4", "5"]);
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn dropping_unsent_deliveries_announces_a_gap_before_later_ones() {
        let mut o = Outbox::new();
        for i in 0..6 {
            assert_eq!(o.push(d(i), 4, 1 << 20), u64::from(i >= 4));
        }
        assert_eq!(send(&mut o, 10).0, ["gap1-2", "3", "4", "5", "6"]);
        assert_eq!(o.dropped_total(), 2);
    }

    #[test]
    fn a_gap_covered_by_last_seq_is_not_announced() {
        let mut o = Outbox::new();
        for i in 0..6 {
            o.push(d(i), 4, 1 << 20);
        }
        o.resume(2).unwrap();
        assert_eq!(send(&mut o, 10).0, ["3", "4", "5", "6"]);
    }

    #[test]
    fn ack_of_an_undelivered_seq_is_refused() {
        let mut o = Outbox::new();
        o.push(d(1), 4, 1 << 20);
        assert!(o.ack(1).is_err());
        send(&mut o, 10);
        assert!(o.ack(1).is_ok());
        assert!(o.ack(1).is_ok(), "acknowledging again is harmless");
        assert!(o.is_empty());
    }

    #[test]
    fn resume_ahead_of_the_session_is_refused() {
        let mut o = Outbox::new();
        o.push(d(1), 4, 1 << 20);
        assert!(o.resume(2).is_err());
        assert!(o.resume(1).is_ok());
    }

    #[test]
    fn byte_bound_drops_oldest() {
        let mut o = Outbox::new();
        let size = d(1).size();
        for i in 0..5 {
            o.push(d(i), 100, size * 3);
        }
        assert_eq!(o.len(), 3);
        assert!(o.bytes() <= size * 3);
    }

    #[test]
    fn send_next_respects_batch_size() {
        let mut o = Outbox::new();
        for i in 0..5 {
            o.push(d(i), 10, 1 << 20);
        }
        assert_eq!(send(&mut o, 2), (vec!["1".into(), "2".into()], true));
        assert_eq!(
            send(&mut o, 10),
            (vec!["3".into(), "4".into(), "5".into()], false)
        );
    }
}
