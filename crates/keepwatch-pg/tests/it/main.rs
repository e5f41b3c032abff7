//! keepwatch-pg's tests: the tracker fed scripted conversations (`track`), SCRAM verifiers
//! checked against PostgreSQL's own (`scram_postgres`), and real psql and pgbench traffic
//! through a tee (`traffic`).

mod postgres;
mod scram_postgres;
mod script;
mod track;
mod traffic;
