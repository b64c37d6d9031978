//! Just enough DER to find a certificate's SubjectPublicKeyInfo, for openconnect-style
//! `pin-sha256:` pins (base64 of SHA-256 over the SPKI DER; openconnect `--servercert`).
//!
//! Theory of operation: `Certificate ::= SEQUENCE { tbsCertificate, ... }` and
//! `TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
//! issuer, validity, subject, subjectPublicKeyInfo, ... }` (RFC 5280 §4.1). We walk
//! the TLVs and return the complete SPKI element. Input is untrusted: every length is
//! checked, nothing panics, a malformed certificate yields `None`.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// One DER element split off the front of a buffer: (tag, whole element, content, rest).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Split one DER TLV off `input`.
fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((tag, &input[..header + len], &rest[..len], &rest[len..]))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate, if it parses.
pub fn spki_of_certificate(cert_der: &[u8]) -> Option<&[u8]> {
    let (tag, _, cert, _) = tlv(cert_der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    // optional [0] EXPLICIT version
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.3;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = tlv(rest)?.3;
    }
    let (tag, spki, _, _) = tlv(rest)?;
    (tag == 0x30).then_some(spki)
}

/// `pin-sha256:<base64>` of a certificate, as openconnect prints and accepts it.
pub fn pin_sha256(cert_der: &[u8]) -> Option<String> {
    let spki = spki_of_certificate(cert_der)?;
    let digest = Sha256::digest(spki);
    Some(format!(
        "pin-sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_matches_rcgen_public_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let spki = spki_of_certificate(cert.der()).unwrap();
        assert_eq!(spki, key.public_key_der().as_slice());
        let pin = pin_sha256(cert.der()).unwrap();
        assert!(pin.starts_with("pin-sha256:") && pin.len() == 11 + 44);
    }

    #[test]
    fn garbage_gives_none() {
        assert_eq!(spki_of_certificate(&[]), None);
        assert_eq!(
            spki_of_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(spki_of_certificate(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
        for n in 0..200u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = spki_of_certificate(&junk);
        }
    }
}
