//! tunnelswarm's sans-IO protocol core.
//!
//! Rules (docs/architecture.md): no IO, no clock reads, no OS randomness in this crate
//! (the one exception, TLS key material drawn by rustls/ring, is documented in
//! `tls.rs`); every input carries `now` in microseconds on the caller's monotonic
//! timeline; untrusted bytes only ever produce documented, typed outcomes.
#![forbid(unsafe_code)]

pub mod cstp;
pub mod dtls;
pub mod ip;
pub mod stats;
pub mod tls;
pub mod traffic;
pub mod x509;
