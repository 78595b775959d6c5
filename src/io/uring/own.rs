//! Our own event loop for a thread's ring: a queue of tasks, their wakers, and the ring's
//! completions, with nothing else polled. Where the kernel has them (6.1), the ring is set up
//! with `SINGLE_ISSUER | DEFER_TASKRUN`: the kernel then runs the work that turns a socket's
//! readiness into a completion only inside our `io_uring_enter`, so a completion never
//! interrupts the thread (tokio-uring's ring takes an IPI for it, perf/README.md), and each turn
//! of the loop is one system call that submits, runs that work and, when idle, waits.
//!
//! An operation owns its data until its completion: a dropped `Op` leaves the data in its slot
//! (`Slot::Orphan`) until the kernel is done with it. At the end of `block_on` every task is
//! dropped, everything still in flight is cancelled, and the loop waits for those completions
//! before the ring closes (`Runtime::shut_down`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Timespec};
use io_uring::{IoUring, opcode, squeue};
use slab::Slab;

use super::{Driver, FirstFailed};

/// Submission queue entries; the completion queue has twice as many.
const ENTRIES: u32 = 1024;
/// How long the end of `block_on` waits for cancelled operations before it leaks their data
/// rather than free memory the kernel may still write.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);
/// include/uapi/linux/io_uring.h (the io-uring crate keeps its `sys` module private).
const IORING_ENTER_GETEVENTS: u32 = 1;
/// Marks the user data of the first entry of a linked pair (the slot index is below it).
const FIRST: u64 = 1 << 63;

pub struct OwnRing;

impl Driver for OwnRing {
    const NAME: &'static str = "io_uring (own loop)";
    type Op<D: Unpin + 'static> = Op<D>;

    fn submit<D: Unpin + 'static>(data: D, sqe: squeue::Entry) -> Op<D> {
        let idx = with_runtime(|rt| rt.push(sqe));
        Op {
            idx,
            data: Some(data),
        }
    }

    fn block_on<F: Future>(fut: F) -> F::Output {
        let rt = Rc::new(Runtime::new().expect("io_uring setup failed"));
        RUNTIME.with(|r| {
            let mut r = r.borrow_mut();
            assert!(r.is_none(), "block_on inside block_on");
            *r = Some(rt.clone());
        });
        let _teardown = Teardown(rt.clone());
        rt.run(fut)
    }

    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        with_runtime(|rt| rt.spawn(Box::pin(fut)));
    }

    /// `first` goes with `IO_LINK | CQE_SKIP_SUCCESS`: when it succeeds it posts nothing and
    /// `second` runs; when it fails it posts its own completion and the kernel ends `second`
    /// without one (tests/io_seam.rs `write_then_read::ring` depends on both).
    fn submit_linked<D: Unpin + 'static>(
        data: D,
        first: squeue::Entry,
        second: squeue::Entry,
    ) -> Result<Op<D>, D> {
        match with_runtime(|rt| rt.links.then(|| rt.push_linked(first, second))) {
            Some(idx) => Ok(Op {
                idx,
                data: Some(data),
            }),
            None => Err(data),
        }
    }

    async fn sleep_until(deadline: Instant) {
        let ts = TIMESPECS
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| Box::new(Timespec::new()));
        let ts = super::timeout::<Self>(ts, deadline).await;
        TIMESPECS.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < TIMESPECS_KEPT {
                p.push(ts);
            }
        });
    }

    async fn pause_until(deadline: Instant) {
        Self::sleep_until(deadline).await;
    }

    fn now() -> Instant {
        TURN.get().unwrap_or_else(Instant::now)
    }
}

/// Timespecs kept for reuse, so that timers allocate nothing in steady state.
const TIMESPECS_KEPT: usize = 64;

thread_local! {
    // Boxes: the kernel is given each one's address, which must not move with the Vec.
    #[allow(clippy::vec_box)]
    static TIMESPECS: RefCell<Vec<Box<Timespec>>> = const { RefCell::new(Vec::new()) };
    static RUNTIME: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
    /// When the current turn of the loop began (`OwnRing::now`); None outside `block_on`.
    static TURN: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Its address names the thread, for the check that a waker never leaves it.
    static THREAD_MARK: u8 = const { 0 };
}

