//! Reports of a run: the merged results (`model`) and the formats they render to.
pub mod model;
