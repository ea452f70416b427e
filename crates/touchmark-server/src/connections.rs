//! The open connections (issue 11, security finding 1): a cap on how many, and which one makes
//! room for a new one.
//!
//! A connection is **idle** while it is in its TLS handshake or has no request in flight. At
//! the cap, a new connection closes the one idle longest, so a client that connects and sends
//! nothing holds a slot only until others arrive, and a station that connects now gets in. A
//! connection serving a request is never shed; when every connection is busy, the accept loop
//! waits (new connections wait in the listen backlog) until one ends or goes idle. Connections
//! idle longer than the idle timeout are closed, whether or not the cap is reached.
//!
//! A connection told to close still holds its socket until its task has dropped it, so it
//! counts until then; the accept loop runs at most [`MAX_CLOSING`] closes ahead of the tasks.
//! Descriptors in use for connections stay below the cap plus that margin.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Connections told to close whose sockets may still be open, at most, before the accept loop
/// waits for them.
pub(crate) const MAX_CLOSING: usize = 16;

/// Every open connection, and the idle ones by how long they have been idle.
#[derive(Debug)]
pub(crate) struct Connections {
    max: usize,
    state: Mutex<State>,
    /// Woken when a connection ends or goes idle: the accept loop may have room again.
    room: Notify,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Every connection whose socket may be open, closing ones included.
    open: HashMap<u64, Entry>,
    /// `(idle since, id)` of every idle connection not told to close, oldest first.
    idle: BTreeSet<(Instant, u64)>,
    /// Connections told to close and not yet gone.
    closing: usize,
}

#[derive(Debug)]
struct Entry {
    /// Since when it is idle; `None` while a request is in flight.
    idle_since: Option<Instant>,
    /// Requests in flight (several on one HTTP/2 connection).
    busy: u32,
    /// Told to close; it counts until its task drops it.
    closing: bool,
    /// Notified once to close the connection.
    close: Arc<Notify>,
}

impl State {
    /// Tells `id`'s task to close it; it stays counted until the task has.
    fn close(&mut self, id: u64) {
        if let Some(entry) = self.open.get_mut(&id).filter(|e| !e.closing) {
            entry.closing = true;
            if let Some(since) = entry.idle_since.take() {
                self.idle.remove(&(since, id));
            }
            entry.close.notify_one();
            self.closing += 1;
        }
    }

    /// Connections not told to close.
    fn live(&self) -> usize {
        self.open.len() - self.closing
    }
}

impl Connections {
    /// A registry that admits at most `max` connections at once (at least one).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            state: Mutex::new(State::default()),
            room: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once a new connection can be admitted: below the cap, or with an idle
    /// connection to shed and few enough closes under way.
    pub(crate) async fn room(&self) {
        loop {
            {
                let state = self.lock();
                if state.open.len() < self.max
                    || (!state.idle.is_empty() && state.closing < MAX_CLOSING)
                {
                    return;
                }
            }
            // A permit stored by `notify_one` while this task was checking is not lost.
            self.room.notified().await;
        }
    }

    /// Admits a connection accepted at `now`, idle until its first request; at the cap, the
    /// connections idle longest are closed to make room. Returns the connection's slot and
    /// how many were shed.
    pub(crate) fn admit(self: &Arc<Self>, now: Instant) -> (Slot, usize) {
        let mut state = self.lock();
        let mut shed = 0;
        while state.live() >= self.max {
            let Some((_, oldest)) = state.idle.pop_first() else {
                // Every connection is busy: `room` said otherwise a moment ago, and this one
                // goes over the cap by one rather than being dropped unheard.
                break;
            };
            state.close(oldest);
            shed += 1;
        }
        let id = state.next_id;
        state.next_id += 1;
        let close = Arc::new(Notify::new());
        state.open.insert(
            id,
            Entry {
                idle_since: Some(now),
                busy: 0,
                closing: false,
                close: Arc::clone(&close),
            },
        );
        state.idle.insert((now, id));
        let slot = Slot {
            id,
            close,
            connections: Arc::clone(self),
        };
        (slot, shed)
    }

    /// Closes every connection idle since `before` or earlier; returns how many.
    pub(crate) fn close_idle(&self, before: Instant) -> usize {
        let mut state = self.lock();
        let mut closed = 0;
        while let Some(&(since, id)) = state.idle.first() {
            if since > before {
                break;
            }
            state.close(id);
            closed += 1;
        }
        closed
    }

    /// Connections whose sockets may be open now, closing ones included.
    pub(crate) fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn begin(&self, id: u64) {
        let mut state = self.lock();
        let Some(entry) = state.open.get_mut(&id).filter(|e| !e.closing) else {
            return;
        };
        entry.busy += 1;
        if let Some(since) = entry.idle_since.take() {
            state.idle.remove(&(since, id));
        }
    }

    fn end(&self, id: u64, now: Instant) {
        let mut state = self.lock();
        let Some(entry) = state.open.get_mut(&id).filter(|e| !e.closing) else {
            return;
        };
        entry.busy = entry.busy.saturating_sub(1);
        if entry.busy == 0 && entry.idle_since.is_none() {
            entry.idle_since = Some(now);
            state.idle.insert((now, id));
            drop(state);
            self.room.notify_one();
        }
    }