fn with_runtime<T>(f: impl FnOnce(&Runtime) -> T) -> T {
    RUNTIME.with(|r| {
        f(r.borrow()
            .as_ref()
            .expect("no io_uring runtime on this thread"))
    })
}

fn thread_mark() -> usize {
    THREAD_MARK.with(|m| m as *const u8 as usize)
}

enum Slot {
    /// In flight; the waker of the task that awaits it.
    Waiting(Option<Waker>),
    /// Completed with this result, not yet taken by its `Op`.
    Done(i32),
    /// The first of a linked pair failed with this result; the second never ran.
    FirstFailed(i32),
    /// Its `Op` was dropped: the data stays until the completion.
    Orphan(Box<dyn Any>),
}

struct Core {
    ring: IoUring,
    slots: Slab<Slot>,
}

struct Task {
    fut: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    queued: Cell<bool>,
    /// Index in `Runtime::tasks` while the task is alive.
    key: Cell<usize>,
    thread: usize,
}

struct Runtime {
    core: RefCell<Core>,
    ready: RefCell<VecDeque<Rc<Task>>>,
    /// Every task not finished, so that the end of `block_on` can drop them.
    tasks: RefCell<Slab<Rc<Task>>>,
    main_woken: Cell<bool>,
    /// Linked submissions are used only on a `DEFER_TASKRUN` ring (kernel 6.1): older kernels
    /// may lack the full-length retry of a `MSG_WAITALL` send that the link relies on.
    links: bool,
}

impl Runtime {
    fn new() -> io::Result<Runtime> {
        let deferred = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(ENTRIES);
        let links = deferred.is_ok();
        let ring = deferred
            // Kernels before 6.1: a plain ring, whose completion work interrupts the thread.
            .or_else(|_| IoUring::builder().setup_coop_taskrun().build(ENTRIES))
            .or_else(|_| IoUring::new(ENTRIES))?;
        Ok(Runtime {
            links,
            core: RefCell::new(Core {
                ring,
                slots: Slab::with_capacity(256),
            }),
            ready: RefCell::new(VecDeque::with_capacity(256)),
            tasks: RefCell::new(Slab::with_capacity(256)),
            main_woken: Cell::new(true),
        })
    }

    /// Queues an operation; returns its slot.
    fn push(&self, sqe: squeue::Entry) -> usize {
        let mut core = self.core.borrow_mut();
        let idx = core.slots.insert(Slot::Waiting(None));
        let sqe = sqe.user_data(idx as u64);
        core.make_room(1);
        // SAFETY: the data the entry points to is owned by the `Op` and, once the `Op` is
        // dropped, by the slot, until the completion. There is room for it.
        let pushed = unsafe { core.ring.submission().push(&sqe) }.is_ok();
        debug_assert!(pushed);
        idx
    }

    fn push_linked(&self, first: squeue::Entry, second: squeue::Entry) -> usize {
        let mut core = self.core.borrow_mut();
        let idx = core.slots.insert(Slot::Waiting(None));
        let first = first
            .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
            .user_data(idx as u64 | FIRST);
        let second = second.user_data(idx as u64);
        // A link holds only within one submission: both entries go in together.
        core.make_room(2);
        // SAFETY: as in `push`; there is room for both.
        unsafe {
            let mut sq = core.ring.submission();
            let pushed = sq.push(&first).is_ok() && sq.push(&second).is_ok();
            debug_assert!(pushed);
        }
        idx
    }

    fn spawn(&self, fut: Pin<Box<dyn Future<Output = ()>>>) {
        let task = Rc::new(Task {
            fut: RefCell::new(Some(fut)),
            queued: Cell::new(true),
            key: Cell::new(0),
            thread: thread_mark(),
        });
        task.key.set(self.tasks.borrow_mut().insert(task.clone()));
        self.ready.borrow_mut().push_back(task);
    }

