//! Every error `code` the services answer with, its HTTP status and who may see it, in one
//! table: the core, the edge and the internal RPC all name codes through [`ErrorCode`], so a
//! code cannot be misspelt, answered with two statuses, or added without being documented
//! (a test checks the public ones against the README's error table).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who may receive a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exposure {
    /// Public: answered by the core API (the edge may answer it too, or pass it on).
    Core,
    /// Public: answered only by the edge worker.
    Edge,
    /// Not part of the public API: a command-line tool's or the internal shard RPC's code.
    Internal,
}

/// Declares [`ErrorCode`] and its table from one list of rows, so the wire string, the
/// status and the exposure of a code are written once, next to its meaning.
macro_rules! error_codes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = ($wire:literal, $status:literal, $exposure:ident),
    )+) => {
        /// A stable, machine-readable error code: the `code` of an error body
        /// (`{"code": "...", "message": "..."}`). Serialised as its snake_case wire string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant,)+];

            /// The snake_case string sent on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }

            /// The HTTP status an error with this code is answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)+
                }
            }

            /// Who may receive this code.
            pub const fn exposure(self) -> Exposure {
                match self {
                    $(Self::$variant => Exposure::$exposure,)+
                }
            }
        }
    };
}

error_codes! {
    /// An unknown, repeated or malformed query parameter (or a year range out of order).
    InvalidQuery = ("invalid_query", 400, Core),
    /// `limit` outside 1-100.
    InvalidLimit = ("invalid_limit", 400, Core),
    /// The free-text intent `q` is over 512 bytes.
    QueryTooLong = ("query_too_long", 400, Core),
    /// A malformed context tag (`locale`, `language`, `genre`, `audience`) or an oversized
    /// `exclude_genres` list.
    InvalidContext = ("invalid_context", 400, Core),
    /// A user id that is not 1-64 characters of `A-Za-z0-9_.-`.
    InvalidUserId = ("invalid_user_id", 400, Core),
    /// A malformed item id.
    InvalidItemId = ("invalid_item_id", 400, Core),
    /// A path segment that cannot be decoded.
    InvalidPath = ("invalid_path", 400, Core),
    /// A body (or an NDJSON line) that is not the expected JSON.
    InvalidJson = ("invalid_json", 400, Core),
    /// A body that cannot be read, or not the one object expected.
    InvalidBody = ("invalid_body", 400, Core),
    /// An empty or oversized batch of events or items.
    InvalidBatch = ("invalid_batch", 400, Core),
    /// An item that breaks an input rule (missing title, bad embedding, ...).
    InvalidItem = ("invalid_item", 400, Core),
    /// An event time more than 5 minutes in the future.
    InvalidTimestamp = ("invalid_timestamp", 400, Core),
    /// A `recommendation_id` over 64 bytes.
    InvalidRecommendationId = ("invalid_recommendation_id", 400, Core),
    /// An event's `event_id` is empty, over 64 bytes or has characters other than letters,
    /// digits, `-`, `_`, `.` and `:`.
    InvalidEventId = ("invalid_event_id", 400, Core),
    /// An unknown feature or a non-finite weight in a policy to evaluate.
    InvalidWeights = ("invalid_weights", 400, Core),
    /// A `genre` filter that is not in the ontology (the message lists the valid names).
    UnknownGenre = ("unknown_genre", 400, Core),
    /// An `audience` filter that is not in the ontology.
    UnknownAudience = ("unknown_audience", 400, Core),
    /// No or bad credentials; at the edge, a missing or bad token (with
    /// `WWW-Authenticate: Bearer`).
    Unauthorized = ("unauthorized", 401, Core),
    /// A known caller asking for what is not theirs, or an operator key without the scope.
    Forbidden = ("forbidden", 403, Core),
    /// No item with the given id.
    ItemNotFound = ("item_not_found", 404, Core),
    /// `GET /v1/jobs/{id}` for a job this node does not know (never started here, forgotten,
    /// or started before a restart).
    JobNotFound = ("job_not_found", 404, Core),
    /// No such endpoint.
    RouteNotFound = ("route_not_found", 404, Core),
    /// A known endpoint asked with the wrong method.
    MethodNotAllowed = ("method_not_allowed", 405, Core),
    /// A training is already running.
    TrainingInProgress = ("training_in_progress", 409, Core),
    /// Fewer than `learning.min_positives` positive interactions to train on.
    NotEnoughData = ("not_enough_data", 409, Core),
    /// A body over `server.max_body_bytes` (over the edge's own limit at the edge).
    PayloadTooLarge = ("payload_too_large", 413, Core),
    /// A request URI over 8 KiB.
    UriTooLong = ("uri_too_long", 414, Core),
    /// A body that is neither `application/json` nor NDJSON.
    UnsupportedMediaType = ("unsupported_media_type", 415, Core),
    /// The caller's identity is over its rate limit (answered with `Retry-After`).
    RateLimited = ("rate_limited", 429, Core),
    /// An unexpected failure, logged on the server.
    Internal = ("internal", 500, Core),
    /// Edge only: an unusable `wrangler.toml` value; an operator must fix the deployment.
    EdgeMisconfigured = ("edge_misconfigured", 500, Edge),
    /// The index is still loading (or, on a shard node, catching up with its peers).
    NotReady = ("not_ready", 503, Core),
    /// The request ran past `server.request_timeout_ms`.
    Timeout = ("timeout", 503, Core),
    /// The embedding queue is full; retry shortly.
    Overloaded = ("overloaded", 503, Core),
    /// A store did not answer or confirm a write (answered with `Retry-After`).
    StorageUnavailable = ("storage_unavailable", 503, Core),
    /// Edge only: the core cannot be reached and nothing is cached (with `Retry-After`).
    OriginUnavailable = ("origin_unavailable", 503, Edge),
    /// A write the core did not confirm in time: it may or may not be stored. Send it again
    /// with the same event ids (events are stored once per id; item upserts are idempotent).
    WriteOutcomeUnknown = ("write_outcome_unknown", 503, Edge),
    /// Edge only: the token-signing keys (JWKS) cannot be fetched, so no token can be checked.
    AuthUnavailable = ("auth_unavailable", 503, Edge),
    /// Not public: `reco-ingest` cannot read or parse a catalogue file.
    InvalidCatalogue = ("invalid_catalogue", 400, Internal),
    /// Not public: the internal shard RPC got a request it cannot decode.
    BadRequest = ("bad_request", 400, Internal),
    /// Not public: the internal shard RPC asked a node for a shard it does not host.
    ShardNotHosted = ("shard_not_hosted", 404, Internal),
}

impl ErrorCode {
    /// Whether the code is part of the public API (and so listed in the README's error table).
    pub const fn is_public(self) -> bool {
        !matches!(self.exposure(), Exposure::Internal)
    }

    /// The code with this wire string, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn wire_strings_are_unique_snake_case_and_match_serde() {
        let mut seen = HashSet::new();
        for &code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} is used twice");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s} is not snake_case"
            );
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert_eq!(ErrorCode::parse(s), Some(code));
            assert_eq!(code.to_string(), s);
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn statuses_are_client_or_server_errors() {
        for &code in ErrorCode::ALL {
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }
}
