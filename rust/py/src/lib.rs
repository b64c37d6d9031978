//! `tunnelswarm._core`: the thin PyO3 binding of the sans-IO core.
//!
//! One Python class per core object, methods 1:1 with the core's contract
//! (`handle_input(now, data)`, `poll_transmit()`, `poll_events()`,
//! `next_deadline()`, `handle_timeout(now)`). Every core error is converted to a
//! Python exception in exactly one place, [`to_py`], using the classes of
//! `tunnelswarm.errors`, so Python code sees one hierarchy. Stubs with docstrings:
//! `python/tunnelswarm/_core.pyi`.

use std::net::Ipv4Addr;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use tunnelswarm_proto::cstp::{self, CstpError, Event, FrameError, PacketType, Role};
use tunnelswarm_proto::dtls::cipher::{
    additional_data, new_protection, write_record, CbcProtection, RecordMeta, RecordProtection,
};
use tunnelswarm_proto::dtls::keys::{self, DirectionKeys, FinishedBy};
use tunnelswarm_proto::dtls::record::RecordIter;
use tunnelswarm_proto::dtls::suites::{suite_by_id, PrfHash, Suite};
use tunnelswarm_proto::dtls::{
    self, resolve_cipher_name, CipherHeader, DtlsClientConfig, DtlsError,
    DtlsEvent as CoreDtlsEvent, DtlsMode, DtlsVersion, FlightLayout, HelloStyle, PeerId,
    ScriptedRandom, ServerSessionParams,
};
use tunnelswarm_proto::ip::mtu::{self, RecordCipher};
use tunnelswarm_proto::tls::{ClientOptions, TlsError, TlsSession};
use tunnelswarm_proto::traffic::probe::{self, ProbeConfig, ProbeKind, ProbeVerdict};
use tunnelswarm_proto::x509;

mod packets;
mod stats;

mod pyerr {
    pyo3::import_exception!(tunnelswarm.errors, TlsError);
}
use pyerr::TlsError as PyTlsError;
pyo3::import_exception!(tunnelswarm.errors, CertificateError);
pyo3::import_exception!(tunnelswarm.errors, CstpFramingError);
pyo3::import_exception!(tunnelswarm.errors, ConnectionLost);
pyo3::import_exception!(tunnelswarm.errors, LocalProtocolError);
pyo3::import_exception!(tunnelswarm.errors, ConfigError);

/// The one conversion of core errors into Python exceptions.
fn to_py(e: CstpError) -> PyErr {
    let msg = e.to_string();
    match e {
        CstpError::Tls(TlsError::Certificate(_)) => CertificateError::new_err(msg),
        CstpError::Tls(TlsError::UnexpectedEof) => ConnectionLost::new_err(msg),
        CstpError::Tls(TlsError::Config(_)) => ConfigError::new_err(msg),
        CstpError::Tls(_) => PyTlsError::new_err(msg),
        CstpError::Frame(FrameError::PayloadTooLarge(_)) | CstpError::Misuse(_) => {
            LocalProtocolError::new_err(msg)
        }
        CstpError::Frame(_) | CstpError::UnknownPacket(_) => CstpFramingError::new_err(msg),
    }
}

fn tls_err(e: TlsError) -> PyErr {
    to_py(CstpError::Tls(e))
}

fn now_us(now: i64) -> PyResult<u64> {
    u64::try_from(now).map_err(|_| {
        LocalProtocolError::new_err(format!("now must be >= 0 microseconds, got {now}"))
    })
}

/// One event of a CSTP connection.
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct CstpEvent {
    kind: &'static str,
    payload: Py<PyBytes>,
    reason: Option<u8>,
    text: String,
}

#[pymethods]
impl CstpEvent {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "CstpEvent(kind={:?}, payload_len={}, reason={:?}, text={:?})",
            self.kind,
            self.payload.bind(py).as_bytes().len(),
            self.reason,
            self.text
        )
    }
}

fn event_to_py(py: Python<'_>, e: Event) -> CstpEvent {
    let (kind, payload, reason, text): (&'static str, Vec<u8>, Option<u8>, String) = match e {
        Event::Data(p) => ("data", p, None, String::new()),
        Event::DpdRequest(p) => ("dpd-request", p, None, String::new()),
        Event::DpdResponse(p) => ("dpd-response", p, None, String::new()),
        Event::Keepalive => ("keepalive", Vec::new(), None, String::new()),
        Event::Disconnect(d) => {
            let raw = d.to_payload();
            ("disconnect", raw, d.reason, d.text)
        }
        Event::Terminate => ("terminate", Vec::new(), None, String::new()),
        Event::PeerDead => ("peer-dead", Vec::new(), None, String::new()),
        Event::RekeyDue => ("rekey-due", Vec::new(), None, String::new()),
    };
    CstpEvent {
        kind,
        payload: PyBytes::new(py, &payload).unbind(),
        reason,
        text,
    }
}

/// TLS + HTTP + CSTP of one TCP connection (either role).
#[pyclass(module = "tunnelswarm._core")]
pub struct CstpConnection {
    inner: cstp::CstpConnection,
}

#[pymethods]
impl CstpConnection {
    #[staticmethod]
    #[pyo3(signature = (server_name, *, wall_time, ca_pem=None, pins=Vec::new(), insecure=false, keylog=false, tls12_only=false))]
    #[allow(clippy::too_many_arguments)]
    fn client(
        server_name: String,
        wall_time: u64,
        ca_pem: Option<Vec<u8>>,
        pins: Vec<String>,
        insecure: bool,
        keylog: bool,
        tls12_only: bool,
    ) -> PyResult<Self> {
        let tls = TlsSession::client(&ClientOptions {
            server_name,
            roots_pem: ca_pem,
            pins,
            insecure,
            wall_time_unix_s: wall_time,
            keylog,
            tls12_only,
        })
        .map_err(tls_err)?;
        Ok(CstpConnection {
            inner: cstp::CstpConnection::new(tls, Role::Client),
        })
    }

