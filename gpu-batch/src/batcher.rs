//! Dynamic batching: concurrent single requests are coalesced into one batch call, up to
//! `max_batch` items or until the oldest waiting item has waited `max_wait`.
//!
//! Embedding models run far more efficiently on batches than on single texts (on a GPU the
//! difference is one to two orders of magnitude), while real-time callers arrive one at a time.
//! The batcher trades a bounded wait (e.g. 2 ms) for that throughput. Results come back to each
//! caller in order; a caller that gives up (drops its future) before its batch starts is left
//! out of the batch.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Largest batch handed to the batch function.
    pub max_batch: usize,
    /// Longest time the first item of a batch waits for company.
    pub max_wait: Duration,
    /// Items allowed to wait; beyond it `submit` fails with [`BatchError::Overloaded`].
    pub queue_capacity: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            max_wait: Duration::from_millis(2),
            queue_capacity: 4096,
        }
    }
}

/// What one batch looked like, for metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchStats {
    pub size: usize,
    /// Wait of the batch's oldest item, from submit to the start of the batch call.
    pub max_queue_wait: Duration,
    /// Duration of the batch call itself (device time for a GPU backend).
    pub run_time: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The batch function failed; every item of that batch gets the message.
    #[error("batch failed: {0}")]
    Failed(String),
    /// More than `queue_capacity` items are waiting.
    #[error("embedding queue is full")]
    Overloaded,
    /// The batcher is shut down.
    #[error("batcher is closed")]
    Closed,
}

struct Job<I, O> {
    input: I,
    submitted: Instant,
    reply: oneshot::Sender<Result<O, BatchError>>,
}

/// Handle to a running batcher; cheap to clone. Its worker thread stops when every handle
/// is gone. The worker is a plain OS thread, so the batcher outlives any async runtime and
/// the (blocking) batch function never occupies a runtime thread.
pub struct Batcher<I, O> {
    queue: mpsc::SyncSender<Job<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the worker thread. `run` must return exactly one output per input, in order.
    pub fn spawn(
        config: BatcherConfig,
        run: impl Fn(Vec<I>) -> Result<Vec<O>, String> + Send + 'static,
        on_batch: impl Fn(BatchStats) + Send + 'static,
    ) -> Self {
        let (queue, jobs) = mpsc::sync_channel(config.queue_capacity.max(1));
        std::thread::Builder::new()
            .name("embed-batcher".into())
            .spawn(move || collect(config, &jobs, run, on_batch))
            .expect("spawn the batcher thread");
        Self { queue }
    }

    /// Submits one item and waits for its result. Never blocks the caller's thread: a full
    /// queue is an immediate [`BatchError::Overloaded`].
    pub async fn submit(&self, input: I) -> Result<O, BatchError> {
        let (reply, result) = oneshot::channel();
        let job = Job {
            input,
            submitted: Instant::now(),
            reply,
        };
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => BatchError::Overloaded,
            mpsc::TrySendError::Disconnected(_) => BatchError::Closed,
        })?;
        result.await.map_err(|_| BatchError::Closed)?
    }
}

fn collect<I, O>(
    config: BatcherConfig,
    jobs: &mpsc::Receiver<Job<I, O>>,
    run: impl Fn(Vec<I>) -> Result<Vec<O>, String>,
    on_batch: impl Fn(BatchStats),
) {
    let max_batch = config.max_batch.max(1);
    while let Ok(first) = jobs.recv() {
        let deadline = first.submitted + config.max_wait;
        let mut batch = vec![first];
        while batch.len() < max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(_) => break, // deadline passed, or every handle is gone
            }
        }
        // Callers that gave up are not worth computing for.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let max_queue_wait = batch
            .iter()
            .map(|j| started.duration_since(j.submitted))
            .max()
            .unwrap_or_default();
        let (inputs, replies): (Vec<I>, Vec<_>) =
            batch.into_iter().map(|j| (j.input, j.reply)).unzip();
        let size = inputs.len();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(inputs)))
            .unwrap_or_else(|_| Err("batch function panicked".into()));
        on_batch(BatchStats {
            size,
            max_queue_wait,
            run_time: started.elapsed(),
        });
        let outputs = match outcome {
            Ok(outputs) if outputs.len() == size => outputs,
            Ok(outputs) => {
                let why = format!(
                    "batch function returned {} results for {size} inputs",
                    outputs.len()
                );
                fail_all(replies, &why);
                continue;
            }
            Err(why) => {
                fail_all(replies, &why);
                continue;
            }
        };
        for (reply, output) in replies.into_iter().zip(outputs) {
            let _ = reply.send(Ok(output));
        }
    }
}