    fn run<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let main_waker = main_waker();
        loop {
            TURN.set(Some(Instant::now()));
            if self.main_woken.replace(false)
                && let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(&main_waker))
            {
                return out;
            }
            // Only the tasks queued now: a task that keeps waking itself must not starve the
            // completions.
            let n = self.ready.borrow().len();
            for _ in 0..n {
                let Some(task) = self.ready.borrow_mut().pop_front() else {
                    break;
                };
                self.poll_task(task);
            }
            let busy = self.main_woken.get() || !self.ready.borrow().is_empty();
            self.core.borrow_mut().enter(!busy);
        }
    }

    fn poll_task(&self, task: Rc<Task>) {
        task.queued.set(false);
        let waker = task_waker(task.clone());
        let mut slot = task.fut.borrow_mut();
        let Some(fut) = slot.as_mut() else { return };
        if fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            *slot = None;
            drop(slot);
            self.tasks.borrow_mut().try_remove(task.key.get());
        }
    }

    /// Drops every task, cancels what is still in flight and waits for it (see module doc).
    /// False when something did not complete in time: the caller must then leak the runtime.
    fn shut_down(&self) -> bool {
        let tasks: Vec<Rc<Task>> = self.tasks.borrow_mut().drain().collect();
        for t in &tasks {
            // Taken out first: dropping a future can wake or drop other tasks.
            let fut = t.fut.borrow_mut().take();
            drop(fut);
        }
        drop(tasks);
        self.ready.borrow_mut().clear();
        let Ok(mut core) = self.core.try_borrow_mut() else {
            return false;
        };
        if core.slots.is_empty() {
            return true;
        }
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any()).build();
        let ts = Timespec::new()
            .sec(SHUTDOWN_WAIT.as_secs())
            .nsec(SHUTDOWN_WAIT.subsec_nanos());
        let guard_idx = core.slots.insert(Slot::Waiting(None));
        let cancel_idx = core.slots.insert(Slot::Waiting(None));
        let guard = opcode::Timeout::new(&ts)
            .build()
            .user_data(guard_idx as u64);
        let cancel = cancel.user_data(cancel_idx as u64);
        // The cancel goes first: it cancels whatever is in flight when the kernel takes it,
        // and the guard, taken after it, must not be among those.
        // SAFETY: the kernel copies the timespec when it takes the entry, in the first
        // `enter` below.
        let pushed = unsafe {
            let mut sq = core.ring.submission();
            sq.push(&cancel).is_ok() && sq.push(&guard).is_ok()
        };
        if pushed {
            loop {
                core.enter(true);
                let guard_fired = matches!(core.slots.get(guard_idx), Some(Slot::Done(_)));
                let others = core.slots.iter().any(|(i, s)| {
                    i != guard_idx
                        && i != cancel_idx
                        && !matches!(s, Slot::Done(_) | Slot::FirstFailed(_))
                });
                if !others {
                    return true; // the ring closes with the guard still queued: harmless
                }
                if guard_fired {
                    return false;
                }
            }
        }
        false
    }
}

impl Core {
    /// Frees `n` entries in the submission queue, handing what is queued to the kernel.
    fn make_room(&mut self, n: usize) {
        while {
            let sq = self.ring.submission();
            sq.capacity() - sq.len() < n
        } {
            if let Err(e) = self.ring.submit() {
                assert!(
                    e.raw_os_error() == Some(libc::EBUSY),
                    "io_uring submit: {e}"
                );
                self.reap(); // completions must be taken first
            }
        }
    }

