//! Intent inference: structured intent (mood, genre hints, length preference) from the
//! free-text `q` and the request context. Keyword rules first; when they find no mood, the
//! query's embedding is matched to mood prototypes embedded once with the real model.

use shared_types::{Device, IntentSummary, TimeOfDay};

/// Lowest cosine between a query and a mood prototype that counts as that mood.
const PROTOTYPE_THRESHOLD: f32 = 0.35;

/// (mood, prototype sentence, keywords).
const MOODS: [(&str, &str, &[&str]); 8] = [
    (
        "uplifting",
        "an uplifting, heartwarming feel-good film that leaves you happy",
        &[
            "feel-good",
            "feel good",
            "uplifting",
            "heartwarming",
            "happy",
            "cheerful",
            "wholesome",
        ],
    ),
    (
        "funny",
        "a hilarious comedy that makes you laugh out loud",
        &["funny", "hilarious", "laugh", "comedy", "comedies", "silly"],
    ),
    (
        "tense",
        "a tense, scary, suspenseful film that keeps you on the edge of your seat",
        &[
            "scary",
            "creepy",
            "tense",
            "suspense",
            "terrifying",
            "spooky",
            "thrilling",
        ],
    ),
    (
        "dark",
        "a dark, gritty and violent crime story",
        &["dark", "gritty", "bleak", "violent", "disturbing", "noir"],
    ),
    (
        "romantic",
        "a romantic love story for a date night",
        &[
            "romantic",
            "romance",
            "love story",
            "date night",
            "falling in love",
        ],
    ),
    (
        "thoughtful",
        "a thought-provoking, moving drama about life",
        &[
            "thought-provoking",
            "moving",
            "sad",
            "tearjerker",
            "deep",
            "meaningful",
            "cry",
        ],
    ),
    (
        "relaxed",
        "something light and relaxing to unwind with",
        &[
            "relax",
            "relaxing",
            "chill",
            "unwind",
            "cozy",
            "cosy",
            "easy watch",
            "light",
        ],
    ),
    (
        "exciting",
        "an exciting, action-packed adventure full of explosions and fights",
        &[
            "exciting",
            "action-packed",
            "adrenaline",
            "explosions",
            "epic battle",
            "fast-paced",
        ],
    ),
];

/// (catalogue genre, keywords that hint at it).
const GENRE_HINTS: [(&str, &[&str]); 16] = [
    (
        "sci-fi",
        &[
            "sci-fi",
            "science fiction",
            "space",
            "alien",
            "robot",
            "future",
            "astronaut",
        ],
    ),
    ("comedy", &["comedy", "comedies", "funny", "hilarious"]),
    ("horror", &["horror", "scary", "zombie", "ghost", "haunted"]),
    (
        "romance",
        &["romance", "romantic", "love story", "date night"],
    ),
    (
        "animation",
        &["animated", "animation", "cartoon", "anime", "pixar"],
    ),
    (
        "family",
        &["family", "kids", "children", "for the whole family"],
    ),
    (
        "documentary",
        &["documentary", "documentaries", "true story", "real events"],
    ),
    ("war", &["war", "soldier", "battlefield", "ww2", "wwii"]),
    ("western", &["western", "cowboy", "wild west"]),
    ("thriller", &["thriller", "suspense", "suspenseful"]),
    ("mystery", &["mystery", "detective", "whodunit"]),
    ("crime", &["crime", "heist", "gangster", "mafia", "mob"]),
    ("music", &["musical", "music", "band", "concert"]),
    ("action", &["action", "explosions", "fight", "martial arts"]),
    ("fantasy", &["fantasy", "dragon", "wizard", "magic"]),
    ("history", &["historical", "history", "period piece"]),
];

const SHORT_WORDS: [&str; 6] = [
    "short",
    "quick",
    "under 90",
    "something light",
    "brief",
    "tonight after work",
];
const LONG_WORDS: [&str; 5] = ["epic", "long", "saga", "three hours", "marathon"];

