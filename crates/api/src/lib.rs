//! rampart-api: the wire types between control plane, edges and CLI, and a typed client.
//! (Being written: see crates/control.)
