//! Tests for conf.