    #[staticmethod]
    #[pyo3(signature = (chain_pem, key_pem, *, wall_time, keylog=false))]
    fn server(chain_pem: &[u8], key_pem: &[u8], wall_time: u64, keylog: bool) -> PyResult<Self> {
        let tls = TlsSession::server(chain_pem, key_pem, wall_time, keylog).map_err(tls_err)?;
        Ok(CstpConnection {
            inner: cstp::CstpConnection::new(tls, Role::Server),
        })
    }

    fn handle_input(&mut self, now: i64, data: &[u8]) -> PyResult<()> {
        self.inner.handle_input(now_us(now)?, data).map_err(to_py)
    }

    fn handle_eof(&mut self, now: i64) -> PyResult<()> {
        self.inner.handle_eof(now_us(now)?).map_err(to_py)
    }

    fn write_http(&mut self, data: &[u8]) -> PyResult<()> {
        self.inner.write_http(data).map_err(to_py)
    }

    fn read_http<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.inner.read_http().map_err(to_py)?;
        Ok(PyBytes::new(py, &v))
    }

    #[pyo3(signature = (now, *, dpd, keepalive, rekey, leftover=None))]
    fn start_cstp(
        &mut self,
        now: i64,
        dpd: u32,
        keepalive: u32,
        rekey: u32,
        leftover: Option<&[u8]>,
    ) -> PyResult<()> {
        self.inner
            .start_cstp(
                now_us(now)?,
                dpd,
                keepalive,
                rekey,
                leftover.unwrap_or_default(),
            )
            .map_err(to_py)
    }

    fn send_data(&mut self, now: i64, packet: &[u8]) -> PyResult<()> {
        self.inner.send_data(now_us(now)?, packet).map_err(to_py)
    }

    fn send_frame(&mut self, now: i64, packet_type: u8, payload: &[u8]) -> PyResult<()> {
        self.inner
            .send_frame(now_us(now)?, PacketType::from_code(packet_type), payload)
            .map_err(to_py)
    }

    fn send_disconnect(&mut self, now: i64, reason: u8, text: &str) -> PyResult<()> {
        self.inner
            .send_disconnect(now_us(now)?, reason, text)
            .map_err(to_py)
    }

    fn close(&mut self) {
        self.inner.tls_mut().close();
    }

    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.poll_transmit().map(|v| PyBytes::new(py, &v))
    }

    fn poll_events(&mut self, py: Python<'_>) -> Vec<CstpEvent> {
        std::iter::from_fn(|| self.inner.poll_event())
            .map(|e| event_to_py(py, e))
            .collect()
    }

    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    fn handle_timeout(&mut self, now: i64) -> PyResult<()> {
        self.inner.handle_timeout(now_us(now)?).map_err(to_py)
    }

    #[getter]
    fn is_handshaking(&self) -> bool {
        self.inner.tls().is_handshaking()
    }

    #[getter]
    fn is_cstp(&self) -> bool {
        self.inner.is_cstp()
    }

    #[getter]
    fn peer_closed(&self) -> bool {
        self.inner.tls().peer_closed()
    }

    #[getter]
    fn protocol_version(&self) -> Option<String> {
        self.inner.tls().protocol_version()
    }

    #[getter]
    fn cipher_suite(&self) -> Option<String> {
        self.inner.tls().cipher_suite()
    }

    #[getter]
    fn peer_pin(&self) -> Option<String> {
        self.inner.tls().peer_pin()
    }

    #[pyo3(signature = (label, length, context=None))]
    fn export_keying_material<'py>(
        &self,
        py: Python<'py>,
        label: &[u8],
        length: usize,
        context: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self
            .inner
            .tls()
            .export_keying_material(label, context, length)
            .map_err(tls_err)?;
        Ok(PyBytes::new(py, &v))
    }

    fn refresh_traffic_keys(&mut self) -> PyResult<()> {
        self.inner.tls_mut().refresh_traffic_keys().map_err(tls_err)
    }

    fn take_keylog(&mut self) -> Vec<String> {
        self.inner.tls_mut().take_keylog()
    }

    fn stats(&self) -> std::collections::HashMap<&'static str, u64> {
        let s = self.inner.stats();
        [
            ("rx_frames", s.rx_frames),
            ("tx_frames", s.tx_frames),
            ("rx_data_frames", s.rx_data_frames),
            ("tx_data_frames", s.tx_data_frames),
            ("rx_data_bytes", s.rx_data_bytes),
            ("tx_data_bytes", s.tx_data_bytes),
            ("dpd_sent", s.dpd_sent),
            ("dpd_answered", s.dpd_answered),
            ("dpd_responses", s.dpd_responses),
            ("keepalives_sent", s.keepalives_sent),
            ("keepalives_received", s.keepalives_received),
        ]
        .into_iter()
        .collect()
    }
}

/// Streaming CSTP deframer (for tests, tools and the vectors).
#[pyclass(module = "tunnelswarm._core")]
pub struct Deframer {
    inner: cstp::Deframer,
}

#[pymethods]
impl Deframer {
    #[new]
    #[pyo3(signature = (max_payload=16384))]
    fn new(max_payload: usize) -> Self {
        Deframer {
            inner: cstp::Deframer::new(max_payload),
        }
    }

    fn push(&mut self, data: &[u8]) -> PyResult<()> {
        self.inner.push(data).map_err(|e| to_py(e.into()))
    }

    fn frames<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<(u8, Bound<'py, PyBytes>)>> {
        let mut out = Vec::new();
        while let Some(f) = self.inner.next_frame().map_err(|e| to_py(e.into()))? {
            out.push((f.ptype.code(), PyBytes::new(py, &f.payload)));
        }
        Ok(out)
    }

    fn finish(&mut self) -> PyResult<()> {
        self.inner.finish().map_err(|e| to_py(e.into()))
    }

    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}

/// Encode one CSTP frame.
#[pyfunction]
fn encode_frame<'py>(
    py: Python<'py>,
    packet_type: u8,
    payload: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let v =
        cstp::encode(PacketType::from_code(packet_type), payload).map_err(|e| to_py(e.into()))?;
    Ok(PyBytes::new(py, &v))
}

