//! Coarse deadlines for the ring's operations. A tokio timer per operation costs a wheel insert,
//! a removal and a clock read, four times per proxied request; most deadlines are seconds away
//! and never fire. So an operation whose deadline is at least `COARSE_FROM` away only takes a
//! slot in a per-thread table, and a sweeper task, running while any slot is taken, cancels
//! the operations whose deadline has passed every `SWEEP`. Nearer deadlines (open-loop pacing
//! in ringload) keep a precise timer in the caller.

use std::cell::RefCell;
use std::future::Future;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::Driver;

/// Deadlines at least this far away are watched here instead of by a timer each.
const COARSE_FROM: Duration = Duration::from_millis(100);
/// How often the sweeper looks for expired deadlines: the most a coarse deadline runs late.
const SWEEP: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Armed,
    /// The deadline passed and a cancel was submitted for the fd.
    Expired,
}

struct Slot {
    fd: RawFd,
    deadline: Instant,
    state: State,
}

#[derive(Default)]
struct Watch {
    slots: Vec<Slot>,
    free: Vec<usize>,
    armed: usize,
    /// The time of the last sweep while the sweeper runs (a clock read shared by the ops);
    /// None when no sweeper runs on this thread.
    clock: Option<Instant>,
    /// Scratch for the sweeper: slots due this sweep (kept for its capacity).
    due: Vec<usize>,
}

thread_local! {
    static WATCH: RefCell<Watch> = RefCell::default();
}

/// A watched operation's slot; freed on drop (also when the runtime drops the operation).
pub(super) struct Armed(usize);

impl Armed {
    /// Frees the slot once the operation completed; true if the sweeper cancelled it for its
    /// deadline.
    pub(super) fn finish(self) -> bool {
        let i = self.0;
        std::mem::forget(self);
        WATCH.with(|w| w.borrow_mut().free_slot(i)) == State::Expired
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        // try_with: a runtime dropped while the thread exits may outlive the table.
        let _ = WATCH.try_with(|w| w.borrow_mut().free_slot(self.0));
    }
}

/// Takes a slot for an operation in flight on `fd`, or None when the deadline is too near for
/// the sweep's granularity (the caller then keeps a timer of its own).
pub(super) fn arm<R: Driver>(fd: RawFd, deadline: Instant) -> Option<Armed> {
    let (armed, start_sweeper) = WATCH.with(|w| {
        let mut w = w.borrow_mut();
        let now = match w.clock {
            Some(t) => t,
            None => Instant::now(),
        };
        if deadline.saturating_duration_since(now) < COARSE_FROM {
            return (None, false);
        }
        let start_sweeper = w.clock.is_none();
        w.clock = Some(now);
        let slot = Slot {
            fd,
            deadline,
            state: State::Armed,
        };
        let i = match w.free.pop() {
            Some(i) => {
                w.slots[i] = slot;
                i
            }
            None => {
                w.slots.push(slot);
                w.slots.len() - 1
            }
        };
        w.armed += 1;
        (Some(Armed(i)), start_sweeper)
    });
    if start_sweeper {
        // Spawned outside the borrow: a task dropped at once would run `Running`'s drop. The
        // guard goes with the task, so a task dropped before its first poll (the runtime
        // ended) still clears the clock and the next runtime starts a sweeper.
        R::spawn(sweeper::<R>(Running));
    }
    armed
}

/// Marks this thread's sweeper as gone when its task ends, also when the runtime drops it.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        let _ = WATCH.try_with(|w| w.borrow_mut().clock = None);
    }
}

async fn sweeper<R: Driver>(_running: Running) {
    loop {
        R::pause_until(Instant::now() + SWEEP).await;
        let Some(cancels) = WATCH.with(|w| w.borrow_mut().cancel_due::<R>(Instant::now())) else {
            return; // nothing watched: `_running` clears the clock as the task ends
        };
        for c in cancels {
            let _ = c.await; // ENOENT: the operation completed meanwhile
        }
    }
}

impl Watch {
    fn free_slot(&mut self, i: usize) -> State {
        let was = std::mem::replace(&mut self.slots[i].state, State::Free);
        self.free.push(i);
        self.armed -= 1;
        was
    }

    /// Submits a cancel for each operation past its deadline; None when no slot is taken.
    /// Every cancel is queued before any is awaited: while awaiting, an fd could be closed and
    /// reused by a new connection whose operations a late cancel would hit.
    fn cancel_due<R: Driver>(
        &mut self,
        now: Instant,
    ) -> Option<Vec<impl Future<Output = ()> + use<R>>> {
        if self.armed == 0 {
            return None;
        }
        self.clock = Some(now);
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state == State::Armed && s.deadline <= now)
                .map(|(i, _)| i),
        );
        let cancels = due
            .iter()
            .map(|&i| {
                self.slots[i].state = State::Expired;
                super::cancel_fd::<R>(self.slots[i].fd)
            })
            .collect();
        self.due = due;
        Some(cancels)
    }
}
