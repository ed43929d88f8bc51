//! Domain types shared by every step of a request: a dataset's schema and the
//! typed values that flow between ingestion, the store and the output formats.
//! Values here are valid by construction; raw strings stop at the parsers.

pub mod client_text;
pub mod schema;
pub mod text;
pub mod value;

pub use schema::{
    Constraints, Field, FieldType, IncompatibleChange, Schema, SchemaChange, Sensitivity,
    compatible_changes,
};
pub use value::Value;
