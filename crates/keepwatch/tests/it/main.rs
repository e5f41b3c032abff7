//! Integration tests: the real `keepwatch` binary driven by real OpenSSH (`sshd` as the
//! target, `ssh` as the person). Needs root (sshd with password logins), openssh-server and
//! the local user `kwtest`; `scripts/test.sh` sets all of that up. Every test builds its
//! world with `support::TestEnv` and waits on statuses, never by sleeping.

mod support;

mod archive;
mod balancer;
mod console;
mod context;
mod durability;
mod encryption;
mod evasion;
mod events;
mod forwarding;
mod limits;
mod load;
mod looks;
mod metrics;
mod nodes;
mod openapi;
mod postgres;
mod refusals;
mod report;
mod retention;
mod search;
mod secrets;
mod sessions;
mod tags;
mod tamper;
mod transfers;
mod trust;
