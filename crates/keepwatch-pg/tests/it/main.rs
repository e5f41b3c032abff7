//! keepwatch-pg's tests: the tracker fed scripted conversations (`track`), SCRAM verifiers
//! checked against PostgreSQL's own (`scram_postgres`), and real psql and pgbench traffic
//! through a tee (`traffic`).

mod script;
mod track;
