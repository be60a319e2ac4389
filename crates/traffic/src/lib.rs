//! Realistic, labelled HTTP requests made from real user agents, for the simulator, `rampart
//! up`, the benchmarks and the bot model's fit.
//!
//! Browsers come from real profiles (user agent, language, share of traffic) and send the
//! header set of their engine in its wire order; bots come from real crawler and library user
//! agents and send their library's few headers; a share of bots send a real browser's user
//! agent (with a tool's headers, a scraper's, a hint-less automation set, or rarely the
//! browser's own). Every request is labelled human or bot.
//!
//! # Layout
//! - [`profile`]: [`Profiles`], the data (a subset embedded from `data/user-agents`, or a
//!   directory such as `shared/data/user-agents`).
//! - [`kit`]: [`Kit`], the header sets, and [`Dest`] (what is fetched).
//! - [`request`]: [`Request`], [`Labelled`], [`Label`], [`Kind`].
//! - [`mix`]: [`Traffic`], the stream, [`Mix`] its shares, and the building blocks
//!   [`human`], [`bot`], [`imitator`].
//! - [`rng`]: [`Rng`], the seeded generator.
//!
//! The one decision that matters: **everything is a function of the seed.** No global RNG,
//! no clock: the same seed gives the same stream on every machine, so a fitted model, a
//! replay and a benchmark can be reproduced exactly.

pub mod kit;
pub mod mix;
pub mod profile;
pub mod request;
pub mod rng;

pub use kit::{Dest, Kit, Shape, header_map};
pub use mix::{Mix, Traffic, bot, human, imitator};
pub use profile::{BotAgent, Browser, ProfileError, Profiles};
pub use request::{Kind, Label, Labelled, Request};
pub use rng::Rng;
