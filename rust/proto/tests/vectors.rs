//! The shared CSTP frame vectors (`tests/vectors/cstp_frames.json`, protocol.md §10.1
//! and §4.1): the same JSON file is checked from Python by `tests/unit/test_vectors.py`.

mod common;

use common::{field, list, str_of, u8_of, unhex, usize_of};
use serde_json::Value;
use tunnelswarm_proto::cstp::{encode, Deframer, Disconnect, Frame, FrameError, PacketType};

fn vectors() -> Value {
    common::vectors!("cstp_frames.json")
}

fn drain(d: &mut Deframer) -> Result<Vec<Frame>, (Vec<Frame>, FrameError)> {
    let mut out = Vec::new();
    loop {
        match d.next_frame() {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return Ok(out),
            Err(e) => return Err((out, e)),
        }
    }
}

#[test]
fn vector_file_is_not_empty() {
    let doc = vectors();
    assert!(list(&doc, "frames").len() >= 7);
    assert!(list(&doc, "negative").len() >= 4);
}

#[test]
fn encode_matches_every_frame_vector() {
    for v in list(&vectors(), "frames") {
        let name = str_of(v, "name");
        let ptype = PacketType::from_code(u8_of(v, "type"));
        let payload = unhex(str_of(v, "payload"));
        let frame = unhex(str_of(v, "frame"));
        assert_eq!(encode(ptype, &payload).expect("encodes"), frame, "{name}");
    }
}

#[test]
fn known_type_codes_have_their_names() {
    for v in list(&vectors(), "frames") {
        let ptype = PacketType::from_code(u8_of(v, "type"));
        assert!(
            !matches!(ptype, PacketType::Other(_)),
            "{}: {ptype:?}",
            str_of(v, "name")
        );
    }
}

#[test]
fn deframer_decodes_every_frame_vector_whole_and_byte_by_byte() {
    for v in list(&vectors(), "frames") {
        let name = str_of(v, "name");
        let want = Frame {
            ptype: PacketType::from_code(u8_of(v, "type")),
            payload: unhex(str_of(v, "payload")),
        };
        let frame = unhex(str_of(v, "frame"));

        let mut d = Deframer::default();
        d.push(&frame).expect("push");
        assert_eq!(
            drain(&mut d).expect("no error"),
            vec![want.clone()],
            "{name}"
        );
        assert_eq!(d.finish(), Ok(()), "{name}");

        let mut d = Deframer::default();
        let mut got = Vec::new();
        for b in &frame {
            d.push(std::slice::from_ref(b)).expect("push");
            got.extend(drain(&mut d).expect("no error"));
        }
        assert_eq!(got, vec![want], "{name} byte by byte");
        assert_eq!(d.finish(), Ok(()), "{name} byte by byte");
    }
}

#[test]
fn all_frame_vectors_concatenated_deframe_in_order() {
    let doc = vectors();
    let frames = list(&doc, "frames");
    let stream: Vec<u8> = frames
        .iter()
        .flat_map(|v| unhex(str_of(v, "frame")))
        .collect();
    let mut d = Deframer::default();
    d.push(&stream).expect("push");
    let got = drain(&mut d).expect("no error");
    let codes: Vec<u8> = got.iter().map(|f| f.ptype.code()).collect();
    let want: Vec<u8> = frames.iter().map(|v| u8_of(v, "type")).collect();
    assert_eq!(codes, want);
    assert_eq!(d.finish(), Ok(()));
}

#[test]
fn disconnect_payloads_parse_and_rebuild() {
    let mut seen = 0;
    for v in list(&vectors(), "frames") {
        let Some(want) = v.get("disconnect") else {
            continue;
        };
        seen += 1;
        let name = str_of(v, "name");
        let payload = unhex(str_of(v, "payload"));
        let reason = field(want, "reason")
            .as_u64()
            .map(|r| u8::try_from(r).expect("reason byte"));
        let text = str_of(want, "text");
        let parsed = Disconnect::parse(&payload);
        assert_eq!(
            parsed,
            Disconnect {
                reason,
                text: text.to_string()
            },
            "{name}"
        );
        assert_eq!(parsed.to_payload(), payload, "{name}");
    }
    assert!(seen >= 2, "the vectors include DISCONNECT payloads");
}

