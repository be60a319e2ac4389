//! What the bot module sees of a request: borrowed parts, no copies.

use std::net::IpAddr;

/// A request as the edge hands it to the bot module: hyper's request parts, borrowed.
///
/// Time comes in as `now_ms` (milliseconds since the Unix epoch, or any monotonic origin the
/// caller keeps consistent) so the module reads no clock and the simulator can drive it.
///
/// Header order: the header features read `headers` in iteration order. `http::HeaderMap`
/// yields names in the order they were first inserted (all values of a name together) as
/// long as nothing was removed, and hyper inserts in wire order; the edge must pass the map
/// before it removes or rewrites anything (hop-by-hop headers, `x-forwarded-for`).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The protocol version.
    pub version: http::Version,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string without `?`, when there is one.
    pub query: Option<&'a str>,
    /// The request headers, as received.
    pub headers: &'a http::HeaderMap,
    /// The client's address (the peer, or the one a trusted proxy reported).
    pub client: IpAddr,
    /// Now, in milliseconds.
    pub now_ms: u64,
}