    fn release(&self, id: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.open.remove(&id) {
            if entry.closing {
                state.closing -= 1;
            } else if let Some(since) = entry.idle_since {
                state.idle.remove(&(since, id));
            }
        }
        drop(state);
        self.room.notify_one();
    }
}

/// One admitted connection's place in [`Connections`]; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    close: Arc<Notify>,
    connections: Arc<Connections>,
}

impl Slot {
    /// Completes when the connection is to be closed: shed for a newer one, or idle too long.
    pub(crate) async fn closed(&self) {
        self.close.notified().await;
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub(crate) fn request(&self) -> InFlight {
        self.connections.begin(self.id);
        InFlight {
            id: self.id,
            connections: Arc::clone(&self.connections),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.release(self.id);
    }
}

/// A request in flight on a connection: the connection is not idle while it lives.
#[derive(Debug)]
pub(crate) struct InFlight {
    id: u64,
    connections: Arc<Connections>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connections.end(self.id, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::future::Future;
    use std::time::Duration;

    use super::*;

    fn closed_now(slot: &Slot) -> bool {
        let closed = slot.closed();
        tokio::pin!(closed);
        let waker = std::task::Waker::noop();
        closed
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
            .is_ready()
    }

    #[tokio::test]
    async fn at_the_cap_the_connection_idle_longest_makes_room() {
        let connections = Connections::new(3);
        // In the past, so that a connection going idle now is the one idle least.
        let t0 = Instant::now() - Duration::from_secs(100);
        let (a, _) = connections.admit(t0);
        let (b, _) = connections.admit(t0 + Duration::from_secs(1));
        let (c, _) = connections.admit(t0 + Duration::from_secs(2));
        // `a` serves a request: it is not idle, so `b` is the one idle longest.
        let busy = a.request();
        let (d, shed) = connections.admit(t0 + Duration::from_secs(3));
        assert_eq!(shed, 1);
        assert!(closed_now(&b), "the longest idle is shed");
        assert!(!closed_now(&a) && !closed_now(&c) && !closed_now(&d));
        assert_eq!(connections.open(), 4, "b counts until its task drops it");
        drop(b);
        assert_eq!(connections.open(), 3);
        // `a` goes idle after its request, later than `c` and `d`: `c` goes next.
        drop(busy);
        let (_e, shed) = connections.admit(Instant::now());
        assert_eq!(shed, 1);
        assert!(closed_now(&c));
        assert!(!closed_now(&a) && !closed_now(&d));
    }

    #[tokio::test]
    async fn busy_connections_are_never_shed_and_the_loop_waits_for_room() {
        let connections = Connections::new(2);
        let t0 = Instant::now();
        let (a, _) = connections.admit(t0);
        let (b, _) = connections.admit(t0);
        let (busy_a, busy_b) = (a.request(), b.request());
        let room = connections.room();
        tokio::pin!(room);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(
            room.as_mut().poll(&mut cx).is_pending(),
            "no room, nothing idle"
        );
        drop(busy_b);
        assert!(room.as_mut().poll(&mut cx).is_ready(), "b went idle");
        let (_c, shed) = connections.admit(Instant::now());
        assert_eq!(shed, 1);
        assert!(closed_now(&b) && !closed_now(&a));
        drop(busy_a);
    }

    #[tokio::test]
    async fn connections_idle_too_long_are_closed() {
        let connections = Connections::new(10);
        let t0 = Instant::now();
        let (old, _) = connections.admit(t0);
        let (served, _) = connections.admit(t0);
        let (new, _) = connections.admit(t0 + Duration::from_secs(30));
        let busy = served.request();
        assert_eq!(connections.close_idle(t0 + Duration::from_secs(10)), 1);
        assert!(closed_now(&old));
        assert!(!closed_now(&served) && !closed_now(&new));
        drop(busy);
        drop(old);
        assert_eq!(connections.open(), 2);
    }

    #[tokio::test]
    async fn the_accept_loop_runs_only_so_far_ahead_of_closing_sockets() {
        let connections = Connections::new(MAX_CLOSING);
        let t0 = Instant::now() - Duration::from_secs(100);
        let mut held = Vec::new();
        for i in 0..MAX_CLOSING as u64 {
            held.push(connections.admit(t0 + Duration::from_secs(i)).0);
        }
        // Each newcomer sheds one; none of the shed tasks has dropped its socket yet.
        for _ in 0..MAX_CLOSING {
            connections.room().await;
            held.push(connections.admit(Instant::now()).0);
        }
        assert_eq!(connections.open(), 2 * MAX_CLOSING);
        let room = connections.room();
        tokio::pin!(room);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(
            room.as_mut().poll(&mut cx).is_pending(),
            "16 closes under way"
        );
        held.remove(0);
        assert!(room.as_mut().poll(&mut cx).is_ready(), "one socket is gone");
    }
}
