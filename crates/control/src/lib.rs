//! rampart-control: the control-plane service. (Being written.)