/// `pin-sha256:` of a DER certificate, or None if it does not parse.
#[pyfunction]
fn pin_sha256(cert_der: &[u8]) -> Option<String> {
    x509::pin_sha256(cert_der)
}

/// Result of classifying one inbound packet for a prober.
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct ProbeResult {
    kind: &'static str,
    seq: Option<u32>,
    rtt_us: Option<u64>,
    ttl: Option<u8>,
    size: Option<usize>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    mtu: Option<u16>,
    source: Option<String>,
    reason: Option<String>,
}

#[pymethods]
impl ProbeResult {
    fn __repr__(&self) -> String {
        format!(
            "ProbeResult(kind={:?}, seq={:?}, rtt_us={:?})",
            self.kind, self.seq, self.rtt_us
        )
    }
}

fn verdict_to_py(v: ProbeVerdict) -> ProbeResult {
    let mut r = ProbeResult {
        kind: "not-ours",
        seq: None,
        rtt_us: None,
        ttl: None,
        size: None,
        icmp_type: None,
        icmp_code: None,
        mtu: None,
        source: None,
        reason: None,
    };
    match v {
        ProbeVerdict::Reply {
            seq,
            rtt_us,
            ttl,
            bytes,
        } => {
            r.kind = "reply";
            r.seq = Some(seq);
            r.rtt_us = Some(rtt_us);
            r.ttl = Some(ttl);
            r.size = Some(bytes);
        }
        ProbeVerdict::Duplicate { seq } => {
            r.kind = "duplicate";
            r.seq = Some(seq);
        }
        ProbeVerdict::Late { seq } => {
            r.kind = "late";
            r.seq = Some(seq);
        }
        ProbeVerdict::IcmpError {
            icmp_type,
            code,
            seq,
            mtu,
            from,
        } => {
            r.kind = "icmp-error";
            r.seq = seq;
            r.icmp_type = Some(icmp_type);
            r.icmp_code = Some(code);
            r.mtu = mtu;
            r.source = Some(from.to_string());
        }
        ProbeVerdict::NotOurs => {}
        ProbeVerdict::Malformed(reason) => {
            r.kind = "malformed";
            r.reason = Some(reason);
        }
    }
    r
}

/// Probe traffic through the tunnel: ICMP echo or UDP probes with sequence numbers,
/// RTT and loss accounting.
#[pyclass(module = "tunnelswarm._core")]
pub struct Prober {
    inner: probe::Prober,
}

fn parse_v4(s: &str, what: &str) -> PyResult<Ipv4Addr> {
    s.parse()
        .map_err(|_| ConfigError::new_err(format!("{what} {s:?} is not an IPv4 address")))
}

#[pymethods]
impl Prober {
    #[new]
    #[pyo3(signature = (src, dst, *, kind="icmp", ident=0x7453, src_port=40000, dst_port=7, payload_len=56, ttl=64, dont_fragment=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        src: &str,
        dst: &str,
        kind: &str,
        ident: u16,
        src_port: u16,
        dst_port: u16,
        payload_len: usize,
        ttl: u8,
        dont_fragment: bool,
    ) -> PyResult<Self> {
        let kind = match kind {
            "icmp" => ProbeKind::IcmpEcho { ident },
            "udp" => ProbeKind::Udp { src_port, dst_port },
            other => {
                return Err(ConfigError::new_err(format!(
                    "probe kind {other:?} is not 'icmp' or 'udp'"
                )))
            }
        };
        let cfg = ProbeConfig {
            src: parse_v4(src, "probe source")?,
            dst: parse_v4(dst, "probe target")?,
            kind,
            payload_len,
            ttl,
            dont_fragment,
        };
        let inner = probe::Prober::new(cfg).map_err(|e| ConfigError::new_err(e.to_string()))?;
        Ok(Prober { inner })
    }

    /// Build the next probe: (seq, IPv4 packet).
    fn build<'py>(&mut self, py: Python<'py>, now: i64) -> PyResult<(u32, Bound<'py, PyBytes>)> {
        let (seq, pkt) = self.inner.build(now_us(now)?);
        Ok((seq, PyBytes::new(py, &pkt)))
    }

    fn handle_packet(&mut self, now: i64, packet: &[u8]) -> PyResult<ProbeResult> {
        Ok(verdict_to_py(
            self.inner.handle_packet(now_us(now)?, packet),
        ))
    }

    fn expire(&mut self, now: i64, timeout_us: u64) -> PyResult<Vec<u32>> {
        Ok(self.inner.expire(now_us(now)?, timeout_us))
    }

    fn next_expiry(&self, timeout_us: u64) -> Option<u64> {
        self.inner.next_expiry(timeout_us)
    }

    fn stats(&self, py: Python<'_>) -> PyResult<PyObject> {
        let s = self.inner.stats();
        let d = pyo3::types::PyDict::new(py);
        d.set_item("sent", s.sent)?;
        d.set_item("received", s.received)?;
        d.set_item("duplicates", s.duplicates)?;
        d.set_item("late", s.late)?;
        d.set_item("lost", s.lost)?;
        d.set_item("outstanding", s.outstanding)?;
        d.set_item("errors", s.errors)?;
        d.set_item("malformed", s.malformed)?;
        d.set_item("rtt_min_us", s.rtt_min_us)?;
        d.set_item("rtt_max_us", s.rtt_max_us)?;
        d.set_item("rtt_avg_us", s.rtt_avg_us)?;
        d.set_item("rtt_mdev_us", s.rtt_mdev_us)?;
        d.set_item("loss_ratio", s.loss_ratio())?;
        Ok(d.into_any().unbind())
    }
}

/// The ICMP echo reply a host would send for an IPv4 echo request (None if not one).
#[pyfunction]
fn icmp_echo_reply<'py>(py: Python<'py>, request: &[u8]) -> Option<Bound<'py, PyBytes>> {
    probe::build_icmp_echo_reply(request).map(|v| PyBytes::new(py, &v))
}