fn expected_error(v: &Value) -> FrameError {
    let e = field(v, "error");
    match str_of(e, "kind") {
        "bad_magic" => FrameError::BadMagic(unhex(str_of(e, "seen"))),
        "bad_byte7" => FrameError::BadByte7(u8_of(e, "byte")),
        "oversized" => FrameError::Oversized {
            len: usize_of(e, "len"),
            max: usize_of(e, "max"),
        },
        "eof_mid_frame" => FrameError::EofMidFrame {
            have: usize_of(e, "have"),
            need: usize_of(e, "need"),
        },
        other => panic!("unknown error kind {other:?}"),
    }
}

#[test]
fn negative_vectors_fail_with_the_expected_error() {
    for v in list(&vectors(), "negative") {
        let name = str_of(v, "name");
        let want = expected_error(v);
        let mut d = Deframer::new(usize_of(v, "max_payload"));
        d.push(&unhex(str_of(v, "stream")))
            .expect("push never fails on a fresh deframer");
        let got = match str_of(v, "at") {
            "frames" => {
                let (frames, err) = drain(&mut d).expect_err(name);
                assert_eq!(frames.len(), usize_of(v, "frames_before"), "{name}");
                err
            }
            "finish" => {
                let frames = drain(&mut d).unwrap_or_else(|(_, e)| panic!("{name}: {e}"));
                assert_eq!(frames.len(), usize_of(v, "frames_before"), "{name}");
                d.finish().expect_err(name)
            }
            other => panic!("{name}: unknown 'at' {other:?}"),
        };
        assert_eq!(got, want, "{name}");
        assert_eq!(got.to_string(), str_of(v, "message"), "{name}");
        // the error is sticky: a CSTP stream cannot be resynchronised
        assert_eq!(d.push(b"STF\x01"), Err(want.clone()), "{name}");
        assert_eq!(d.next_frame(), Err(want.clone()), "{name}");
        assert_eq!(d.finish(), Err(want), "{name}");
    }
}

mod record_mtu {
    use serde_json::Value;
    use tunnelswarm_proto::ip::mtu::{
        asa_tls_threshold, dtls_tunnel_mtu, ocserv_data_mtu, openconnect_request_mtu, RecordCipher,
    };

    fn load() -> Value {
        crate::common::vectors!("record_mtu.json")
    }

    fn num(v: &Value, k: &str) -> u32 {
        u32::try_from(crate::common::usize_of(v, k)).expect("fits u32")
    }

    fn cipher(v: &Value) -> RecordCipher {
        RecordCipher::from_name(v["cipher"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn section_10_7_from_rust() {
        let d = load();
        let mut n = 0;
        for v in d["openconnect_request"].as_array().unwrap() {
            assert_eq!(
                openconnect_request_mtu(num(v, "base"), v["ipv6"].as_bool().unwrap()),
                num(v, "mtu"),
                "{}",
                v["name"]
            );
            n += 1;
        }
        for v in d["dtls_tunnel_exact"].as_array().unwrap() {
            assert_eq!(
                dtls_tunnel_mtu(num(v, "link"), v["ipv6"].as_bool().unwrap(), cipher(v)),
                num(v, "mtu"),
                "{}",
                v["name"]
            );
            n += 1;
        }
        for v in d["ocserv_data_mtu"].as_array().unwrap() {
            assert_eq!(
                ocserv_data_mtu(num(v, "link"), v["ipv6"].as_bool().unwrap(), cipher(v)),
                num(v, "mtu"),
                "{}",
                v["name"]
            );
            n += 1;
        }
        for v in d["asa_tls_threshold"].as_array().unwrap() {
            assert_eq!(
                asa_tls_threshold(num(v, "mss"), cipher(v)),
                num(v, "mtu"),
                "{}",
                v["name"]
            );
            n += 1;
        }
        assert_eq!(n, 20);
    }
}
