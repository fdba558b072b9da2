//! Serde types exchanged over HTTP: items, interaction events, recommendation requests and
//! responses, and the error body every 4xx/5xx carries.

use serde::{Deserialize, Serialize};

/// Body of every error response: a stable machine-readable `code` and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    /// The body of an error answered with `code`.
    pub fn new(code: crate::ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_str().to_string(),
            message: message.into(),
        }
    }
}

/// Audience rating. Ordered: a request's `max_maturity` admits everything up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Maturity {
    /// Suitable for all audiences (family).
    All,
    /// Teenagers and up.
    Teen,
    /// Adults only.
    Adult,
}

impl Maturity {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "family" | "g" => Some(Self::All),
            "teen" | "pg" | "pg13" | "pg-13" => Some(Self::Teen),
            "adult" | "r" | "nc17" | "nc-17" => Some(Self::Adult),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Teen => "teen",
            Self::Adult => "adult",
        }
    }
}

/// A catalogue item as clients send it to `POST /v1/items`.
///
/// `embedding` is optional: when absent the core embeds `title`, `genres` and `description`
/// with its text model; when present it must have the index's dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub genres: Vec<String>,
    #[serde(default)]
    pub year: Option<u16>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub maturity: Option<Maturity>,
    #[serde(default)]
    pub description: Option<String>,
    /// Editorial or rating-derived quality in [0, 1].
    #[serde(default)]
    pub quality: Option<f32>,
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
}

/// A catalogue item as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub title: String,
    pub genres: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maturity: Option<Maturity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<f32>,
}

/// What a user did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    View,
    Complete,
    Like,
    Dislike,
    Skip,
}

impl Action {
    /// How much the event says about the user's taste; negative pushes away.
    pub fn preference_weight(self) -> f32 {
        match self {
            Self::View => 0.3,
            Self::Complete => 0.7,
            Self::Like => 1.0,
            Self::Dislike => -1.0,
            Self::Skip => -0.3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Complete => "complete",
            Self::Like => "like",
            Self::Dislike => "dislike",
            Self::Skip => "skip",
        }
    }
}

/// One interaction, as posted to `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractionEvent {
    pub user_id: String,
    pub item_id: String,
    pub action: Action,
    /// Unix seconds; the server's clock when absent.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// Id of the recommendation response the interaction came from, if any.
    #[serde(default)]
    pub recommendation_id: Option<String>,
    /// The client's id for this event: an event is stored once per user and id, however
    /// often it is sent. Without one, an event with a `timestamp` is identified by its
    /// content (user, item, action, timestamp, recommendation); one without either is new
    /// on every try.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// Acknowledgement of stored events: they are durable when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsAccepted {
    /// Events of the request now stored (new ones and those stored by an earlier try).
    pub accepted: usize,
    /// Of those, events an earlier try had already stored: not stored again.
    #[serde(default)]
    pub duplicates: usize,
}

/// Result of an item upsert batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemsUpserted {
    pub upserted: usize,
}

/// Part of the day, used as context by the ranker and the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeOfDay {
    Morning,
    Afternoon,
    Evening,
    Night,
}

impl TimeOfDay {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Morning => "morning",
            Self::Afternoon => "afternoon",
            Self::Evening => "evening",
            Self::Night => "night",
        }
    }
}

/// Kind of device the request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Mobile,
    Tablet,
    Desktop,
    Tv,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::Tablet => "tablet",
            Self::Desktop => "desktop",
            Self::Tv => "tv",
        }
    }
}

/// Query string of `GET /v1/recommendations`, exactly as clients send it.
///
/// `exclude_genres` is a comma-separated list. Everything is optional: an anonymous request
/// without context gets what is popular.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationQuery {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub time_of_day: Option<TimeOfDay>,
    #[serde(default)]
    pub device: Option<Device>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub exclude_genres: Option<String>,
    #[serde(default)]
    pub max_maturity: Option<Maturity>,
    /// A genre or theme of the genre ontology; matches its sub-genres too.
    #[serde(default)]
    pub genre: Option<String>,
    /// A named audience filter of the ontology, e.g. `family-friendly`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Only items released in or after this year (items without a year are left out).
    #[serde(default)]
    pub year_from: Option<u16>,
    /// Only items released in or before this year (items without a year are left out).
    #[serde(default)]
    pub year_to: Option<u16>,
}

/// Query string of `GET /v1/similar/{item_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarQuery {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The signals behind a result, each in [0, 1]; the learned ranker (or, before one is
/// trained, a weighted sum) turns them into the score.
/// `semantic` is the cosine similarity to the request's query vector, rescaled over the
/// request's candidates (best candidate 1, worst 0); `collaborative` and `transition` are
/// the item's score from the collaborative model and the next-item transitions, relative
/// to the best item of that source for this user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreComponents {
    pub semantic: f32,
    pub graph: f32,
    pub popularity: f32,
    pub freshness: f32,
    pub quality: f32,
    #[serde(default)]
    pub collaborative: f32,
    #[serde(default)]
    pub transition: f32,
}

/// Structured intent inferred from the free-text `q` and the request context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntentSummary {
    /// e.g. `uplifting`, `funny`, `tense`, `dark`, `romantic`, `thoughtful`, `relaxed`, `exciting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood: Option<String>,
    /// Catalogue genres the words point at (lowercase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<String>,
    /// `short` or `long`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<String>,
    /// `rules` (keywords), `prototype` (nearest mood sentence) or `context` (time, device).
    pub source: String,
    /// Cosine to the mood prototype, for `prototype`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

/// One recommended item with its score breakdown and a readable reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredItem {
    pub item: Item,
    pub score: f32,
    pub components: ScoreComponents,
    pub reason: String,
}

/// Response of `GET /v1/recommendations` and `GET /v1/similar/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationResponse {
    /// Unique id of this response; events may reference it as `recommendation_id`.
    pub recommendation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub items: Vec<ScoredItem>,
    /// True when the user had no usable history and popular-in-context was served.
    pub cold_start: bool,
    /// What the request seemed to ask for (mood, genre hints, length), when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentSummary>,
    /// Names of candidate sources that failed; non-empty means a degraded answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
    /// True when some index shards did not answer (every replica down or too slow): the
    /// items come from the rest of the catalogue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The shards missing from a partial answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
}
