//! The edge's side of the shared accept loop ([`rampart_serve`]): the loop itself moved
//! there so the control plane serves through the same one; the edge's metrics count its
//! connection events (`rampart_edge_connections_*`).

pub use rampart_serve::{
    Drained, Events, PerClient, ServeOptions, ShutdownSignal, ShutdownTrigger, WhenFull, serve,
};

use crate::metrics::Metrics;

impl Events for Metrics {
    fn opened(&self) {
        self.connection_opened();
    }
    fn closed(&self) {
        self.connection_closed();
    }
    fn refused_per_client(&self) {
        Metrics::refused_per_client(self);
    }
    fn header_timeout(&self) {
        Metrics::header_timeout(self);
    }
}
