//! DTLS handshake-header splitting and every handshake body parser, with round trips of
//! whatever parses (`dtls::fuzz::fuzz_handshake_message`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tunnelswarm_proto::dtls::fuzz::fuzz_handshake_message(data);
});
