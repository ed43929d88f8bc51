//! The PostgREST read grammar: a query string becomes a typed [`ReadPlan`],
//! checked against the columns the caller may see.

pub mod plan;

pub use plan::ReadPlan;