/// The UDP echo reply for an IPv4 UDP datagram (None if not one).
#[pyfunction]
fn udp_echo_reply<'py>(py: Python<'py>, request: &[u8]) -> Option<Bound<'py, PyBytes>> {
    probe::build_udp_echo_reply(request).map(|v| PyBytes::new(py, &v))
}

/// DTLS command errors: configuration problems are the caller's, the rest misuse.
fn dtls_err(e: DtlsError) -> PyErr {
    match e {
        DtlsError::UnsupportedCipher(_) | DtlsError::InvalidConfig(_) => {
            ConfigError::new_err(e.to_string())
        }
        _ => LocalProtocolError::new_err(e.to_string()),
    }
}

/// One DTLS event (protocol.md §5).
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct DtlsEvent {
    kind: &'static str,
    payload: Py<PyBytes>,
    text: String,
    version: Option<&'static str>,
    suite: Option<&'static str>,
}

#[pymethods]
impl DtlsEvent {
    fn __repr__(&self) -> String {
        format!("DtlsEvent(kind={:?}, text={:?})", self.kind, self.text)
    }
}

fn dtls_event_to_py(py: Python<'_>, e: CoreDtlsEvent) -> DtlsEvent {
    let (kind, payload, text, version, suite) = match e {
        CoreDtlsEvent::Connected {
            version,
            suite,
            cipher_name,
        } => (
            "connected",
            Vec::new(),
            cipher_name,
            Some(version),
            Some(suite),
        ),
        CoreDtlsEvent::HandshakeFailed { reason } => {
            ("handshake-failed", Vec::new(), reason, None, None)
        }
        CoreDtlsEvent::Data(p) => ("data", p, String::new(), None, None),
        CoreDtlsEvent::DpdRequest(p) => ("dpd-request", p, String::new(), None, None),
        CoreDtlsEvent::DpdResponse(p) => ("dpd-response", p, String::new(), None, None),
        CoreDtlsEvent::Keepalive => ("keepalive", Vec::new(), String::new(), None, None),
        CoreDtlsEvent::PeerDead => ("peer-dead", Vec::new(), String::new(), None, None),
        CoreDtlsEvent::Closed { reason } => ("closed", Vec::new(), reason, None, None),
    };
    DtlsEvent {
        kind,
        payload: PyBytes::new(py, &payload).unbind(),
        text,
        version,
        suite,
    }
}

fn dtls_mode(mode: &str, cipher: &str) -> PyResult<DtlsMode> {
    match mode {
        "legacy" => Ok(DtlsMode::Legacy {
            cipher: cipher.to_owned(),
        }),
        "dtls12" => Ok(DtlsMode::Dtls12 {
            cipher: cipher.to_owned(),
        }),
        "psk" => Ok(DtlsMode::Psk),
        other => Err(ConfigError::new_err(format!(
            "DTLS mode {other:?} is not legacy, dtls12 or psk"
        ))),
    }
}

fn fixed<const N: usize>(b: &[u8], what: &str) -> PyResult<[u8; N]> {
    b.try_into()
        .map_err(|_| ConfigError::new_err(format!("{what} must be {N} bytes, got {}", b.len())))
}

fn stats_dict<'py>(
    py: Python<'py>,
    items: &[(&str, u64)],
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    for (k, v) in items {
        d.set_item(k, v)?;
    }
    Ok(d)
}

fn dtls_stats<'py>(
    py: Python<'py>,
    s: &dtls::DtlsStats,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    stats_dict(
        py,
        &[
            ("datagrams_in", s.datagrams_in),
            ("datagrams_out", s.datagrams_out),
            ("records_in", s.records_in),
            ("records_out", s.records_out),
            ("dropped_malformed", s.dropped_malformed),
            ("dropped_bad_auth", s.dropped_bad_auth),
            ("dropped_replayed", s.dropped_replayed),
            ("dropped_wrong_epoch", s.dropped_wrong_epoch),
            ("dropped_early_overflow", s.dropped_early_overflow),
            ("dropped_unexpected", s.dropped_unexpected),
            ("dropped_unknown_type", s.dropped_unknown_type),
            ("dropped_closed", s.dropped_closed),
            ("buffered_early", s.buffered_early),
            ("retransmissions", s.retransmissions),
            ("data_in", s.data_in),
            ("data_out", s.data_out),
            ("dpd_requests_in", s.dpd_requests_in),
            ("dpd_requests_out", s.dpd_requests_out),
            ("dpd_responses_in", s.dpd_responses_in),
            ("dpd_responses_out", s.dpd_responses_out),
            ("keepalives_in", s.keepalives_in),
            ("keepalives_out", s.keepalives_out),
        ],
    )
}

/// One DTLS session, client role (the server role lives in `DtlsEndpoint`).
#[pyclass(module = "tunnelswarm._core")]
pub struct DtlsConnection {
    inner: dtls::DtlsConnection,
}

#[pymethods]
impl DtlsConnection {
    #[staticmethod]
    #[pyo3(signature = (now, *, mode, cipher, session_id, master_secret, seed, psk=None, handshake_timeout=12_000_000, dpd=0, keepalive=0, echo_dpd_payload=false, keylog=false, hello_style="minimal"))]
    #[allow(clippy::too_many_arguments)]
    fn client(
        now: i64,
        mode: &str,
        cipher: &str,
        session_id: &[u8],
        master_secret: &[u8],
        seed: &[u8],
        psk: Option<&[u8]>,
        handshake_timeout: u64,
        dpd: u32,
        keepalive: u32,
        echo_dpd_payload: bool,
        keylog: bool,
        hello_style: &str,
    ) -> PyResult<Self> {
        let hello_style = parse_hello_style(hello_style)?;
        let config = DtlsClientConfig {
            mode: dtls_mode(mode, cipher)?,
            master_secret: fixed::<48>(master_secret, "DTLS master secret")?,
            session_id: session_id.to_vec(),
            psk: psk.map(|p| fixed::<32>(p, "PSK")).transpose()?,
            seed: fixed::<32>(seed, "DTLS seed")?,
            handshake_timeout_us: handshake_timeout,
            dpd_s: dpd,
            keepalive_s: keepalive,
            echo_dpd_payload,
            keylog,
            hello_style,
        };
        let inner = dtls::DtlsConnection::client(now_us(now)?, config).map_err(dtls_err)?;
        Ok(DtlsConnection { inner })
    }

