//! One conformance suite for the metadata store: every test here runs against each backend
//! (`backend::sqlite` and `backend::postgres` in the test names), through the same `Store`
//! methods, and must give the same answers. PostgreSQL tests each get a fresh database,
//! created and dropped on the server named by `KEEPWATCH_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it is unreachable they fail with a
//! line saying how to start it. They never skip.

mod support;

mod chains;
mod copy;
mod index_status;
mod looks;
mod migrations;
mod nodes;
mod records;
mod search;
mod tags;
mod targets;
mod tls;
mod web_logins;
