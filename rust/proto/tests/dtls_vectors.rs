//! The DTLS vectors of protocol.md §10.4–§10.6 (`tests/vectors/dtls.json`), reproduced
//! byte for byte through the public API: key schedule, record protection, and whole
//! client/server connections driven with the fixed randoms and IVs injected.

mod common;

use common::{bytes_of, hex, str_of};
use serde_json::Value;
use tunnelswarm_proto::dtls::cipher::{
    additional_data, new_protection, write_record, CbcProtection, RecordMeta,
};
use tunnelswarm_proto::dtls::keys::{
    derive_session_keys, export_no_context, key_block, slice_key_block, verify_data, FinishedBy,
};
use tunnelswarm_proto::dtls::messages::encode_handshake;
use tunnelswarm_proto::dtls::suites::{
    resolve_cipher_name, suite_by_id, BulkCipher, CipherHeader, DtlsVersion, MacAlg, PrfHash,
};
use tunnelswarm_proto::dtls::{
    DtlsClientConfig, DtlsConnection, DtlsEvent, DtlsMode, HelloStyle, ScriptedRandom,
    ServerSessionParams,
};

fn doc() -> Value {
    common::vectors!("dtls.json")
}

fn r32(v: &Value, k: &str) -> [u8; 32] {
    bytes_of(v, k).try_into().expect("32 bytes")
}

struct Inputs {
    ms: [u8; 48],
    cr: [u8; 32],
    sr: [u8; 32],
    sid: Vec<u8>,
    iv: Vec<u8>,
}

fn inputs() -> Inputs {
    let d = doc();
    let i = &d["inputs"];
    Inputs {
        ms: bytes_of(i, "master_secret").try_into().expect("48 bytes"),
        cr: r32(i, "client_random"),
        sr: r32(i, "server_random"),
        sid: bytes_of(i, "session_id"),
        iv: bytes_of(i, "cbc_iv"),
    }
}

fn drain(c: &mut DtlsConnection, now: u64) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_transmit(now)).collect()
}

/// Split a datagram into whole records.
fn records(d: &[u8]) -> Vec<Vec<u8>> {
    tunnelswarm_proto::dtls::record::RecordIter::new(d)
        .map(|r| {
            let (h, f) = r.expect("valid record");
            let mut out = Vec::new();
            tunnelswarm_proto::dtls::record::encode_header(&mut out, &h);
            out.extend_from_slice(f);
            out
        })
        .collect()
}

#[test]
fn vector_file_has_every_value() {
    let d = doc();
    assert_eq!(
        d["dtls09_resumption_aes128_sha"].as_object().unwrap().len(),
        24
    );
    assert!(
        d["dtls12_resumption_aes256_gcm_sha384"]
            .as_object()
            .unwrap()
            .len()
            >= 19
    );
    assert!(d["psk_exporter"]["sha384"].is_string());
}

#[test]
fn dtls09_key_schedule() {
    let d = doc();
    let v = &d["dtls09_resumption_aes128_sha"];
    let i = inputs();
    let sel = resolve_cipher_name(CipherHeader::DtlsCipherSuite, str_of(v, "cipher_name")).unwrap();
    assert_eq!(format!("{:04x}", sel.suite.id), str_of(v, "suite_id"));
    assert_eq!(sel.version.label(), str_of(v, "version"));
    assert_eq!(sel.prf, PrfHash::Tls10);
    let kb = key_block(PrfHash::Tls10, &i.ms, &i.cr, &i.sr, 104);
    assert_eq!(hex(&kb), str_of(v, "key_block"));
    let k = slice_key_block(sel.suite, &kb).unwrap();
    assert_eq!(hex(&k.client.mac_key), str_of(v, "client_mac_key"));
    assert_eq!(hex(&k.server.mac_key), str_of(v, "server_mac_key"));
    assert_eq!(hex(&k.client.key), str_of(v, "client_key"));
    assert_eq!(hex(&k.server.key), str_of(v, "server_key"));
    // bodies-only transcript (§5.2.4)
    let ch = bytes_of(v, "client_hello_record");
    let sh = bytes_of(v, "server_hello_record");
    let mut t = ch[13 + 12..].to_vec();
    t.extend_from_slice(&sh[13 + 12..]);
    let svd = verify_data(PrfHash::Tls10, &i.ms, FinishedBy::Server, &t);
    assert_eq!(hex(&svd), str_of(v, "server_verify_data"));
    t.extend_from_slice(&svd);
    let cvd = verify_data(PrfHash::Tls10, &i.ms, FinishedBy::Client, &t);
    assert_eq!(hex(&cvd), str_of(v, "client_verify_data"));
    assert_eq!(
        hex(&encode_handshake(20, 2, &svd)),
        str_of(v, "server_finished_plaintext")
    );
}

