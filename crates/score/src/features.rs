//! Feature extraction: one request in, one fixed array of numbers out, no allocation.
//!
//! [`extract`] reads the user agent once ([`agent`]), the headers once ([`headers`]), the path
//! and query once ([`target`]), and counts the request in the [`RateTable`]. Every value is
//! finite; integer features saturate at the maximum of their ClickHouse type.

mod agent;
mod headers;
mod target;

use crate::catalogue::{COUNT, FeatureId};
use crate::rate::RateTable;
use crate::request::RequestView;

/// The value of every catalogue feature for one request, indexed by [`FeatureId`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    values: [f32; COUNT],
}

/// Computes every catalogue feature of `req`, and counts it in `rate`.
///
/// Allocates nothing (after the user-agent automaton is built, once per process); reads
/// no clock (time is `req.now_ms`).
pub fn extract(req: &RequestView<'_>, rate: &RateTable) -> Features {
    let mut f = Features::zeroed();
    let ua = req
        .headers
        .get(http::header::USER_AGENT)
        .map_or(&b""[..], |v| v.as_bytes());
    let agent = agent::scan(ua, &mut f);
    headers::scan(req.headers, &agent, &mut f);
    target::scan(req.method, req.version, req.path, req.query, &mut f);
    let count = rate.hit(req.client, req.now_ms);
    f.set(FeatureId::ClientRate1m, count as f32);
    f.set(FeatureId::ClientRateLog2, (count.max(1) as f32).log2());
    f
}

// === impl Features ===

impl Features {
    /// Every feature 0.
    pub fn zeroed() -> Self {
        Features {
            values: [0.0; COUNT],
        }
    }

    /// The value of one feature.
    pub fn get(&self, id: FeatureId) -> f32 {
        self.values.get(id.index()).copied().unwrap_or(0.0)
    }

    /// Sets one feature; a non-finite value is stored as 0 so scoring never sees one.
    pub fn set(&mut self, id: FeatureId, value: f32) {
        if let Some(slot) = self.values.get_mut(id.index()) {
            *slot = if value.is_finite() { value } else { 0.0 };
        }
    }

    /// All values, in catalogue order.
    pub fn as_slice(&self) -> &[f32] {
        &self.values
    }

    /// `(id, value)` pairs in catalogue order.
    pub fn iter(&self) -> impl Iterator<Item = (FeatureId, f32)> + '_ {
        FeatureId::ALL
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    fn flag(&mut self, id: FeatureId, on: bool) {
        self.set(id, if on { 1.0 } else { 0.0 });
    }

    fn count_u8(&mut self, id: FeatureId, n: usize) {
        self.set(id, n.min(usize::from(u8::MAX)) as f32);
    }

    fn count_u16(&mut self, id: FeatureId, n: usize) {
        self.set(id, n.min(usize::from(u16::MAX)) as f32);
    }
}

impl Default for Features {
    fn default() -> Self {
        Self::zeroed()
    }
}