    fn handle_datagram(&mut self, now: i64, data: &[u8]) -> PyResult<()> {
        self.inner.handle_datagram(now_us(now)?, data);
        Ok(())
    }

    fn poll_transmit<'py>(
        &mut self,
        py: Python<'py>,
        now: i64,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(self
            .inner
            .poll_transmit(now_us(now)?)
            .map(|v| PyBytes::new(py, &v)))
    }

    fn poll_events(&mut self, py: Python<'_>) -> Vec<DtlsEvent> {
        std::iter::from_fn(|| self.inner.poll_event())
            .map(|e| dtls_event_to_py(py, e))
            .collect()
    }

    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    fn handle_timeout(&mut self, now: i64) -> PyResult<()> {
        self.inner.handle_timeout(now_us(now)?);
        Ok(())
    }

    fn send_data(&mut self, now: i64, packet: &[u8]) -> PyResult<()> {
        self.inner.send_data(now_us(now)?, packet).map_err(dtls_err)
    }

    fn send_control(&mut self, now: i64, packet_type: u8, payload: &[u8]) -> PyResult<()> {
        self.inner
            .send_control(now_us(now)?, packet_type, payload)
            .map_err(dtls_err)
    }

    fn close(&mut self) {
        self.inner.close();
    }

    #[getter]
    fn is_established(&self) -> bool {
        self.inner.is_established()
    }

    #[getter]
    fn version(&self) -> &'static str {
        self.inner.version().label()
    }

    #[getter]
    fn suite(&self) -> Option<&'static str> {
        self.inner.negotiated_suite().map(|s| s.iana)
    }

    #[pyo3(signature = (link_mtu, *, ipv6=false))]
    fn data_mtu(&self, link_mtu: u32, ipv6: bool) -> u32 {
        self.inner.data_mtu(link_mtu, ipv6)
    }

    fn take_keylog(&mut self) -> Vec<String> {
        self.inner.take_keylog()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        dtls_stats(py, self.inner.stats())
    }
}

/// The server side of DTLS on one shared UDP socket: routes ClientHellos by session id.
#[pyclass(module = "tunnelswarm._core")]
pub struct DtlsEndpoint {
    inner: dtls::DtlsEndpoint,
}

#[pymethods]
impl DtlsEndpoint {
    #[new]
    fn new(seed: &[u8]) -> PyResult<Self> {
        Ok(DtlsEndpoint {
            inner: dtls::DtlsEndpoint::new(fixed::<32>(seed, "endpoint seed")?),
        })
    }

    /// Register the DTLS session CONNECT created, keyed by its session id (or app id).
    #[pyo3(signature = (session_key, *, mode, cipher, master_secret=None, psk=None, dpd=0, keepalive=0, hello_verify=false, flight_layout="one-datagram", echo_dpd_payload=true, keylog=false))]
    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        session_key: &[u8],
        mode: &str,
        cipher: &str,
        master_secret: Option<&[u8]>,
        psk: Option<&[u8]>,
        dpd: u32,
        keepalive: u32,
        hello_verify: bool,
        flight_layout: &str,
        echo_dpd_payload: bool,
        keylog: bool,
    ) -> PyResult<()> {
        let mode = dtls_mode(mode, cipher)?;
        let mut params = match (&mode, psk, master_secret) {
            (DtlsMode::Psk, Some(p), _) => ServerSessionParams::psk(fixed::<32>(p, "PSK")?),
            (DtlsMode::Psk, None, _) => return Err(ConfigError::new_err("PSK mode needs psk")),
            (_, _, Some(m)) => {
                ServerSessionParams::resumption(mode.clone(), fixed::<48>(m, "DTLS master secret")?)
            }
            (_, _, None) => {
                return Err(ConfigError::new_err("resumption mode needs master_secret"))
            }
        };
        params.dpd_s = dpd;
        params.keepalive_s = keepalive;
        params.hello_verify = hello_verify;
        params.echo_dpd_payload = echo_dpd_payload;
        params.keylog = keylog;
        params.flight_layout = match flight_layout {
            "one-datagram" => FlightLayout::OneDatagram,
            "separate" => FlightLayout::Separate,
            "first-alone" => FlightLayout::FirstAlone,
            other => {
                return Err(ConfigError::new_err(format!(
                    "unknown flight layout {other:?}"
                )))
            }
        };
        self.inner
            .register(session_key.to_vec(), params)
            .map_err(dtls_err)
    }

    fn unregister(&mut self, session_key: &[u8]) {
        self.inner.unregister(session_key);
    }

    /// A datagram from `peer`; the drop reason if (some of) it was junk, else None.
    fn handle_datagram(
        &mut self,
        now: i64,
        peer: u64,
        data: &[u8],
    ) -> PyResult<Option<&'static str>> {
        Ok(self
            .inner
            .handle_datagram(now_us(now)?, PeerId(peer), data)
            .map(dtls::DatagramDrop::name))
    }

    fn poll_transmit<'py>(
        &mut self,
        py: Python<'py>,
        now: i64,
    ) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
        Ok(self
            .inner
            .poll_transmit(now_us(now)?)
            .map(|(p, v)| (p.0, PyBytes::new(py, &v))))
    }

    fn poll_events<'py>(&mut self, py: Python<'py>) -> Vec<(Bound<'py, PyBytes>, DtlsEvent)> {
        std::iter::from_fn(|| self.inner.poll_event())
            .map(|(k, e)| (PyBytes::new(py, &k), dtls_event_to_py(py, e)))
            .collect()
    }

    fn send_data(&mut self, now: i64, session_key: &[u8], packet: &[u8]) -> PyResult<()> {
        self.inner
            .send_data(now_us(now)?, session_key, packet)
            .map_err(dtls_err)
    }

    fn send_control(
        &mut self,
        now: i64,
        session_key: &[u8],
        packet_type: u8,
        payload: &[u8],
    ) -> PyResult<()> {
        self.inner
            .send_control(now_us(now)?, session_key, packet_type, payload)
            .map_err(dtls_err)
    }

    fn close(&mut self, session_key: &[u8]) {
        self.inner.close(session_key);
    }

    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    fn handle_timeout(&mut self, now: i64) -> PyResult<()> {
        self.inner.handle_timeout(now_us(now)?);
        Ok(())
    }

    fn is_established(&self, session_key: &[u8]) -> bool {
        self.inner
            .connection(session_key)
            .is_some_and(|c| c.is_established())
    }

    fn connection_stats<'py>(
        &self,
        py: Python<'py>,
        session_key: &[u8],
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        self.inner
            .connection(session_key)
            .map(|c| dtls_stats(py, c.stats()))
            .transpose()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let s = self.inner.stats();
        stats_dict(
            py,
            &[
                ("datagrams_in", s.datagrams_in),
                ("datagrams_out", s.datagrams_out),
                ("dropped_unknown_peer", s.dropped_unknown_peer),
                ("dropped_unknown_session", s.dropped_unknown_session),
                ("dropped_zero_random", s.dropped_zero_random),
                ("dropped_malformed", s.dropped_malformed),
                ("dropped_bad_auth", s.dropped_bad_auth),
                ("connections_created", s.connections_created),
                ("connections_replaced", s.connections_replaced),
            ],
        )
    }

    #[getter]
    fn session_count(&self) -> usize {
        self.inner.session_count()
    }
}

