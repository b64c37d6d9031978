//! Streaming CSTP deframer (protocol.md §4.1).
//!
//! Theory of operation: TLS hands us plaintext in arbitrary pieces. `push` appends a
//! piece; `next_frame` returns complete frames one by one. The header is checked as
//! soon as its bytes arrive: the magic byte by byte (so garbage is refused after one
//! byte, not after eight), then byte 7, then the length against the receive limit.
//! The first error is sticky: every later call returns it again, because a CSTP stream
//! cannot be resynchronised (there is no frame delimiter). `finish` is called at EOF
//! and reports a frame cut short. The result never depends on how the stream was split
//! (property-tested below and from Python).

use super::frame::{Frame, FrameError, PacketType, DEFAULT_MAX_RECV_PAYLOAD, HEADER_LEN, MAGIC};

/// Turns a byte stream into CSTP frames.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    max_payload: usize,
    error: Option<FrameError>,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECV_PAYLOAD)
    }
}

impl Deframer {
    /// A deframer refusing payloads over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Deframer {
            buf: Vec::new(),
            start: 0,
            max_payload,
            error: None,
        }
    }

    /// Append received bytes. Returns the sticky error if the stream is already broken.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The sticky error, if any.
    pub fn error(&self) -> Option<&FrameError> {
        self.error.as_ref()
    }

    fn fail(&mut self, e: FrameError) -> Result<Option<Frame>, FrameError> {
        self.error = Some(e.clone());
        Err(e)
    }

    /// The next complete frame, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let avail = &self.buf[self.start..];
        let magic_seen = avail.len().min(MAGIC.len());
        if avail[..magic_seen] != MAGIC[..magic_seen] {
            return self.fail(FrameError::BadMagic(avail[..magic_seen].to_vec()));
        }
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        if avail[7] != 0 {
            return self.fail(FrameError::BadByte7(avail[7]));
        }
        let len = usize::from(u16::from_be_bytes([avail[4], avail[5]]));
        if len > self.max_payload {
            return self.fail(FrameError::Oversized {
                len,
                max: self.max_payload,
            });
        }
        if avail.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let frame = Frame {
            ptype: PacketType::from_code(avail[6]),
            payload: avail[HEADER_LEN..HEADER_LEN + len].to_vec(),
        };
        self.start += HEADER_LEN + len;
        Ok(Some(frame))
    }

    /// Declare the end of the stream: an error if a frame was cut short.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let have = self.buffered();
        if have == 0 {
            return Ok(());
        }
        let avail = &self.buf[self.start..];
        let need = if have < HEADER_LEN {
            HEADER_LEN
        } else {
            HEADER_LEN + usize::from(u16::from_be_bytes([avail[4], avail[5]]))
        };
        let e = FrameError::EofMidFrame { have, need };
        self.error = Some(e.clone());
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode;
    use super::*;
    use proptest::prelude::*;

    fn drain(d: &mut Deframer) -> Result<Vec<Frame>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn bad_magic_detected_on_first_byte() {
        let mut d = Deframer::default();
        d.push(b"H").unwrap();
        assert_eq!(d.next_frame(), Err(FrameError::BadMagic(vec![b'H'])));
        // sticky
        assert!(d.push(b"TTP/1.1").is_err());
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn byte7_checked() {
        let mut d = Deframer::default();
        d.push(&[0x53, 0x54, 0x46, 0x01, 0, 0, 3, 1]).unwrap();
        assert_eq!(d.next_frame(), Err(FrameError::BadByte7(1)));
    }

    #[test]
    fn oversized_refused_before_payload_arrives() {
        let mut d = Deframer::new(100);
        d.push(&[0x53, 0x54, 0x46, 0x01, 0, 101, 0, 0]).unwrap();
        assert_eq!(
            d.next_frame(),
            Err(FrameError::Oversized { len: 101, max: 100 })
        );
    }

    #[test]
    fn eof_mid_header_and_mid_payload() {
        let mut d = Deframer::default();
        d.push(&[0x53, 0x54, 0x46]).unwrap();
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(
            d.finish(),
            Err(FrameError::EofMidFrame { have: 3, need: 8 })
        );

        let mut d = Deframer::default();
        d.push(&[0x53, 0x54, 0x46, 0x01, 0, 10, 0, 0, 1, 2])
            .unwrap();
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(
            d.finish(),
            Err(FrameError::EofMidFrame { have: 10, need: 18 })
        );
    }

    #[test]
    fn clean_eof_is_ok() {
        let mut d = Deframer::default();
        d.push(&encode(PacketType::Keepalive, &[]).unwrap())
            .unwrap();
        assert_eq!(drain(&mut d).unwrap().len(), 1);
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn unknown_type_is_returned_for_the_session_to_judge() {
        let mut d = Deframer::default();
        d.push(&[0x53, 0x54, 0x46, 0x01, 0, 0, 6, 0]).unwrap();
        assert_eq!(d.next_frame().unwrap().unwrap().ptype, PacketType::Other(6));
    }

    fn arb_frame() -> impl Strategy<Value = (u8, Vec<u8>)> {
        (
            prop_oneof![
                Just(0u8),
                Just(3),
                Just(4),
                Just(5),
                Just(7),
                Just(8),
                Just(9),
                any::<u8>()
            ],
            proptest::collection::vec(any::<u8>(), 0..300),
        )
    }

    proptest! {
        #[test]
        fn same_frames_however_split(
            frames in proptest::collection::vec(arb_frame(), 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let mut stream = Vec::new();
            for (t, p) in &frames {
                stream.extend(encode(PacketType::from_code(*t), p).unwrap());
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| if stream.is_empty() { 0 } else { c % stream.len() }).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for w in points.windows(2) {
                d.push(&stream[w[0]..w[1]]).unwrap();
                got.extend(drain(&mut d).unwrap());
            }
            prop_assert_eq!(d.finish(), Ok(()));
            let want: Vec<Frame> = frames
                .iter()
                .map(|(t, p)| Frame { ptype: PacketType::from_code(*t), payload: p.clone() })
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000), cut in any::<usize>()) {
            let mut d = Deframer::new(512);
            let c = if data.is_empty() { 0 } else { cut % data.len() };
            let _ = d.push(&data[..c]);
            let _ = drain(&mut d);
            let _ = d.push(&data[c..]);
            let _ = drain(&mut d);
            let _ = d.finish();
        }
    }
}
