//! The PostgREST read grammar: a query string becomes a typed [`ReadPlan`],
//! checked against the columns the caller may see.

pub mod error;
pub mod limits;
pub mod parse;
pub mod plan;

pub use error::QueryError;
pub use limits::QueryLimits;
pub use parse::{parse_filters, parse_read_query};
pub use plan::ReadPlan;
