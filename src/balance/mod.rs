//! Balancers.