#[test]
fn dtls09_record_protection() {
    let d = doc();
    let v = &d["dtls09_resumption_aes128_sha"];
    let i = inputs();
    let suite = suite_by_id(0x002f).unwrap();
    let keys = derive_session_keys(suite, DtlsVersion::Dtls09, &i.ms, &i.cr, &i.sr).unwrap();
    let srv = CbcProtection::new(BulkCipher::Aes128Cbc, MacAlg::Sha1, &keys.server).unwrap();
    let cli = CbcProtection::new(BulkCipher::Aes128Cbc, MacAlg::Sha1, &keys.client).unwrap();
    let meta = |t: u8, seq: u64| RecordMeta {
        content_type: t,
        version: 0x0100,
        epoch: 1,
        seq,
    };
    let fin_pt = bytes_of(v, "server_finished_plaintext");
    assert_eq!(
        hex(&srv.record_mac(&meta(22, 0), &fin_pt)),
        str_of(v, "server_finished_mac")
    );
    let mut cfin_pt = encode_handshake(20, 2, &bytes_of(v, "client_verify_data"));
    assert_eq!(
        hex(&cli.record_mac(&meta(22, 0), &cfin_pt)),
        str_of(v, "client_finished_mac")
    );
    assert_eq!(
        hex(&cli.record_mac(&meta(23, 1), &[7])),
        str_of(v, "client_keepalive_mac")
    );
    let ka = bytes_of(v, "client_keepalive_record");
    assert_eq!(
        hex(&cli.decrypt_raw(&ka[13..]).unwrap()),
        str_of(v, "client_keepalive_padded_plaintext")
    );
    // sealing with the vector IV reproduces every record
    let iv = i.iv.clone();
    let seal = |p: &CbcProtection, m: RecordMeta, pt: &[u8]| {
        let mut out = Vec::new();
        let mut rng = ScriptedRandom::new(vec![iv.clone()]);
        write_record(&mut out, Some(p), &m, &[pt], &mut rng);
        hex(&out)
    };
    assert_eq!(
        seal(&srv, meta(22, 0), &fin_pt),
        str_of(v, "server_finished_record")
    );
    assert_eq!(
        seal(&cli, meta(22, 0), &cfin_pt),
        str_of(v, "client_finished_record")
    );
    assert_eq!(
        seal(&cli, meta(23, 1), &[7]),
        str_of(v, "client_keepalive_record")
    );
    assert_eq!(
        seal(&cli, meta(23, 2), &[3]),
        str_of(v, "client_dpd_record")
    );
    // and they open again
    let rx = new_protection(suite, &keys.client).unwrap();
    let mut frag = bytes_of(v, "client_finished_record")[13..].to_vec();
    let r = rx.open(&meta(22, 0), &mut frag).unwrap();
    assert_eq!(&frag[r], &cfin_pt[..]);
    cfin_pt.clear();
}