fn contains_word(text: &str, keyword: &str) -> bool {
    text.match_indices(keyword).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + keyword.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The mood prototypes, embedded once at start.
pub struct IntentModel {
    prototypes: Vec<(&'static str, Vec<f32>)>,
}

impl IntentModel {
    /// Embeds the prototype sentences with `embed` (unit vectors expected).
    pub fn new<E>(embed: impl FnOnce(Vec<String>) -> Result<Vec<Vec<f32>>, E>) -> Result<Self, E> {
        let sentences = MOODS.iter().map(|(_, s, _)| s.to_string()).collect();
        let vectors = embed(sentences)?;
        Ok(Self {
            prototypes: MOODS.iter().map(|(m, _, _)| *m).zip(vectors).collect(),
        })
    }

    /// A model without prototypes: rules and context only.
    pub fn rules_only() -> Self {
        Self {
            prototypes: Vec::new(),
        }
    }

    /// Intent of a request; `None` when nothing could be inferred.
    pub fn infer(
        &self,
        q: Option<&str>,
        q_vector: Option<&[f32]>,
        time_of_day: Option<TimeOfDay>,
        device: Option<Device>,
    ) -> Option<IntentSummary> {
        let text = q.map(str::to_lowercase).unwrap_or_default();
        let mut intent = IntentSummary::default();
        if let Some((mood, _, _)) = MOODS
            .iter()
            .find(|(_, _, words)| words.iter().any(|w| contains_word(&text, w)))
        {
            intent.mood = Some(mood.to_string());
            intent.source = "rules".into();
        } else if let Some(v) = q_vector {
            let best = self
                .prototypes
                .iter()
                .map(|(m, p)| (m, p.iter().zip(v).map(|(a, b)| a * b).sum::<f32>()))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((mood, score)) = best.filter(|(_, s)| *s >= PROTOTYPE_THRESHOLD) {
                intent.mood = Some(mood.to_string());
                intent.source = "prototype".into();
                intent.confidence = Some(score);
            }
        }
        intent.genres = GENRE_HINTS
            .iter()
            .filter(|(_, words)| words.iter().any(|w| contains_word(&text, w)))
            .map(|(g, _)| g.to_string())
            .collect();
        intent.length = if SHORT_WORDS.iter().any(|w| contains_word(&text, w)) {
            Some("short".into())
        } else if LONG_WORDS.iter().any(|w| contains_word(&text, w)) {
            Some("long".into())
        } else if time_of_day == Some(TimeOfDay::Night) && device == Some(Device::Mobile) {
            // Late on a phone: shorter is the safer guess.
            Some("short".into())
        } else {
            None
        };
        if intent.source.is_empty() && (!intent.genres.is_empty() || intent.length.is_some()) {
            intent.source = if intent.genres.is_empty() {
                "context"
            } else {
                "rules"
            }
            .into();
        }
        (intent.mood.is_some() || !intent.genres.is_empty() || intent.length.is_some())
            .then_some(intent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(q: &str) -> IntentSummary {
        IntentModel::rules_only()
            .infer(Some(q), None, None, None)
            .unwrap_or_default()
    }

    #[test]
    fn keywords_map_to_the_expected_slots() {
        let i = infer("Something funny about space aliens, nothing too long");
        assert_eq!(i.mood.as_deref(), Some("funny"));
        assert_eq!(i.genres, ["sci-fi", "comedy"]);
        assert_eq!(i.length.as_deref(), Some("long"), "keyword 'long' wins");
        let i = infer("a scary haunted house movie for date night");
        assert_eq!(i.mood.as_deref(), Some("tense"));
        assert_eq!(i.genres, ["horror", "romance"]);
        let i = infer("quick cartoon for the kids");
        assert_eq!(i.genres, ["animation", "family"]);
        assert_eq!(i.length.as_deref(), Some("short"));
        assert_eq!(i.source, "rules");
    }

    #[test]
    fn words_match_whole_words_only() {
        // "war" inside "award", "space" inside "spacecraft" do not count.
        let i = infer("award winning spacecraft engineering");
        assert!(i.genres.is_empty(), "{:?}", i.genres);
    }

    #[test]
    fn context_alone_can_set_length_and_nothing_gives_none() {
        let model = IntentModel::rules_only();
        let i = model
            .infer(None, None, Some(TimeOfDay::Night), Some(Device::Mobile))
            .unwrap();
        assert_eq!(
            (i.length.as_deref(), i.source.as_str()),
            (Some("short"), "context")
        );
        assert!(model.infer(Some("tt0076759"), None, None, None).is_none());
        assert!(model
            .infer(None, None, Some(TimeOfDay::Morning), None)
            .is_none());
    }

    #[test]
    fn prototypes_decide_the_mood_when_no_keyword_does() {
        // Two orthogonal prototypes stand in for embedded sentences.
        let model = IntentModel::new(|s: Vec<String>| {
            Ok::<_, ()>(
                (0..s.len())
                    .map(|i| {
                        let mut v = vec![0.0; 8];
                        v[i] = 1.0;
                        v
                    })
                    .collect(),
            )
        })
        .unwrap();
        let mut q = vec![0.0; 8];
        q[4] = 0.9; // close to the "romantic" prototype
        let i = model
            .infer(Some("something for two"), Some(&q), None, None)
            .unwrap();
        assert_eq!(
            (i.mood.as_deref(), i.source.as_str()),
            (Some("romantic"), "prototype")
        );
        let weak = vec![0.1; 8];
        assert!(model.infer(Some("hmm"), Some(&weak), None, None).is_none());
    }
}
