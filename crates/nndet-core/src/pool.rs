//! The CPU thread pool that every kernel shares, and its parallel-for.
//!
//! Size: `det_num_threads` (read once, at first use), else all cores. The calling thread takes part in the
//! work, so a pool of N threads runs N-1 workers. A nested call (from inside a task) or a call made while
//! another thread is dispatching runs serially on the caller: correct, never a deadlock.
//!
//! NOTE: `parallel_for` hands workers a pointer to a closure on the caller's stack. That is sound because the
//! caller does not return before every worker that registered for the job has deregistered, and workers
//! register only while the job is posted (both under the state mutex).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;

struct JobData<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    n: usize,
    next: AtomicUsize,
    panic: Mutex<Option<String>>,
}

impl JobData<'_> {
    /// Claim and run tasks until none are left.
    fn run(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            if let Err(_) = catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                let msg = crate::error::take_panic_message().unwrap_or_else(|| "panic in pool task".into());
                self.panic.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(msg);
                // Drain the remaining tasks so the job ends quickly.
                self.next.store(self.n, Ordering::Relaxed);
            }
        }
    }
}

struct State {
    job: usize, // *const JobData as usize; 0 = none posted
    generation: u64,
    active: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    idle: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    dispatch: Mutex<()>,
}

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

fn worker(shared: Arc<Shared>) {
    crate::error::ensure_panic_hook();
    IN_TASK.with(|t| t.set(true));
    let mut seen = 0u64;
    loop {
        let job_ptr = {
            let mut st = shared.state.lock().unwrap();
            while !st.shutdown && (st.generation == seen || st.job == 0) {
                if st.generation != seen && st.job == 0 {
                    seen = st.generation; // a job came and went while we slept
                }
                st = shared.work.wait(st).unwrap();
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            st.active += 1;
            st.job
        };
        // SAFETY: the dispatcher keeps the JobData alive until `active` returns to zero.
        let job = unsafe { &*(job_ptr as *const JobData) };
        job.run();
        let mut st = shared.state.lock().unwrap();
        st.active -= 1;
        if st.active == 0 {
            shared.idle.notify_all();
        }
    }
}

impl Pool {
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State { job: 0, generation: 0, active: 0, shutdown: false }),
            work: Condvar::new(),
            idle: Condvar::new(),
        });
        for i in 1..threads {
            let s = shared.clone();
            thread::Builder::new()
                .name(format!("nndet-pool-{i}"))
                .spawn(move || worker(s))
                .expect("spawn pool thread");
        }
        Pool { shared, threads, dispatch: Mutex::new(()) }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run `f(i)` for every i in 0..n, spread over the pool. Panics in tasks are re-raised here.
    pub fn parallel_for<F: Fn(usize) + Sync>(&self, n: usize, f: F) {
        if n == 0 {
            return;
        }
        let nested = IN_TASK.with(|t| t.get());
        let guard = if nested || self.threads == 1 || n == 1 { None } else { self.dispatch.try_lock().ok() };
        let Some(_dispatch) = guard else {
            (0..n).for_each(&f);
            return;
        };
        let job = JobData { f: &f, n, next: AtomicUsize::new(0), panic: Mutex::new(None) };
        {
            let mut st = self.shared.state.lock().unwrap();
            st.job = &job as *const JobData as usize;
            st.generation += 1;
            self.shared.work.notify_all();
        }
        IN_TASK.with(|t| t.set(true));
        job.run();
        IN_TASK.with(|t| t.set(false));
        {
            let mut st = self.shared.state.lock().unwrap();
            st.job = 0;
            while st.active > 0 {
                st = self.shared.idle.wait(st).unwrap();
            }
        }
        let failed = job.panic.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(msg) = failed {
            panic!("{msg}");
        }
    }

    /// Split 0..len into contiguous chunks of at least `min_chunk` items (about 4 per thread) and run
    /// `f(start, end)` on each.
    pub fn parallel_chunks<F: Fn(usize, usize) + Sync>(&self, len: usize, min_chunk: usize, f: F) {
        if len == 0 {
            return;
        }
        let target = (self.threads * 4).max(1);
        let chunk = len.div_ceil(target).max(min_chunk.max(1));
        let n = len.div_ceil(chunk);
        self.parallel_for(n, |c| {
            let s = c * chunk;
            f(s, (s + chunk).min(len));
        });
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock().unwrap();
        st.shutdown = true;
        self.shared.work.notify_all();
    }
}

/// Thread count from `det_num_threads`, else all cores.
pub fn configured_threads() -> usize {
    let cores = thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match std::env::var("det_num_threads").ok().and_then(|s| s.trim().parse::<usize>().ok()) {
        Some(n) if n > 0 => n,
        _ => cores,
    }
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// The process-wide pool, created on first use.
pub fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(configured_threads()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_index_runs_once() {
        let p = Pool::new(4);
        for n in [1usize, 2, 3, 17, 1000] {
            let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            p.parallel_for(n, |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn chunks_cover_range_and_nesting_is_serial() {
        let p = Pool::new(3);
        let sum = AtomicU64::new(0);
        p.parallel_chunks(10_001, 7, |s, e| {
            // A nested call runs serially on this thread instead of deadlocking.
            p.parallel_for(2, |_| {});
            sum.fetch_add((s..e).map(|x| x as u64).sum::<u64>(), Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 10_000 * 10_001 / 2);
    }

    #[test]
    fn worker_panic_is_reraised_on_caller() {
        crate::error::ensure_panic_hook();
        let p = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            p.parallel_for(64, |i| {
                if i == 40 {
                    panic!("task 40 failed");
                }
            })
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let c = AtomicU64::new(0);
        p.parallel_for(8, |_| {
            c.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(c.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn many_calls_stress() {
        let p = Pool::new(4);
        let total = AtomicU64::new(0);
        for _ in 0..2000 {
            p.parallel_for(5, |i| {
                total.fetch_add(i as u64, Ordering::Relaxed);
            });
        }
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 10);
    }
}
