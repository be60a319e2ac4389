//! A generated request, owned, with its label.

use std::net::IpAddr;

use http::{HeaderMap, Method, Version};
use rampart_score::RequestView;

use crate::kit::Kit;

/// Who really sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// A person with a browser.
    Human,
    /// A program.
    Bot,
}

/// The finer kind of client behind a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A real browser (human).
    Browser,
    /// An HTTP library or command-line tool.
    Tool,
    /// A crawler, feed reader, monitor or preview fetcher.
    Crawler,
    /// A headless or automated browser that says so in its user agent.
    Automation,
    /// A bot that sends a real browser's user agent.
    Imitator,
}

/// One request, owned: everything the edge's bot module reads.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The protocol version.
    pub version: Version,
    /// The path, without the query.
    pub path: String,
    /// The query string without `?`.
    pub query: Option<String>,
    /// The headers, in wire order.
    pub headers: HeaderMap,
    /// The client's address.
    pub client: IpAddr,
}

/// A request with the truth about it.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The request.
    pub request: Request,
    /// Human or bot.
    pub label: Label,
    /// The kind of client.
    pub kind: Kind,
    /// The header set it was built with.
    pub kit: Kit,
    /// When it arrives, in milliseconds from the start of the stream.
    pub at_ms: u64,
}

// === impl Request ===

impl Request {
    /// The request as the bot module sees it, at `now_ms`.
    pub fn view(&self, now_ms: u64) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            version: self.version,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client: self.client,
            now_ms,
        }
    }

    /// The User-Agent header ("" when absent or not text).
    pub fn user_agent(&self) -> &str {
        self.headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

// === impl Label ===

impl Label {
    /// 1.0 for a bot, 0.0 for a human: the positive class of the bot model is "automated"
    /// only in training; the edge's score is high for humans.
    pub fn is_bot(self) -> bool {
        self == Label::Bot
    }
}
