//! The DER walk that finds a certificate's SubjectPublicKeyInfo, on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tunnelswarm_proto::x509::pin_sha256(data);
});