#[test]
fn dtls09_whole_handshake_byte_for_byte() {
    let d = doc();
    let v = &d["dtls09_resumption_aes128_sha"];
    let i = inputs();
    let mode = DtlsMode::Legacy {
        cipher: str_of(v, "cipher_name").into(),
    };
    let mut client = DtlsConnection::client_with_rng(
        0,
        DtlsClientConfig::resumption(mode.clone(), i.ms, i.sid.clone(), [0; 32]),
        Box::new(ScriptedRandom::new(vec![
            i.cr.to_vec(),
            i.iv.clone(),
            i.iv.clone(),
            i.iv.clone(),
        ])),
    )
    .unwrap();
    let ch = drain(&mut client, 0);
    assert_eq!(hex(&ch[0]), str_of(v, "client_hello_record"));
    let mut server = DtlsConnection::server_with_rng(
        i.sid.clone(),
        ServerSessionParams::resumption(mode, i.ms),
        Box::new(ScriptedRandom::new(vec![i.sr.to_vec(), i.iv.clone()])),
    )
    .unwrap();
    server.handle_datagram(0, &ch[0]);
    let flight = drain(&mut server, 0);
    let recs = records(&flight[0]);
    assert_eq!(hex(&recs[0]), str_of(v, "server_hello_record"));
    assert_eq!(hex(&recs[1]), str_of(v, "server_ccs_record"));
    assert_eq!(hex(&recs[2]), str_of(v, "server_finished_record"));
    client.handle_datagram(1, &flight[0]);
    let fin = drain(&mut client, 1);
    assert_eq!(fin.len(), 1, "CCS + Finished in one datagram");
    let recs = records(&fin[0]);
    assert_eq!(hex(&recs[0]), str_of(v, "client_ccs_record"));
    assert_eq!(hex(&recs[1]), str_of(v, "client_finished_record"));
    server.handle_datagram(1, &fin[0]);
    assert!(client.is_established() && server.is_established());
    client.send_control(2, 0x07, &[]).unwrap();
    client.send_control(2, 0x03, &[]).unwrap();
    let recs = drain(&mut client, 2);
    assert_eq!(hex(&recs[0]), str_of(v, "client_keepalive_record"));
    assert_eq!(hex(&recs[1]), str_of(v, "client_dpd_record"));
    assert!(matches!(
        client.poll_event(),
        Some(DtlsEvent::Connected {
            version: "DTLS0.9",
            ..
        })
    ));
}

#[test]
fn dtls12_key_schedule_and_transcript() {
    let d = doc();
    let v = &d["dtls12_resumption_aes256_gcm_sha384"];
    let i = inputs();
    let sel =
        resolve_cipher_name(CipherHeader::Dtls12CipherSuite, str_of(v, "cipher_name")).unwrap();
    let alias = resolve_cipher_name(
        CipherHeader::DtlsCipherSuite,
        str_of(&v["also_named"], "cipher_name"),
    )
    .unwrap();
    assert_eq!(sel, alias);
    assert_eq!(format!("{:04x}", sel.suite.id), str_of(v, "suite_id"));
    assert_eq!(sel.prf, PrfHash::Sha384);
    let kb = key_block(PrfHash::Sha384, &i.ms, &i.cr, &i.sr, 72);
    assert_eq!(hex(&kb), str_of(v, "key_block"));
    let k = slice_key_block(sel.suite, &kb).unwrap();
    assert_eq!(hex(&k.client.key), str_of(v, "client_key"));
    assert_eq!(hex(&k.server.key), str_of(v, "server_key"));
    assert_eq!(hex(&k.client.iv), str_of(v, "client_salt"));
    assert_eq!(hex(&k.server.iv), str_of(v, "server_salt"));
    // transcript with the 12-byte headers (§5.3)
    let mut t = bytes_of(v, "client_hello_message");
    t.extend(bytes_of(v, "server_hello_message"));
    let svd = verify_data(PrfHash::Sha384, &i.ms, FinishedBy::Server, &t);
    assert_eq!(hex(&svd), str_of(v, "server_verify_data"));
    t.extend(encode_handshake(20, 1, &svd));
    let cvd = verify_data(PrfHash::Sha384, &i.ms, FinishedBy::Client, &t);
    assert_eq!(hex(&cvd), str_of(v, "client_verify_data"));
}