    /// One `io_uring_enter`: submits what is queued, runs the kernel's deferred completion
    /// work, and with `wait` blocks until at least one completion; then hands out completions.
    fn enter(&mut self, wait: bool) {
        let to_submit = self.ring.submission().len() as u32;
        // SAFETY: plain io_uring_enter on our ring, no signal mask argument.
        let r = unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                to_submit,
                u32::from(wait),
                IORING_ENTER_GETEVENTS,
                None,
            )
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                // Interrupted, or completions are waiting to be reaped first.
                Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                _ => panic!("io_uring_enter: {e}"),
            }
        }
        self.reap();
    }

    fn reap(&mut self) {
        let Core { ring, slots } = self;
        for cqe in ring.completion() {
            let ud = cqe.user_data();
            let idx = (ud & !FIRST) as usize;
            let Some(slot) = slots.get_mut(idx) else {
                continue;
            };
            let done = if ud & FIRST != 0 {
                Slot::FirstFailed(cqe.result())
            } else {
                Slot::Done(cqe.result())
            };
            match std::mem::replace(slot, done) {
                Slot::Waiting(Some(w)) => w.wake(),
                Slot::Waiting(None) | Slot::Done(_) | Slot::FirstFailed(_) => {}
                Slot::Orphan(data) => {
                    slots.remove(idx);
                    drop(data);
                }
            }
        }
    }
}

/// Ends a runtime: shut down, then the thread has none.
struct Teardown(Rc<Runtime>);

impl Drop for Teardown {
    fn drop(&mut self) {
        if !self.0.shut_down() {
            // Operations still in flight: their data and the ring stay allocated for good,
            // never freed under the kernel.
            std::mem::forget(self.0.clone());
        }
        let _ = RUNTIME.try_with(|r| r.borrow_mut().take());
        let _ = TURN.try_with(|t| t.set(None));
    }
}

/// An operation in flight on this thread's ring.
pub struct Op<D: 'static> {
    idx: usize,
    data: Option<D>,
}

impl<D: Unpin + 'static> Future for Op<D> {
    type Output = (io::Result<u32>, D);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        with_runtime(|rt| {
            let mut core = rt.core.borrow_mut();
            let r = match &mut core.slots[this.idx] {
                Slot::Done(res) if *res < 0 => Err(io::Error::from_raw_os_error(-*res)),
                Slot::Done(res) => Ok(*res as u32),
                Slot::FirstFailed(res) => Err(io::Error::other(FirstFailed(*res))),
                Slot::Waiting(w) => {
                    if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *w = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Slot::Orphan(_) => unreachable!("a live Op's slot is never orphaned"),
            };
            core.slots.remove(this.idx);
            Poll::Ready((r, this.data.take().expect("Op polled after completion")))
        })
    }
}

impl<D: 'static> Drop for Op<D> {
    fn drop(&mut self) {
        let Some(data) = self.data.take() else {
            return; // completed
        };
        let _ = RUNTIME.try_with(|r| {
            let r = r.borrow();
            let Some(rt) = r.as_ref() else {
                std::mem::forget(data); // no runtime: never free what the kernel may write
                return;
            };
            let mut core = rt.core.borrow_mut();
            match core.slots.get_mut(self.idx) {
                Some(Slot::Done(_) | Slot::FirstFailed(_)) => {
                    core.slots.remove(self.idx);
                }
                Some(slot) => *slot = Slot::Orphan(Box::new(data)),
                None => std::mem::forget(data),
            }
        });
    }
}

// ---- wakers ----
//
// A task's waker is an `Rc<Task>`. Wakers must not leave the thread (every future here is
// `!Send`, and tokio::sync's primitives are only signalled from the thread that waits); each
// use checks that and aborts rather than touch the `Rc` from another thread.

fn check_thread(task: &Task) {
    // try_with: a waker dropped while the thread exits, after its thread-locals are gone.
    let here = THREAD_MARK.try_with(|m| m as *const u8 as usize);
    if here.is_ok_and(|here| here != task.thread) {
        eprintln!("io_uring runtime: a task's waker was used on another thread");
        std::process::abort();
    }
}

fn task_waker(task: Rc<Task>) -> Waker {
    let raw = RawWaker::new(Rc::into_raw(task).cast(), &TASK_VTABLE);
    // SAFETY: the vtable below keeps the Rc count balanced.
    unsafe { Waker::from_raw(raw) }
}

static TASK_VTABLE: RawWakerVTable =
    RawWakerVTable::new(task_clone, task_wake, task_wake_by_ref, task_drop);