fn record_cipher(name: &str) -> PyResult<RecordCipher> {
    RecordCipher::from_name(name)
        .ok_or_else(|| ConfigError::new_err(format!("unknown record cipher {name:?}")))
}

/// openconnect's requested X-CSTP-MTU for a base MTU (protocol.md §6.1).
#[pyfunction]
#[pyo3(signature = (base, *, ipv6=false))]
fn openconnect_request_mtu(base: u32, ipv6: bool) -> u32 {
    mtu::openconnect_request_mtu(base, ipv6)
}

/// Tunnel MTU over DTLS for a link MTU, exact model (OpenSSL; ASA X-DTLS-MTU).
#[pyfunction]
#[pyo3(signature = (link, cipher, *, ipv6=false))]
fn dtls_tunnel_mtu(link: u32, cipher: &str, ipv6: bool) -> PyResult<u32> {
    Ok(mtu::dtls_tunnel_mtu(link, ipv6, record_cipher(cipher)?))
}

/// ocserv's DATA_MTU for a link MTU (GnuTLS's overhead estimate).
#[pyfunction]
#[pyo3(signature = (link, cipher, *, ipv6=false))]
fn ocserv_data_mtu(link: u32, cipher: &str, ipv6: bool) -> PyResult<u32> {
    Ok(mtu::ocserv_data_mtu(link, ipv6, record_cipher(cipher)?))
}

/// The ASA's TLS packet threshold for a TCP MSS (UNCONFIRMED model, protocol.md §6.3).
#[pyfunction]
fn asa_tls_threshold(mss: u32, cipher: &str) -> PyResult<u32> {
    Ok(mtu::asa_tls_threshold(mss, record_cipher(cipher)?))
}

// ------------------------------------------------------------------ DTLS known answers
//
// The pieces of the DTLS core that `tests/vectors/dtls.json` (protocol.md §10.4–§10.6)
// pins, exposed so `tests/unit/test_dtls_vectors.py` checks the same bytes as
// `rust/proto/tests/dtls_vectors.rs`. Not for the data path (use `DtlsConnection`).

pyo3::import_exception!(tunnelswarm.errors, RemoteProtocolError);

fn prf_hash(name: &str) -> PyResult<PrfHash> {
    match name {
        "tls10" => Ok(PrfHash::Tls10),
        "sha256" => Ok(PrfHash::Sha256),
        "sha384" => Ok(PrfHash::Sha384),
        other => Err(ConfigError::new_err(format!(
            "DTLS PRF {other:?} is not tls10, sha256 or sha384"
        ))),
    }
}

fn prf_name(h: PrfHash) -> &'static str {
    match h {
        PrfHash::Tls10 => "tls10",
        PrfHash::Sha256 => "sha256",
        PrfHash::Sha384 => "sha384",
    }
}

fn dtls_version(label: &str) -> PyResult<DtlsVersion> {
    [DtlsVersion::Dtls09, DtlsVersion::Dtls12]
        .into_iter()
        .find(|v| v.label() == label)
        .ok_or_else(|| {
            ConfigError::new_err(format!("DTLS version {label:?} is not DTLS0.9 or DTLS1.2"))
        })
}

fn suite(id: u16) -> PyResult<&'static Suite> {
    suite_by_id(id).ok_or_else(|| ConfigError::new_err(format!("unknown DTLS suite {id:04x}")))
}

fn direction_keys(mac_key: &[u8], key: &[u8], iv: &[u8]) -> DirectionKeys {
    DirectionKeys {
        mac_key: mac_key.to_vec(),
        key: key.to_vec(),
        iv: iv.to_vec(),
    }
}

fn protection(s: &Suite, keys: &DirectionKeys) -> PyResult<Box<dyn RecordProtection>> {
    new_protection(s, keys).ok_or_else(|| {
        ConfigError::new_err(format!("wrong key lengths for DTLS suite {:04x}", s.id))
    })
}

fn parse_hello_style(name: &str) -> PyResult<HelloStyle> {
    match name {
        "minimal" => Ok(HelloStyle::Minimal),
        "openssl" => Ok(HelloStyle::OpenSsl),
        "gnutls" => Ok(HelloStyle::GnuTls),
        "bare" => Ok(HelloStyle::Bare),
        other => Err(ConfigError::new_err(format!(
            "unknown DTLS hello style {other:?}"
        ))),
    }
}