#[test]
fn dtls12_gcm_records() {
    let d = doc();
    let v = &d["dtls12_resumption_aes256_gcm_sha384"];
    let i = inputs();
    let suite = suite_by_id(0x009d).unwrap();
    let keys = derive_session_keys(suite, DtlsVersion::Dtls12, &i.ms, &i.cr, &i.sr).unwrap();
    let srv = new_protection(suite, &keys.server).unwrap();
    let cli = new_protection(suite, &keys.client).unwrap();
    let mut rng = ScriptedRandom::new(vec![]);
    let m = |t: u8, seq: u64| RecordMeta {
        content_type: t,
        version: 0xfefd,
        epoch: 1,
        seq,
    };
    let mut out = Vec::new();
    let fin = encode_handshake(20, 1, &bytes_of(v, "server_verify_data"));
    write_record(&mut out, Some(srv.as_ref()), &m(22, 0), &[&fin], &mut rng);
    assert_eq!(hex(&out), str_of(v, "server_finished_record"));
    let mut out = Vec::new();
    write_record(&mut out, Some(cli.as_ref()), &m(23, 1), &[&[3]], &mut rng);
    assert_eq!(hex(&out), str_of(v, "client_dpd_record"));
    assert_eq!(
        hex(&out[13 + 8..13 + 9]),
        str_of(v, "client_dpd_ciphertext")
    );
    assert_eq!(hex(&out[13 + 9..]), str_of(v, "client_dpd_tag"));
    assert_eq!(
        hex(&additional_data(&m(23, 1), 1)),
        str_of(v, "client_dpd_aad")
    );
    // the receiver opens it, taking the nonce from the record
    let mut frag = out[13..].to_vec();
    let r = cli.open(&m(23, 1), &mut frag).unwrap();
    assert_eq!(&frag[r], &[3]);
}

#[test]
fn dtls12_whole_handshake_byte_for_byte() {
    let d = doc();
    let v = &d["dtls12_resumption_aes256_gcm_sha384"];
    let i = inputs();
    let mut cfg = DtlsClientConfig::resumption(
        DtlsMode::Dtls12 {
            cipher: str_of(v, "cipher_name").into(),
        },
        i.ms,
        i.sid.clone(),
        [0; 32],
    );
    cfg.hello_style = HelloStyle::Bare; // suites [009d], no extensions: the §10.5 transcript
    let mut client =
        DtlsConnection::client_with_rng(0, cfg, Box::new(ScriptedRandom::new(vec![i.cr.to_vec()])))
            .unwrap();
    let ch = drain(&mut client, 0);
    assert_eq!(hex(&ch[0][13..]), str_of(v, "client_hello_message"));
    let mut server = DtlsConnection::server_with_rng(
        i.sid.clone(),
        ServerSessionParams::resumption(
            DtlsMode::Legacy {
                cipher: str_of(&v["also_named"], "cipher_name").into(),
            },
            i.ms,
        ),
        Box::new(ScriptedRandom::new(vec![i.sr.to_vec()])),
    )
    .unwrap();
    server.handle_datagram(0, &ch[0]);
    let fl = drain(&mut server, 0);
    let recs = records(&fl[0]);
    assert_eq!(hex(&recs[0][13..]), str_of(v, "server_hello_message"));
    assert_eq!(hex(&recs[2]), str_of(v, "server_finished_record"));
    client.handle_datagram(1, &fl[0]);
    let fin = drain(&mut client, 1);
    server.handle_datagram(1, &fin[0]);
    assert!(server.is_established());
    client.send_control(2, 0x03, &[]).unwrap();
    assert_eq!(
        hex(&drain(&mut client, 2)[0]),
        str_of(v, "client_dpd_record")
    );
}

#[test]
fn psk_exporter_values() {
    let d = doc();
    let v = &d["psk_exporter"];
    let i = inputs();
    let label = str_of(v, "label").as_bytes();
    for (hash, k) in [(PrfHash::Sha256, "sha256"), (PrfHash::Sha384, "sha384")] {
        let e = export_no_context(hash, &i.ms, &i.cr, &i.sr, label, 32);
        assert_eq!(hex(&e), str_of(v, k), "{k}");
    }
}
