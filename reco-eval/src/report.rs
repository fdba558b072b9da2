//! The report writer: the results as a Markdown table, the protocol in prose, notes comparing
//! the engine with the baselines, and the dated results file.

use crate::metrics::MethodResult;
use crate::run::EvalReport;

/// The results as a Markdown table.
pub fn markdown_table(rows: &[MethodResult], k: usize) -> String {
    let mut out = format!(
        "| method / variant | users | HR@{k} | NDCG@{k} | MRR@{k} | coverage | ILD | genre ILD | validation NDCG@{k} |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |\n",
            r.method,
            r.users,
            r.hr,
            r.hr_ci95,
            r.ndcg,
            r.mrr,
            r.coverage,
            r.ild,
            r.genre_ild,
            r.validation_ndcg
                .map_or("–".to_string(), |v| format!("{v:.4}"))
        ));
    }
    out
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The protocol in prose, for the results file and docs/evaluation.md.
pub fn protocol_text(r: &EvalReport) -> String {
    let d = &r.dataset;
    let held = if r.holdout == 1 {
        "latest positive interaction is".to_string()
    } else {
        format!("latest {} positive interactions are", r.holdout)
    };
    format!(
        "Data: `{ratings}` ({ratings_n} ratings by {users} users, mapped to actions: 8-10 like, \
6-7 complete, 4-5 view, else dislike; positive = like or complete) and the {catalogue} films \
they rate, with metadata from `{catalog}`; only these films are embedded and indexed.\n\n\
Split: ratings sorted by time. For each user with at least {min_pos} positive interactions \
({tests} users) the {held} held out (test); everything they did before is training, anything \
after is dropped. All other users' ratings are training ({train} training events in all). \
Validation applies the same split to the training events (each test user's second-latest \
positive); every method's settings are chosen on validation NDCG@{k}, then the method is \
refitted on all training events and scored once on test (the last column shows the \
validation score of the chosen setting). Film quality priors come from training ratings \
only.\n\n\
Engine: a fresh engine per row on the same cached item store and index, item graph filled \
as at start-up, the training events replayed in time order through `record_events` \
(seen sets, transitions, trend, popularity, co-engagement graph), one training \
(`Engine::retrain`, as the background training does: sparse EASE and the boosted ranker, \
whose labels are each user's latest training positives scored with models fitted without \
them), then one `recommend` per test user (limit {k}, no intent or filters). The engine \
excludes every item of the user's training history. Its settings (ranker size and labels per user, \
transitions' window and decay, MMR trade-off) are the validation-best whose genre \
diversity reaches {min_ild}. Ablation rows change one thing of the chosen setting: no \
collaborative neighbours, no transitions, the static weighted sum instead of the ranker, no \
MMR, no graph candidates, and the engine before the learned sources (`learning.enabled = \
false`).{exploration}\n\n\
Baselines on the same split, excluding every training item of the user and filled from \
popularity when fewer than {k} items score: popularity (positive training interactions); \
item-kNN (cosine of binary item vectors, top-k neighbours); RP3β (Paudel et al. 2017); \
sparse EASE (the engine's collaborative model alone); EASE (Steck 2019, dense closed \
form); implicit ALS (Hu, Koren & Volinsky 2008, 64 factors, 15 sweeps, user fold-in); \
next-item transitions (first-order counts from the user's latest positives, window and \
decay tuned); ALS + transitions (max-normalised scores, weight tuned); random (seed \
{seed}).\n\n\
Metrics at {k}: HR (any held-out item in the list; ± is the 95% interval, normal \
approximation), NDCG (binary relevance), MRR (1 / rank of the held-out item, 0 beyond \
{k}), coverage (distinct items recommended / {catalogue} films), ILD (mean pairwise \
1 − cosine of the films' MiniLM embeddings within a list) and genre ILD (mean pairwise \
1 − Jaccard of the films' genre sets), averaged over users.",
        ratings = r.ratings_file,
        ratings_n = thousands(d.ratings),
        users = thousands(d.users),
        catalogue = thousands(d.catalogue),
        catalog = r.catalog_file,
        min_pos = r.min_positives,
        tests = thousands(d.test_users),
        train = thousands(d.train_events),
        k = r.k,
        min_ild = r.min_genre_diversity,
        seed = r.seed,
        exploration = if r.exploration_off {
            " The online ranking policy serves greedily (exploration `policy.epsilon = 0`) and \
             learns nothing, as the replayed events reference no recommendation."
        } else {
            ""
        },
    )
}

/// Notes worth reading next to the table: how the full engine compares with the
/// baselines, and engine lists holding items the user had already seen.
pub fn notes(r: &EvalReport) -> Vec<String> {
    let mut notes = Vec::new();
    let k = r.k;
    if let Some(engine) = r
        .rows
        .iter()
        .find(|row| row.method.starts_with("engine (full)"))
    {
        let relative = |a: f64, b: f64| {
            if b == 0.0 {
                "n/a".to_string()
            } else {
                format!("{:+.0}%", (a / b - 1.0) * 100.0)
            }
        };
        for base in r
            .rows
            .iter()
            .filter(|row| !row.method.starts_with("engine"))
        {
            notes.push(format!(
                "engine (full) vs {}: HR@{k} {:.4} vs {:.4} ({}), NDCG@{k} {:.4} vs {:.4} ({}).",
                base.method,
                engine.hr,
                base.hr,
                relative(engine.hr, base.hr),
                engine.ndcg,
                base.ndcg,
                relative(engine.ndcg, base.ndcg),
            ));
        }
    }
    let seen: Vec<String> = r
        .rows
        .iter()
        .filter(|row| row.seen_recommended > 0)
        .map(|row| format!("{} {}", row.method, row.seen_recommended))
        .collect();
    notes.push(if seen.is_empty() {
        "No engine list held an item the user had interacted with in training.".to_string()
    } else {
        format!(
            "Engine lists held items the user had interacted with in training: {}.",
            seen.join(", ")
        )
    });
    notes
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today_utc() -> String {
    let days = core_api::clock::now_secs().div_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// CPU model (from `/proc/cpuinfo`) and core count.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{model}, {cores} cores")
}

/// The results file: date, machine, command, protocol, table and notes.
pub fn results_markdown(r: &EvalReport, command: &str) -> String {
    let mut out = format!(
        "## `{ratings}`\n\n\
Written by `{command}` on {date}; machine: {machine}; run time {secs:.0} s \
(embedding {embed}).\n\n",
        ratings = r.ratings_file,
        date = today_utc(),
        machine = machine(),
        secs = r.secs,
        embed = if r.embedded_items > 0 {
            format!(
                "{} films in {:.0} s",
                thousands(r.embedded_items),
                r.embed_secs
            )
        } else {
            "cached".to_string()
        },
    );
    out.push_str("### Protocol\n\n");
    out.push_str(&protocol_text(r));
    out.push_str("\n\n### Results\n\n");
    out.push_str(&markdown_table(&r.rows, r.k));
    let notes = notes(r);
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}
