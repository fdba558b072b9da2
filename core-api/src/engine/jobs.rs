//! Catalogue upserts too large to embed within one request run as jobs.
//!
//! Embedding runs at about 100 items/s on two CPU cores, so a batch of thousands cannot be
//! embedded within a request's deadline; such a batch is validated whole (a bad item refuses
//! the batch, nothing stored), answered at once with a job, and stored in chunks, each durable
//! before it is counted. `GET /v1/jobs/{id}` reports the progress and the outcome, so nothing
//! is half-stored without saying so. Jobs live in this process: after a restart a job is
//! unknown (404), the items it stored are kept, and sending the batch again is safe (items are
//! replaced by id).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use shared_types::ItemInput;

use super::Engine;

/// Items stored per durable step of a job.
const CHUNK: usize = 64;
/// Finished jobs remembered for `GET /v1/jobs/{id}`; the oldest are forgotten first.
const KEPT: usize = 1_000;

/// Where a job stands.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobStatus {
    pub job_id: String,
    /// `running`, `done` or `failed`.
    pub state: JobState,
    /// Items in the batch.
    pub total: usize,
    /// Items stored durably and searchable so far.
    pub stored: usize,
    /// Why the job stopped, when it failed; the items counted in `stored` are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// The jobs of this process.
#[derive(Default)]
pub(crate) struct Jobs {
    next: AtomicU64,
    jobs: Mutex<VecDeque<Arc<Mutex<JobStatus>>>>,
}

impl Jobs {
    fn create(&self, total: usize) -> Arc<Mutex<JobStatus>> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(Mutex::new(JobStatus {
            job_id: format!("items-{:x}-{seq}", rand::random::<u32>()),
            state: JobState::Running,
            total,
            stored: 0,
            error: None,
        }));
        let mut jobs = self.jobs.lock().expect("jobs lock");
        if jobs.len() >= KEPT {
            // Forget the oldest finished job (a running one is kept however old).
            if let Some(i) = jobs
                .iter()
                .position(|j| j.lock().expect("job lock").state != JobState::Running)
            {
                jobs.remove(i);
            }
        }
        jobs.push_back(job.clone());
        job
    }

    pub fn get(&self, job_id: &str) -> Option<JobStatus> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .iter()
            .map(|j| j.lock().expect("job lock").clone())
            .find(|j| j.job_id == job_id)
    }
}

/// What an items request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemsSubmitted {
    /// Stored and searchable before the answer.
    Stored(usize),
    /// Too many to embed within a request: a job stores them.
    Job(JobStatus),
}

impl Engine {
    /// Upserts `inputs` within the request when their embedding fits in it
    /// (`model.sync_embed_max` items to embed at most), else starts a job. Either way every
    /// item is validated first: a bad one refuses the whole batch.
    pub async fn submit_items(
        self: &Arc<Self>,
        inputs: Vec<ItemInput>,
    ) -> Result<ItemsSubmitted, super::EngineError> {
        super::writes::check_batch(&inputs)?;
        let dim = self.embedder.dim();
        let mut to_embed = 0;
        for input in &inputs {
            let (_, vector) = super::validate_item(input.clone(), dim)?;
            to_embed += usize::from(vector.is_none());
        }
        if to_embed <= self.config.model.sync_embed_max {
            return Ok(ItemsSubmitted::Stored(self.upsert_items(inputs).await?));
        }
        let job = self.jobs.create(inputs.len());
        let status = job.lock().expect("job lock").clone();
        let engine = self.clone();
        tokio::spawn(async move {
            for chunk in inputs.chunks(CHUNK) {
                match engine.upsert_items(chunk.to_vec()).await {
                    Ok(n) => job.lock().expect("job lock").stored += n,
                    Err(e) => {
                        tracing::error!(error = %e, "catalogue job failed");
                        let mut j = job.lock().expect("job lock");
                        j.state = JobState::Failed;
                        j.error = Some(e.to_string());
                        return;
                    }
                }
            }
            job.lock().expect("job lock").state = JobState::Done;
        });
        Ok(ItemsSubmitted::Job(status))
    }

    /// A catalogue job's status; `None` for an id this process does not know.
    pub fn job(&self, job_id: &str) -> Option<JobStatus> {
        self.jobs.get(job_id)
    }
}
