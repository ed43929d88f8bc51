//! `GET|HEAD /api/v1/data/{id}`: the rows of a dataset in the PostgREST read
//! grammar. `access` decides what the caller may see (the one place every data
//! access passes), `range` holds PostgREST's paging headers, `read` runs it.

pub mod access;
pub mod cache;
pub mod exports;
pub mod range;
pub mod read;
