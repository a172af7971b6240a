//! shared bench workloads
