//! Hand-written SVG charts: lines over time and stacked areas, no dependency, no script.
