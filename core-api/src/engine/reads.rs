//! The read paths, `recommend` and `similar`: gather what the pipeline stages need (the
//! user's history and taste, the intent's vector, vector and graph candidates, learned
//! signals) and run the stages in order (see [`super::pipeline`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use shared_types::{
    validate_item_id, validate_user_id, Action, ErrorCode, NormalisedRequest,
    RecommendationResponse, ScoredItem,
};

use crate::catalog::CatalogEntry;
use crate::cluster::SearchOutcome;
use crate::compute::on_rayon;
use crate::error::EngineError;
use crate::learn::features::{content_similarity, freshness, rank_features};
use crate::learn::train::{stretch_semantic, CONTENT_SEEDS};
use crate::learn::ItemSignals;
use crate::metrics::Stage;
use crate::store::{GraphNeighbour, Interaction, StoreError};
use vector_index::distance::best_dot;
use vector_index::{Filter, Hit};

use super::pipeline::{
    candidates, diversity, explanations, scoring, Candidate, HardFilters, LearnedInputs,
    RankRequest, Ranked,
};
use super::Engine;

impl Engine {
    /// Personalised recommendations for a validated request.
    pub async fn recommend(
        self: &Arc<Self>,
        req: &NormalisedRequest,
    ) -> Result<RecommendationResponse, EngineError> {
        let cfg = &self.config.ranking;
        let filters = HardFilters::of_request(&self.ontology, req)?;
        let context_started = Instant::now();
        let intent = match &req.q {
            Some(q) => Some(self.embed_query(q).await?),
            None => None,
        };
        let intent_summary = self.intent_model.infer(
            req.q.as_deref(),
            intent.as_deref().map(Vec::as_slice),
            req.time_of_day,
            req.device,
        );
        self.metrics.observe_stage(Stage::Context, context_started);

        let mut degraded = Vec::new();
        let (history, cached_vector) = match &req.user_id {
            Some(user) => {
                let (history, cached) = tokio::join!(
                    self.backends.interactions.recent(user, cfg.history_limit),
                    self.backends.user_cache.get(user)
                );
                self.metrics.count_user_cache(cached.is_some());
                let history = history.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "interaction store failed; serving without history");
                    self.metrics.count_degraded("interactions");
                    degraded.push("interactions".to_string());
                    Vec::new()
                });
                (history, cached)
            }
            None => (Vec::new(), None),
        };
        let history: Vec<(Interaction, Arc<CatalogEntry>)> = history
            .into_iter()
            .filter_map(|ev| self.catalog.get(&ev.item_id).map(|e| (ev, e)))
            .collect();
        // A cached vector of another model's dimension (or a corrupt one) is not used.
        let dim = self.embedder.dim();
        let cached_vector =
            cached_vector.filter(|v| v.len() == dim && v.iter().all(|x| x.is_finite()));
        let user_vector = match cached_vector {
            Some(v) => Some(v),
            None => {
                let v = candidates::user_vector(&history, cfg.history_half_life_days);
                if let (Some(v), Some(user)) = (&v, &req.user_id) {
                    self.backends.user_cache.put(user, v).await;
                }
                v
            }
        };
        let learned = match (&req.user_id, self.learner.enabled()) {
            (Some(_), true) => {
                let history: Vec<(Action, Arc<str>)> = history
                    .iter()
                    .map(|(ev, e)| (ev.action, e.id.clone()))
                    .collect();
                let model = self.learner.model();
                let (signals, recent) = self.learner.signals(
                    &model,
                    &history,
                    self.config.learning.candidates_per_source,
                );
                Some(LearnedInputs {
                    signals,
                    recent,
                    history,
                    model,
                })
            }
            _ => None,
        };
        let cold_start =
            user_vector.is_none() && learned.as_ref().is_none_or(|l| l.signals.is_empty());
        let query = candidates::query_vector(
            intent.as_deref().map(Vec::as_slice),
            user_vector,
            cfg.query_blend,
        );

        // Candidate generation: vector search and graph neighbours concurrently.
        let candidates_started = Instant::now();
        let seeds = candidates::graph_seeds(&history, cfg.history_half_life_days);
        let ann = async {
            let Some(q) = query.clone() else {
                return Ok(SearchOutcome::default());
            };
            let started = Instant::now();
            let k = cfg.ann_candidates.max(req.limit as usize * 4);
            // The hard filters run inside the search: the nearest admitted items, however
            // few the filter admits.
            let outcome = self.vectors.search(q, k, filters.index_filter()).await;
            self.metrics.observe_stage(Stage::VectorSearch, started);
            outcome
        };
        let graph = async {
            if seeds.is_empty() {
                return Ok(Vec::new());
            }
            let started = Instant::now();
            let n = self
                .backends
                .graph
                .neighbours(&seeds, cfg.graph_candidates)
                .await;
            self.metrics.observe_stage(Stage::Graph, started);
            n
        };
        let (ann, graph) = tokio::join!(ann, graph);
        let ann = ann?;
        let missing_shards = ann.missing_shards;
        let mut candidates = self.merge_candidates(ann.hits, graph, &mut degraded);
        if let Some(l) = &learned {
            let per_source = self.config.learning.candidates_per_source;
            let trending = self.learner.trending(per_source);
            let ordinals: Vec<u32> = l
                .signals
                .collaborative
                .top()
                .iter()
                .chain(l.signals.transition.top())
                .chain(trending.iter().take(per_source))
                .copied()
                .collect();
            for id in self.learner.ids_of(&ordinals) {
                candidates.entry(id).or_default();
            }
        }
        let fallback_reason = if candidates.is_empty() {
            // Cold start without intent: what is popular among the admitted items.
            let n = cfg.ann_candidates.max(req.limit as usize * 4);
            for id in self.catalog.popular_where(n, |e| filters.admits(e)) {
                candidates.entry(id).or_default();
            }
            "popular right now"
        } else {
            "recommended for you"
        };
        self.metrics
            .observe_stage(Stage::Candidates, candidates_started);

        // Everything the user has seen, however long ago (the history covers only the latest
        // events, the seen sets all of them).
        let mut exclude: HashSet<Arc<str>> = history.iter().map(|(_, e)| e.id.clone()).collect();
        exclude.extend(
            self.learner
                .seen_filter(req.user_id.as_deref())
                .into_items(),
        );
        let positive_history = history
            .iter()
            .filter(|(ev, _)| ev.action.preference_weight() > 0.0)
            .map(|(_, e)| e.clone())
            .collect();
        let response = self
            .rank(RankRequest {
                query,
                candidates,
                exclude,
                filters,
                limit: req.limit as usize,
                history: positive_history,
                intent: req.q.clone(),
                fallback_reason,
                learned,
            })
            .await?;
        let policy_started = Instant::now();
        let recommendation_id = self.next_response_id();
        let items = self
            .apply_policy(&recommendation_id, req, response, cold_start)
            .await;
        self.metrics.observe_stage(Stage::Policy, policy_started);
        Ok(RecommendationResponse {
            recommendation_id,
            user_id: req.user_id.clone(),
            items,
            cold_start,
            intent: intent_summary,
            degraded,
            partial: !missing_shards.is_empty(),
            missing_shards,
        })
    }

    /// Items similar to `item_id`, excluding what `user_id` (if any) has already seen.
    pub async fn similar(
        self: &Arc<Self>,
        item_id: &str,
        limit: u32,
        user_id: Option<&str>,
    ) -> Result<RecommendationResponse, EngineError> {
        validate_item_id(item_id)?;
        if let Some(u) = user_id {
            validate_user_id(u)?;
        }
        let limit = shared_types::effective_limit(Some(limit))? as usize;
        let seed = self.catalog.get(item_id).ok_or_else(|| {
            EngineError::not_found(
                ErrorCode::ItemNotFound,
                format!("no item with id '{item_id}'"),
            )
        })?;
        let cfg = &self.config.ranking;
        let query = seed.vector_f32();
        let candidates_started = Instant::now();
        let seeds = [(seed.id.clone(), 1.0)];
        let ann = async {
            let started = Instant::now();
            let k = cfg.ann_candidates.max(limit * 4) + 1;
            let outcome = self
                .vectors
                .search(query.clone(), k, Filter::default())
                .await;
            self.metrics.observe_stage(Stage::VectorSearch, started);
            outcome
        };
        let history = async {
            match user_id {
                Some(u) => {
                    self.backends
                        .interactions
                        .recent(u, cfg.history_limit)
                        .await
                }
                None => Ok(Vec::new()),
            }
        };
        let (ann, graph, history) = tokio::join!(
            ann,
            self.backends.graph.neighbours(&seeds, cfg.graph_candidates),
            history
        );
        let mut degraded = Vec::new();
        let ann = ann?;
        let missing_shards = ann.missing_shards;
        let candidates = self.merge_candidates(ann.hits, graph, &mut degraded);
        self.metrics
            .observe_stage(Stage::Candidates, candidates_started);
        let mut exclude: HashSet<Arc<str>> = HashSet::from([seed.id.clone()]);
        exclude.extend(self.learner.seen_filter(user_id).into_items());
        match history {
            Ok(h) => exclude.extend(
                self.catalog
                    .get_many(h.iter().map(|e| e.item_id.as_str()))
                    .into_iter()
                    .map(|e| e.id.clone()),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "interaction store failed");
                self.metrics.count_degraded("interactions");
                degraded.push("interactions".to_string());
            }
        }
        let items = self
            .rank(RankRequest {
                query: Some(query),
                candidates,
                exclude,
                filters: HardFilters::default(),
                limit,
                history: vec![seed.clone()],
                intent: None,
                fallback_reason: "similar items",
                learned: None,
            })
            .await?;
        Ok(RecommendationResponse {
            recommendation_id: self.next_response_id(),
            user_id: user_id.map(str::to_string),
            items,
            cold_start: false,
            intent: None,
            degraded,
            partial: !missing_shards.is_empty(),
            missing_shards,
        })
    }

    /// Unites vector hits and graph neighbours; a failed graph lookup degrades the answer
    /// instead of failing it.
    fn merge_candidates(
        &self,
        ann: Vec<Hit>,
        graph: Result<Vec<GraphNeighbour>, StoreError>,
        degraded: &mut Vec<String>,
    ) -> HashMap<Arc<str>, Candidate> {
        let graph = graph.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "item graph failed; serving vector candidates only");
            self.metrics.count_degraded("graph");
            degraded.push("graph".to_string());
            Vec::new()
        });
        candidates::merge(ann, graph)
    }

    /// Filter, rank, diversify and explain: the stages shared by every endpoint.
    async fn rank(self: &Arc<Self>, req: RankRequest) -> Result<Vec<ScoredItem>, EngineError> {
        let engine = self.clone();
        on_rayon(move || engine.rank_blocking(req)).await
    }

    fn rank_blocking(&self, req: RankRequest) -> Vec<ScoredItem> {
        let cfg = &self.config.ranking;
        let filter_started = Instant::now();
        let entries: Vec<(Arc<CatalogEntry>, Candidate)> = {
            let ids: Vec<(&Arc<str>, &Candidate)> = req
                .candidates
                .iter()
                .filter(|(id, _)| !req.exclude.contains(*id))
                .collect();
            let found = self.catalog.get_many(ids.iter().map(|(id, _)| &***id));
            // get_many skips unknown (deleted) ids, so re-pair by id.
            let by_id: HashMap<&str, &Candidate> = ids.iter().map(|(id, c)| (&***id, *c)).collect();
            found
                .into_iter()
                .filter(|e| req.filters.admits(e))
                .map(|e| {
                    let c = by_id.get(&*e.id).map(|c| (*c).clone()).unwrap_or_default();
                    (e, c)
                })
                .collect()
        };
        self.metrics.observe_stage(Stage::Filter, filter_started);

        let rank_started = Instant::now();
        let dot = best_dot();
        let learned = req.learned.as_ref();
        let looked_up = self.learner.lookup(entries.iter().map(|(e, _)| &*e.id));
        let seeds: Vec<Arc<CatalogEntry>> = match learned {
            Some(l) => self.catalog.get_many(
                self.learner
                    .ids_of(&l.recent[..l.recent.len().min(CONTENT_SEEDS)])
                    .iter()
                    .map(|id| &**id),
            ),
            None => Vec::new(),
        };
        let seed_vectors: Vec<Vec<f32>> = seeds.iter().map(|e| e.vector_f32()).collect();
        let mut sides: Vec<ItemSignals> = entries
            .iter()
            .zip(&looked_up)
            .map(|((entry, _), &(_, trend))| ItemSignals {
                popularity: self.catalog.popularity(&entry.id),
                trend,
                semantic: req.query.as_deref().map_or(0.0, |q| dot(q, &entry.vector)),
                content: content_similarity(&entry.vector, &seed_vectors),
                freshness: freshness(entry.item.year, self.current_year),
                quality: entry.item.quality.unwrap_or(0.0),
            })
            .collect();
        // Cosine similarities of candidates crowd into a narrow band; stretch them to [0, 1]
        // over this request's candidates so the weights mean the same for every query.
        stretch_semantic(&mut sides, req.query.is_some());
        let ranker = learned.and_then(|l| l.model.ranker.as_ref());
        let score_one = |(((entry, c), side), (ordinal, _)): CandidateRow| {
            let x = match (learned, ordinal) {
                (Some(l), Some(o)) => rank_features(&l.signals, o, &side),
                _ => [0.0; crate::learn::ranker::FEATURES],
            };
            scoring::score(entry, c, &side, x, ranker, req.intent.is_some(), cfg)
        };
        let mut ranked: Vec<Ranked> = if entries.len() > 512 {
            entries
                .into_par_iter()
                .zip(sides)
                .zip(looked_up)
                .map(score_one)
                .collect()
        } else {
            entries
                .into_iter()
                .zip(sides)
                .zip(looked_up)
                .map(score_one)
                .collect()
        };
        scoring::order(&mut ranked, ranker.is_some());
        self.metrics.observe_stage(Stage::Rank, rank_started);

        let diversity_started = Instant::now();
        let picked = diversity::mmr(ranked, req.limit, cfg.mmr_lambda);
        self.metrics
            .observe_stage(Stage::Diversity, diversity_started);

        let history_vectors: Vec<(Arc<CatalogEntry>, Vec<f32>)> = req
            .history
            .iter()
            .take(20)
            .map(|e| (e.clone(), e.vector_f32()))
            .collect();
        let title_of = |id: &str| self.catalog.get(id).map(|e| e.item.title.clone());
        picked
            .into_iter()
            .map(|r| {
                let reason = match &req.learned {
                    Some(l) => explanations::learned_reason(&r, &req, l, &self.learner, &title_of),
                    None => None,
                }
                .unwrap_or_else(|| {
                    explanations::reason(&r, &req, &history_vectors, cfg, &title_of)
                });
                ScoredItem {
                    item: r.entry.item.clone(),
                    score: r.score,
                    components: r.components,
                    reason,
                }
            })
            .collect()
    }
}

/// A candidate with its item-side signals and its (ordinal, trend) lookup.
type CandidateRow = (
    ((Arc<CatalogEntry>, Candidate), ItemSignals),
    (Option<u32>, f32),
);
