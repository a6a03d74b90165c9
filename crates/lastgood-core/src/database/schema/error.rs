//! Why a schema could not be read: which part of the catalog was being read, and the
//! database's own error as the source.
//!
//! One type for both dialects: the rehearsal that reads schemas handles a failure the
//! same way whichever database it came from. Comparing schemas cannot fail, so there is
//! no variant for it.

use crate::database::pg_client;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read the {reading} of the PostgreSQL schema: {}", pg_client::message(.source))]
    Postgres {
        reading: &'static str,
        #[source]
        source: postgres::Error,
    },
    #[error("cannot read the {reading} of the SQLite schema: {source}")]
    Sqlite {
        reading: String,
        #[source]
        source: rusqlite::Error,
    },
}
