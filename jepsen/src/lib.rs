//! Kartotek's Jepsen-style fault-injection harness.
//!
//! It starts real `kartotek node` processes (each in its own network namespace, or on
//! loopback), drives them with concurrent clients that record every operation in a history,
//! injects faults on a seeded schedule (partitions, kills, pauses, packet loss,
//! clock jumps, disk faults, membership changes), heals, runs final reads and checks the history
//! (linearizability per key for registers; no lost or phantom elements for sets). Each run is
//! stored under `store/<test>/<timestamp>/` with a verdict and an HTML report.

pub mod cli;
pub mod cluster;
pub mod history;
pub mod linear;
pub mod nemesis;
pub mod netns;
pub mod report;
pub mod runner;
pub mod sites;
pub mod workload;
