//! The internal RPC's message encoding: little-endian, length-prefixed, no schema
//! negotiation (the path carries the version, `/internal/v1/...`). Binary because a search
//! carries a 384-float query; JSON would triple its size and its decoding time.

use std::sync::Arc;

use vector_index::{Clause, Filter, Hit};

#[derive(Debug, thiserror::Error)]
#[error("malformed internal message: {0}")]
pub struct WireError(pub &'static str);

#[derive(Default)]
pub struct Encoder(Vec<u8>);

impl Encoder {
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn f32s(&mut self, v: &[f32]) -> &mut Self {
        self.u32(v.len() as u32);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
}

pub struct Decoder<'a>(&'a [u8]);

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self(buf)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn f32(&mut self) -> Result<f32, WireError> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// A length read from the message, refused when it cannot fit in what is left.
    fn len(&mut self, unit: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(unit) > self.0.len() {
            return Err(WireError("length past the end"));
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.len(1)?;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError("string is not UTF-8"))
    }
    pub fn f32s(&mut self) -> Result<Vec<f32>, WireError> {
        let n = self.len(4)?;
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
    /// Fails unless the whole message was consumed.
    pub fn end(&self) -> Result<(), WireError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(WireError("trailing bytes")),
        }
    }
}

/// A query for the best `k` items of some of a node's shards.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub k: u32,
    pub ef: u32,
    pub shards: Vec<u32>,
    pub query: Vec<f32>,
    /// Only items this admits are returned (evaluated inside each shard's search).
    pub filter: Filter,
}

impl SearchRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u32(self.k).u32(self.ef).u32(self.shards.len() as u32);
        for &s in &self.shards {
            e.u32(s);
        }
        e.f32s(&self.query);
        e.u32(self.filter.clauses().len() as u32);
        for clause in self.filter.clauses() {
            let (kind, labels) = match clause {
                Clause::AnyOf(l) => (0, l),
                Clause::NoneOf(l) => (1, l),
            };
            e.u8(kind).u32(labels.len() as u32);
            for label in labels {
                e.str(label);
            }
        }
        e.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(buf);
        let (k, ef) = (d.u32()?, d.u32()?);
        let n = d.len(4)?;
        let shards = (0..n).map(|_| d.u32()).collect::<Result<_, _>>()?;
        let query = d.f32s()?;
        let clause_count = d.len(5)?;
        let mut clauses = Vec::with_capacity(clause_count);
        for _ in 0..clause_count {
            let kind = d.u8()?;
            let label_count = d.len(4)?;
            let labels = (0..label_count)
                .map(|_| d.str().map(Arc::from))
                .collect::<Result<Vec<Arc<str>>, _>>()?;
            clauses.push(match kind {
                0 => Clause::AnyOf(labels),
                1 => Clause::NoneOf(labels),
                _ => return Err(WireError("unknown filter clause")),
            });
        }
        d.end()?;
        Ok(Self {
            k,
            ef,
            shards,
            query,
            filter: Filter::from_clauses(clauses),
        })
    }
}

/// Per answered shard, its hits best first. A shard the node does not serve (now) is left
/// out, and the router asks another replica.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResponse {
    pub shards: Vec<(u32, Vec<Hit>)>,
}

impl SearchResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u32(self.shards.len() as u32);
        for (shard, hits) in &self.shards {
            e.u32(*shard).u32(hits.len() as u32);
            for h in hits {
                e.str(&h.item_id).f32(h.score);
            }
        }
        e.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(buf);
        let n = d.len(8)?;
        let mut shards = Vec::with_capacity(n);
        for _ in 0..n {
            let shard = d.u32()?;
            let m = d.len(8)?;
            let mut hits = Vec::with_capacity(m);
            for _ in 0..m {
                let item_id: Arc<str> = Arc::from(d.str()?);
                hits.push(Hit {
                    item_id,
                    score: d.f32()?,
                });
            }
            shards.push((shard, hits));
        }
        d.end()?;
        Ok(Self { shards })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let req = SearchRequest {
            k: 10,
            ef: 100,
            shards: vec![0, 7, 19],
            query: vec![0.5, -0.25, 1.0],
            filter: Filter::default()
                .any_of(["genre:drama", "genre:crime"])
                .none_of(["maturity:adult"]),
        };
        assert_eq!(SearchRequest::decode(&req.encode()).unwrap(), req);
        let resp = SearchResponse {
            shards: vec![
                (
                    3,
                    vec![Hit {
                        item_id: "tt1".into(),
                        score: 0.9,
                    }],
                ),
                (4, vec![]),
            ],
        };
        assert_eq!(SearchResponse::decode(&resp.encode()).unwrap(), resp);
    }

    #[test]
    fn malformed_messages_are_refused_not_panicked_on() {
        let good = SearchRequest {
            k: 1,
            ef: 1,
            shards: vec![1],
            query: vec![1.0; 4],
            filter: Filter::default().any_of(["lang:en"]),
        }
        .encode();
        for cut in 0..good.len() {
            assert!(SearchRequest::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SearchRequest::decode(&huge).is_err());
        let mut trailing = good;
        trailing.push(0);
        assert!(SearchRequest::decode(&trailing).is_err());
    }
}
