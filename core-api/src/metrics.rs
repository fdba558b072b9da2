//! Prometheus metrics of the service, in one registry rendered by `/metrics`.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Pipeline stages timed separately (the `stage` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Context,
    Candidates,
    VectorSearch,
    Graph,
    Filter,
    Rank,
    Diversity,
    Policy,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Self::Context => "context",
            Self::Candidates => "candidate_generation",
            Self::VectorSearch => "vector_search",
            Self::Graph => "graph",
            Self::Filter => "filter",
            Self::Rank => "rank",
            Self::Diversity => "diversity",
            Self::Policy => "policy",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    stage_seconds: HistogramVec,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    shard_items: IntGaugeVec,
    embed_batch: HistogramVec,
    embed_queue_wait: prometheus::Histogram,
    embed_batch_seconds: HistogramVec,
    degraded: IntCounterVec,
    policy_decisions: IntCounterVec,
    policy_rewards: IntCounterVec,
    cluster: ClusterMetrics,
    user_cache: IntCounterVec,
}

/// What a router sees of its shard nodes.
struct ClusterMetrics {
    partial: prometheus::IntCounter,
    rpc_seconds: HistogramVec,
    rpc_failures: IntCounterVec,
    hedges: prometheus::IntCounter,
    replicas_up: IntGaugeVec,
}

/// Latency buckets from 50 µs to 2.5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "reco_stage_duration_seconds",
                "Time spent per ranking pipeline stage",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["stage"],
        )
        .expect("valid metric");
        let requests = IntCounterVec::new(
            Opts::new(
                "reco_http_requests_total",
                "HTTP requests by matched route and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "reco_http_request_duration_seconds",
                "HTTP request latency by matched route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        let shard_items = IntGaugeVec::new(
            Opts::new("reco_index_shard_items", "Live items per index shard"),
            &["shard"],
        )
        .expect("valid metric");
        let embed_batch = HistogramVec::new(
            HistogramOpts::new("reco_embedding_batch_size", "Texts per embedding batch").buckets(
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                ],
            ),
            &["path"],
        )
        .expect("valid metric");
        let degraded = IntCounterVec::new(
            Opts::new(
                "reco_degraded_responses_total",
                "Responses served without a failed candidate source",
            ),
            &["source"],
        )
        .expect("valid metric");
        let embed_queue_wait = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "reco_embedding_queue_wait_seconds",
                "Wait of a real-time embedding request before its batch starts",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let embed_batch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "reco_embedding_batch_seconds",
                "Time the embedding backend spent on one batch (device time on a GPU)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["path"],
        )
        .expect("valid metric");
        let policy_decisions = IntCounterVec::new(
            Opts::new(
                "reco_policy_decisions_total",
                "Lead-position decisions of the ranking policy; explored=true is the exploration share",
            ),
            &["explored"],
        )
        .expect("valid metric");
        let policy_rewards = IntCounterVec::new(
            Opts::new(
                "reco_policy_rewards_total",
                "Events attributed to an impression, by the sign of their reward",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let cluster = ClusterMetrics {
            partial: prometheus::IntCounter::new(
                "reco_partial_responses_total",
                "Answers that miss at least one shard (every replica down or past its deadline)",
            )
            .expect("valid metric"),
            rpc_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "reco_shard_rpc_duration_seconds",
                    "Internal search calls from this router to a shard node",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["node"],
            )
            .expect("valid metric"),
            rpc_failures: IntCounterVec::new(
                Opts::new(
                    "reco_shard_rpc_failures_total",
                    "Internal calls to a shard node that failed or timed out",
                ),
                &["node"],
            )
            .expect("valid metric"),
            hedges: prometheus::IntCounter::new(
                "reco_shard_hedges_total",
                "Shard searches also sent to a second replica because the first was slow",
            )
            .expect("valid metric"),
            replicas_up: IntGaugeVec::new(
                Opts::new(
                    "reco_cluster_shard_replicas_up",
                    "Replicas of each shard this router can use now",
                ),
                &["shard"],
            )
            .expect("valid metric"),
        };
        let user_cache = IntCounterVec::new(
            Opts::new(
                "reco_user_cache_requests_total",
                "User-embedding cache lookups by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        for c in [
            Box::new(cluster.partial.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cluster.rpc_seconds.clone()),
            Box::new(cluster.rpc_failures.clone()),
            Box::new(cluster.hedges.clone()),
            Box::new(cluster.replicas_up.clone()),
            Box::new(user_cache.clone()),
            Box::new(stage_seconds.clone()),
            Box::new(policy_decisions.clone()),
            Box::new(policy_rewards.clone()),
            Box::new(embed_queue_wait.clone()),
            Box::new(embed_batch_seconds.clone()),
            Box::new(requests.clone()),
            Box::new(request_seconds.clone()),
            Box::new(shard_items.clone()),
            Box::new(embed_batch.clone()),
            Box::new(degraded.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            stage_seconds,
            requests,
            request_seconds,
            shard_items,
            embed_batch,
            embed_queue_wait,
            embed_batch_seconds,
            degraded,
            policy_decisions,
            policy_rewards,
            cluster,
            user_cache,
        }
    }

    pub fn count_partial(&self) {
        self.cluster.partial.inc();
    }

    pub fn observe_shard_rpc(&self, node: &str, seconds: f64) {
        self.cluster
            .rpc_seconds
            .with_label_values(&[node])
            .observe(seconds);
    }

    pub fn count_shard_rpc_failure(&self, node: &str) {
        self.cluster.rpc_failures.with_label_values(&[node]).inc();
    }

    pub fn count_hedge(&self) {
        self.cluster.hedges.inc();
    }

    pub fn set_replicas_up(&self, shard: usize, replicas: usize) {
        self.cluster
            .replicas_up
            .with_label_values(&[&shard.to_string()])
            .set(replicas as i64);
    }

    pub fn count_user_cache(&self, hit: bool) {
        self.user_cache
            .with_label_values(&[if hit { "hit" } else { "miss" }])
            .inc();
    }

    pub fn count_policy_decision(&self, explored: bool) {
        self.policy_decisions
            .with_label_values(&[if explored { "true" } else { "false" }])
            .inc();
    }

    pub fn count_policy_reward(&self, reward: f32) {
        let outcome = match reward {
            r if r > 0.0 => "positive",
            r if r < 0.0 => "negative",
            _ => "neutral",
        };
        self.policy_rewards.with_label_values(&[outcome]).inc();
    }

    pub fn observe_stage(&self, stage: Stage, since: Instant) {
        self.stage_seconds
            .with_label_values(&[stage.label()])
            .observe(since.elapsed().as_secs_f64());
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.request_seconds
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    pub fn set_shard_items(&self, shard: usize, items: usize) {
        self.shard_items
            .with_label_values(&[&shard.to_string()])
            .set(items as i64);
    }

    /// `path` is `ingest` (catalogue upserts) or `query` (free-text intents).
    pub fn observe_embed_batch(&self, path: &str, size: usize) {
        self.embed_batch
            .with_label_values(&[path])
            .observe(size as f64);
    }

    /// One batch of the real-time (query) batcher.
    pub fn observe_query_batch(&self, stats: gpu_batch::batcher::BatchStats) {
        self.observe_embed_batch("query", stats.size);
        self.embed_queue_wait
            .observe(stats.max_queue_wait.as_secs_f64());
        self.embed_batch_seconds
            .with_label_values(&["query"])
            .observe(stats.run_time.as_secs_f64());
    }

    pub fn count_degraded(&self, source: &str) {
        self.degraded.with_label_values(&[source]).inc();
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