fn fail_all<O>(replies: Vec<oneshot::Sender<Result<O, BatchError>>>, why: &str) {
    for reply in replies {
        let _ = reply.send(Err(BatchError::Failed(why.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Sizes = Arc<Mutex<Vec<usize>>>;

    fn doubling(config: BatcherConfig) -> (Batcher<u32, u32>, Sizes) {
        let sizes: Sizes = Arc::default();
        let seen = sizes.clone();
        let batcher = Batcher::spawn(
            config,
            |xs: Vec<u32>| Ok(xs.into_iter().map(|x| x * 2).collect()),
            move |s| seen.lock().unwrap().push(s.size),
        );
        (batcher, sizes)
    }

    #[tokio::test]
    async fn concurrent_requests_share_batches_and_keep_their_order() {
        let (batcher, sizes) = doubling(BatcherConfig {
            max_batch: 16,
            max_wait: Duration::from_millis(50),
            queue_capacity: 1024,
        });
        let handles: Vec<_> = (0..64u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.submit(i).await) })
            })
            .collect();
        for h in handles {
            let (i, r) = h.await.unwrap();
            assert_eq!(r, Ok(i * 2), "each caller gets its own result");
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 64);
        assert!(
            sizes.iter().all(|&s| s <= 16),
            "max size respected: {sizes:?}"
        );
        assert!(sizes.len() < 64, "requests were coalesced: {sizes:?}");
    }

    #[tokio::test]
    async fn a_lone_request_waits_at_most_max_wait() {
        let (batcher, sizes) = doubling(BatcherConfig {
            max_batch: 64,
            max_wait: Duration::from_millis(30),
            queue_capacity: 8,
        });
        let t = Instant::now();
        assert_eq!(batcher.submit(21).await, Ok(42));
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!(*sizes.lock().unwrap(), [1]);
    }

    #[tokio::test]
    async fn a_full_batch_does_not_wait() {
        let (batcher, sizes) = doubling(BatcherConfig {
            max_batch: 4,
            max_wait: Duration::from_secs(30),
            queue_capacity: 8,
        });
        let t = Instant::now();
        let handles: Vec<_> = (0..4u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(i).await })
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        assert_eq!(results, [Ok(0), Ok(2), Ok(4), Ok(6)]);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "did not wait for max_wait"
        );
        assert_eq!(*sizes.lock().unwrap(), [4]);
    }

    #[tokio::test]
    async fn cancelled_callers_are_left_out_and_failures_reach_everyone() {
        let sizes: Sizes = Arc::default();
        let seen = sizes.clone();
        let batcher: Batcher<u32, u32> = Batcher::spawn(
            BatcherConfig {
                max_batch: 8,
                max_wait: Duration::from_millis(100),
                queue_capacity: 8,
            },
            |xs: Vec<u32>| {
                if xs.contains(&13) {
                    Err("unlucky".into())
                } else {
                    Ok(xs)
                }
            },
            move |s| seen.lock().unwrap().push(s.size),
        );
        // One caller gives up while its item waits for company.
        let abandoned = tokio::time::timeout(Duration::from_millis(10), batcher.submit(1)).await;
        assert!(abandoned.is_err());
        assert_eq!(batcher.submit(2).await, Ok(2));
        assert_eq!(
            *sizes.lock().unwrap(),
            [1],
            "the abandoned item was not computed"
        );
        let (a, b) = tokio::join!(batcher.submit(13), batcher.submit(3));
        assert_eq!(a, Err(BatchError::Failed("unlucky".into())));
        assert_eq!(b, Err(BatchError::Failed("unlucky".into())));
    }
}