unsafe fn task_clone(p: *const ()) -> RawWaker {
    // SAFETY: p came from Rc::into_raw of a Task.
    let task = unsafe { &*p.cast::<Task>() };
    check_thread(task);
    unsafe { Rc::increment_strong_count(p.cast::<Task>()) };
    RawWaker::new(p, &TASK_VTABLE)
}

unsafe fn task_wake(p: *const ()) {
    // SAFETY: p came from Rc::into_raw; this consumes that count.
    let task = unsafe { Rc::from_raw(p.cast::<Task>()) };
    check_thread(&task);
    schedule(task);
}

unsafe fn task_wake_by_ref(p: *const ()) {
    // SAFETY: as in task_clone.
    let task = unsafe { &*p.cast::<Task>() };
    check_thread(task);
    unsafe { Rc::increment_strong_count(p.cast::<Task>()) };
    schedule(unsafe { Rc::from_raw(p.cast::<Task>()) });
}

unsafe fn task_drop(p: *const ()) {
    // SAFETY: as in task_wake.
    let task = unsafe { Rc::from_raw(p.cast::<Task>()) };
    check_thread(&task);
}

fn schedule(task: Rc<Task>) {
    if task.queued.replace(true) {
        return;
    }
    let _ = RUNTIME.try_with(|r| {
        if let Some(rt) = r.borrow().as_ref() {
            rt.ready.borrow_mut().push_back(task);
        }
    });
}

/// The waker of `block_on`'s own future: it only sets a flag.
fn main_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &MAIN_VTABLE)
    }
    fn wake(_: *const ()) {
        let _ = RUNTIME.try_with(|r| {
            if let Some(rt) = r.borrow().as_ref() {
                rt.main_woken.set(true);
            }
        });
    }
    fn drop(_: *const ()) {}
    static MAIN_VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    // SAFETY: the vtable's functions ignore the null data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &MAIN_VTABLE)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io_uring::types::Fd;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    /// Inside the loop `now` is the clock of the current turn (the same until the loop turns,
    /// never ahead of the real clock); outside it is the real clock.
    #[test]
    fn now_is_read_once_per_turn() {
        OwnRing::block_on(async {
            let turn = OwnRing::now();
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(OwnRing::now(), turn);
            assert!(turn < Instant::now());
            OwnRing::sleep_until(Instant::now() + Duration::from_millis(1)).await;
            assert!(OwnRing::now() >= turn + Duration::from_millis(2));
        });
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(1));
        assert!(OwnRing::now() > t, "outside a loop: the real clock");
    }

    /// A receive on `fd` whose data holds `marker` (so the test sees when the data is freed).
    fn recv(fd: i32, marker: Rc<()>) -> Op<(Vec<u8>, Rc<()>)> {
        let mut buf = vec![0u8; 16];
        let sqe = opcode::Recv::new(Fd(fd), buf.as_mut_ptr(), 16).build();
        OwnRing::submit((buf, marker), sqe)
    }

    #[test]
    fn a_dropped_operation_keeps_its_data_until_the_kernel_completes_it() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let marker = Rc::new(());
        OwnRing::block_on(async {
            drop(recv(a.as_raw_fd(), marker.clone()));
            assert_eq!(Rc::strong_count(&marker), 2, "the slot holds the data");
            b.write_all(b"x").unwrap();
            OwnRing::sleep_until(Instant::now() + Duration::from_millis(20)).await;
            assert_eq!(Rc::strong_count(&marker), 1, "freed at the completion");
        });
    }

    #[test]
    fn the_end_of_block_on_cancels_what_is_in_flight_and_frees_its_data() {
        let (a, _b) = UnixStream::pair().unwrap();
        let marker = Rc::new(());
        let (fd, m) = (a.as_raw_fd(), marker.clone());
        OwnRing::block_on(async move {
            OwnRing::spawn(async move {
                let _ = recv(fd, m).await; // never completes by itself
            });
            OwnRing::sleep_until(Instant::now() + Duration::from_millis(20)).await;
        });
        assert_eq!(
            Rc::strong_count(&marker),
            1,
            "cancelled, reaped and freed, not leaked"
        );
    }
}
