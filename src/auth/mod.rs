//! Identity: who is asking.

/// Runs the same SQL on whichever pool backs the store.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}

pub mod caller;
pub mod config;
pub mod keys;