/// `(suite id, version label, PRF name)` a CONNECT cipher header selects (§3.2, §5.1).
#[pyfunction]
fn dtls_resolve_cipher(header: &str, name: &str) -> PyResult<(u16, &'static str, &'static str)> {
    let h = [
        CipherHeader::DtlsCipherSuite,
        CipherHeader::Dtls12CipherSuite,
    ]
    .into_iter()
    .find(|h| h.header_name().eq_ignore_ascii_case(header))
    .ok_or_else(|| ConfigError::new_err(format!("unknown DTLS cipher header {header:?}")))?;
    let sel = resolve_cipher_name(h, name).map_err(|e| ConfigError::new_err(e.to_string()))?;
    Ok((sel.suite.id, sel.version.label(), prf_name(sel.prf)))
}

/// The TLS 1.0 (`tls10`) or TLS 1.2 (`sha256`/`sha384`) PRF.
#[pyfunction]
fn dtls_prf<'py>(
    py: Python<'py>,
    prf: &str,
    secret: &[u8],
    label: &[u8],
    seed: &[u8],
    length: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let out = keys::prf(prf_hash(prf)?, secret, label, seed, length);
    Ok(PyBytes::new(py, &out))
}

/// `PRF(master, "key expansion", server_random ‖ client_random)[..length]`.
#[pyfunction]
fn dtls_key_block<'py>(
    py: Python<'py>,
    prf: &str,
    master_secret: &[u8],
    client_random: &[u8],
    server_random: &[u8],
    length: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let out = keys::key_block(
        prf_hash(prf)?,
        master_secret,
        &fixed::<32>(client_random, "client random")?,
        &fixed::<32>(server_random, "server random")?,
        length,
    );
    Ok(PyBytes::new(py, &out))
}

/// The sliced key block of a suite: `client_mac_key`, `server_mac_key`, `client_key`,
/// `server_key`, `client_iv`, `server_iv`.
#[pyfunction]
fn dtls_session_keys<'py>(
    py: Python<'py>,
    suite_id: u16,
    version: &str,
    master_secret: &[u8],
    client_random: &[u8],
    server_random: &[u8],
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let k = keys::derive_session_keys(
        suite(suite_id)?,
        dtls_version(version)?,
        master_secret,
        &fixed::<32>(client_random, "client random")?,
        &fixed::<32>(server_random, "server random")?,
    )
    .ok_or_else(|| ConfigError::new_err("key block too short"))?;
    let d = pyo3::types::PyDict::new(py);
    for (name, v) in [
        ("client_mac_key", &k.client.mac_key),
        ("server_mac_key", &k.server.mac_key),
        ("client_key", &k.client.key),
        ("server_key", &k.server.key),
        ("client_iv", &k.client.iv),
        ("server_iv", &k.server.iv),
    ] {
        d.set_item(name, PyBytes::new(py, v))?;
    }
    Ok(d)
}

/// Finished `verify_data` of `sender` (`client`/`server`) over a handshake transcript.
#[pyfunction]
fn dtls_verify_data<'py>(
    py: Python<'py>,
    prf: &str,
    master_secret: &[u8],
    sender: &str,
    transcript: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let by = match sender {
        "client" => FinishedBy::Client,
        "server" => FinishedBy::Server,
        other => {
            return Err(ConfigError::new_err(format!(
                "Finished sender {other:?} is not client or server"
            )))
        }
    };
    let vd = keys::verify_data(prf_hash(prf)?, master_secret, by, transcript);
    Ok(PyBytes::new(py, &vd))
}

/// The 13 bytes a record binds: `epoch ‖ seq ‖ type ‖ version ‖ length`.
#[pyfunction]
fn dtls_additional_data<'py>(
    py: Python<'py>,
    content_type: u8,
    version: &str,
    epoch: u16,
    seq: u64,
    length: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let meta = RecordMeta {
        content_type,
        version: dtls_version(version)?.wire(),
        epoch,
        seq,
    };
    Ok(PyBytes::new(py, &additional_data(&meta, length)))
}

/// The HMAC a CBC suite puts into a record.
#[pyfunction]
#[pyo3(signature = (suite_id, version, *, mac_key, key, content_type, epoch, seq, plaintext))]
#[allow(clippy::too_many_arguments)]
fn dtls_record_mac<'py>(
    py: Python<'py>,
    suite_id: u16,
    version: &str,
    mac_key: &[u8],
    key: &[u8],
    content_type: u8,
    epoch: u16,
    seq: u64,
    plaintext: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let s = suite(suite_id)?;
    let p = CbcProtection::new(s.cipher, s.mac, &direction_keys(mac_key, key, &[]))
        .ok_or_else(|| ConfigError::new_err("not a CBC suite, or wrong key lengths"))?;
    let meta = RecordMeta {
        content_type,
        version: dtls_version(version)?.wire(),
        epoch,
        seq,
    };
    Ok(PyBytes::new(py, &p.record_mac(&meta, plaintext)))
}

/// One whole protected record (header + fragment), sealed by the connection's code.
#[pyfunction]
#[pyo3(signature = (suite_id, version, *, mac_key, key, iv, content_type, epoch, seq, plaintext, cbc_iv=None))]
#[allow(clippy::too_many_arguments)]
fn dtls_seal_record<'py>(
    py: Python<'py>,
    suite_id: u16,
    version: &str,
    mac_key: &[u8],
    key: &[u8],
    iv: &[u8],
    content_type: u8,
    epoch: u16,
    seq: u64,
    plaintext: &[u8],
    cbc_iv: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let p = protection(suite(suite_id)?, &direction_keys(mac_key, key, iv))?;
    let meta = RecordMeta {
        content_type,
        version: dtls_version(version)?.wire(),
        epoch,
        seq,
    };
    let mut rng = ScriptedRandom::new(cbc_iv.map(<[u8]>::to_vec).into_iter().collect());
    let mut out = Vec::new();
    write_record(&mut out, Some(p.as_ref()), &meta, &[plaintext], &mut rng);
    Ok(PyBytes::new(py, &out))
}

