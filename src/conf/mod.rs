//! Configuration: httpd syntax in, a validated `Config` out.
pub mod model;
pub use model::Config;
