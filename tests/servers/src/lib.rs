//! Throwaway servers for tests that need a real PostgreSQL or S3: started on loopback in a
//! temporary directory, gone on drop. A dev-dependency only: nothing a user builds links it.

pub mod pg;
pub mod s3;
pub mod skip;