/// Open one whole protected record; `raw=True` (CBC only) skips every check and returns
/// the decrypted `plaintext ‖ MAC ‖ padding`.
#[pyfunction]
#[pyo3(signature = (suite_id, *, mac_key, key, iv, record, raw=false))]
fn dtls_open_record<'py>(
    py: Python<'py>,
    suite_id: u16,
    mac_key: &[u8],
    key: &[u8],
    iv: &[u8],
    record: &[u8],
    raw: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let s = suite(suite_id)?;
    let keys = direction_keys(mac_key, key, iv);
    let (h, frag) = RecordIter::new(record)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| RemoteProtocolError::new_err("not a DTLS record"))?;
    if raw {
        let p = CbcProtection::new(s.cipher, s.mac, &keys)
            .ok_or_else(|| ConfigError::new_err("raw=True needs a CBC suite"))?;
        let body = p
            .decrypt_raw(frag)
            .ok_or_else(|| RemoteProtocolError::new_err("ragged CBC fragment"))?;
        return Ok(PyBytes::new(py, &body));
    }
    let meta = RecordMeta::from(&h);
    let mut buf = frag.to_vec();
    let r = protection(s, &keys)?
        .open(&meta, &mut buf)
        .map_err(|e| RemoteProtocolError::new_err(format!("DTLS record refused: {e:?}")))?;
    Ok(PyBytes::new(py, buf.get(r).unwrap_or_default()))
}

/// A resumption handshake between a core client and a core server with scripted
/// randomness, then `client_control` payload types sent by the client; the datagrams in
/// wire order as `(sender, datagram)`.
#[pyfunction]
#[pyo3(signature = (*, mode, cipher, server_mode, server_cipher, master_secret, session_id, client_random, server_random, cbc_iv=None, hello_style="minimal", client_control=None))]
#[allow(clippy::too_many_arguments)]
fn dtls_scripted_handshake<'py>(
    py: Python<'py>,
    mode: &str,
    cipher: &str,
    server_mode: &str,
    server_cipher: &str,
    master_secret: &[u8],
    session_id: &[u8],
    client_random: &[u8],
    server_random: &[u8],
    cbc_iv: Option<&[u8]>,
    hello_style: &str,
    client_control: Option<Vec<u8>>,
) -> PyResult<Vec<(&'static str, Bound<'py, PyBytes>)>> {
    if mode == "psk" || server_mode == "psk" {
        return Err(ConfigError::new_err(
            "dtls_scripted_handshake runs resumption handshakes only (not psk)",
        ));
    }
    let ms = fixed::<48>(master_secret, "DTLS master secret")?;
    // every later draw is a CBC IV: one per encrypted record
    let script = |first: &[u8]| {
        let mut v = vec![first.to_vec()];
        if let Some(iv) = cbc_iv {
            v.resize(17, iv.to_vec());
        }
        Box::new(ScriptedRandom::new(v))
    };
    let mut cfg =
        DtlsClientConfig::resumption(dtls_mode(mode, cipher)?, ms, session_id.to_vec(), [0; 32]);
    cfg.hello_style = parse_hello_style(hello_style)?;
    let mut client =
        dtls::DtlsConnection::client_with_rng(0, cfg, script(client_random)).map_err(dtls_err)?;
    let mut server = dtls::DtlsConnection::server_with_rng(
        session_id.to_vec(),
        ServerSessionParams::resumption(dtls_mode(server_mode, server_cipher)?, ms),
        script(server_random),
    )
    .map_err(dtls_err)?;
    let mut wire = Vec::new();
    for now in 0..8u64 {
        while let Some(d) = client.poll_transmit(now) {
            server.handle_datagram(now, &d);
            wire.push(("client", PyBytes::new(py, &d)));
        }
        while let Some(d) = server.poll_transmit(now) {
            client.handle_datagram(now, &d);
            wire.push(("server", PyBytes::new(py, &d)));
        }
        if client.is_established() && server.is_established() {
            break;
        }
    }
    if !(client.is_established() && server.is_established()) {
        let why = std::iter::from_fn(|| client.poll_event().or_else(|| server.poll_event()))
            .find_map(|e| match e {
                CoreDtlsEvent::HandshakeFailed { reason } => Some(reason),
                _ => None,
            })
            .unwrap_or_else(|| "no progress".into());
        return Err(RemoteProtocolError::new_err(format!(
            "scripted DTLS handshake did not complete: {why}"
        )));
    }
    for t in client_control.unwrap_or_default() {
        client.send_control(8, t, &[]).map_err(dtls_err)?;
        while let Some(d) = client.poll_transmit(8) {
            wire.push(("client", PyBytes::new(py, &d)));
        }
    }
    Ok(wire)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_SEND_PAYLOAD", cstp::frame::MAX_SEND_PAYLOAD)?;
    m.add_class::<CstpConnection>()?;
    m.add_class::<CstpEvent>()?;
    m.add_class::<Deframer>()?;
    m.add_class::<Prober>()?;
    m.add_class::<ProbeResult>()?;
    m.add_class::<DtlsConnection>()?;
    m.add_class::<DtlsEndpoint>()?;
    m.add_class::<DtlsEvent>()?;
    m.add_function(wrap_pyfunction!(encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(pin_sha256, m)?)?;
    m.add_function(wrap_pyfunction!(icmp_echo_reply, m)?)?;
    m.add_function(wrap_pyfunction!(udp_echo_reply, m)?)?;
    m.add_function(wrap_pyfunction!(openconnect_request_mtu, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_tunnel_mtu, m)?)?;
    m.add_function(wrap_pyfunction!(ocserv_data_mtu, m)?)?;
    m.add_function(wrap_pyfunction!(asa_tls_threshold, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_resolve_cipher, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_prf, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_key_block, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_session_keys, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_verify_data, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_additional_data, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_record_mac, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_seal_record, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_open_record, m)?)?;
    m.add_function(wrap_pyfunction!(dtls_scripted_handshake, m)?)?;
    packets::register(m)?;
    stats::register(m)?;
    Ok(())
}
