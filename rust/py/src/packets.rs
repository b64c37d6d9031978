//! Bindings of the core's packet builders and parsers (`ip::{tcp, udp, icmp, fragment}`),
//! of the IPv4 reassembler (`ip::reassembly`) and of the flow receiver (`traffic::flow`),
//! so that Python never reads or writes IP header bytes (house rule 5). Stubs: `python/tunnelswarm/_core.pyi`.
//!
//! Conventions: addresses are accepted as text (`"10.1.1.80"`), 4 packed bytes or
//! anything whose `str()` is an IPv4 address (`ipaddress.IPv4Address`) — a bad one is a
//! `ConfigError`; parsed addresses are returned as 4 packed bytes plus a text form.
//! Parsers return `None` for packets they refuse (never raise on bad bytes).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use tunnelswarm_proto::ip::checksum;
use tunnelswarm_proto::ip::fragment;
use tunnelswarm_proto::ip::icmp;
use tunnelswarm_proto::ip::reassembly::{self, Outcome, ReassemblyLimits};
use tunnelswarm_proto::ip::tcp::{self, TcpSpec};
use tunnelswarm_proto::ip::udp::UdpSpec;
use tunnelswarm_proto::ip::{self as core_ip, Ipv4Header};
use tunnelswarm_proto::traffic::flow::{self, FlowConfig, FlowVerdict as CoreFlowVerdict};

use crate::{now_us, ConfigError, LocalProtocolError};

/// An IPv4 address from text, 4 packed bytes or an object whose `str()` is one.
fn address(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Ipv4Addr> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        let raw = b.as_bytes();
        return <[u8; 4]>::try_from(raw).map(Ipv4Addr::from).map_err(|_| {
            ConfigError::new_err(format!(
                "{what}: {} bytes is not a packed IPv4 address",
                raw.len()
            ))
        });
    }
    let text = match obj.downcast::<PyString>() {
        Ok(s) => s.to_cow()?.into_owned(),
        Err(_) => obj.str()?.to_cow()?.into_owned(),
    };
    text.parse()
        .map_err(|_| ConfigError::new_err(format!("{what} {text:?} is not an IPv4 address")))
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn packed(py: Python<'_>, a: Ipv4Addr) -> Py<PyBytes> {
    PyBytes::new(py, &a.octets()).unbind()
}

/// RFC 1071 Internet checksum of `data` (0 over data that carries a correct one).
#[pyfunction]
pub fn internet_checksum(data: &[u8]) -> u16 {
    checksum::internet_checksum(data)
}

/// The header of a sound IPv4 packet.
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct Ipv4Info {
    src: Py<PyBytes>,
    dst: Py<PyBytes>,
    src_ip: String,
    dst_ip: String,
    protocol: u8,
    ttl: u8,
    ident: u16,
    total_len: u16,
    header_len: usize,
    df: bool,
    mf: bool,
    frag_offset: u16,
    is_fragment: bool,
}

#[pymethods]
impl Ipv4Info {
    fn __repr__(&self) -> String {
        format!(
            "Ipv4Info(src_ip={:?}, dst_ip={:?}, protocol={}, total_len={}, df={}, mf={}, frag_offset={})",
            self.src_ip,
            self.dst_ip,
            self.protocol,
            self.total_len,
            py_bool(self.df),
            py_bool(self.mf),
            self.frag_offset
        )
    }
}

fn ipv4_info(py: Python<'_>, h: &Ipv4Header) -> Ipv4Info {
    Ipv4Info {
        src: packed(py, h.src),
        dst: packed(py, h.dst),
        src_ip: h.src.to_string(),
        dst_ip: h.dst.to_string(),
        protocol: h.protocol,
        ttl: h.ttl,
        ident: h.ident,
        total_len: h.total_len,
        header_len: h.header_len,
        df: h.flags_df,
        mf: h.more_fragments,
        frag_offset: h.frag_offset,
        is_fragment: h.is_fragment(),
    }
}

/// The IPv4 header of `packet`, or None unless it is sound (version 4, IHL >= 5, lengths
/// within the bytes, header checksum right).
#[pyfunction]
pub fn ipv4_inspect(py: Python<'_>, packet: &[u8]) -> Option<Ipv4Info> {
    core_ip::parse_ipv4(packet)
        .ok()
        .map(|(h, _)| ipv4_info(py, &h))
}

/// RFC 791 fragments of `packet` for a link of `mtu` bytes; [] when it cannot be
/// fragmented (not sound IPv4, MTU below header + 8, offset overflow).
#[pyfunction]
pub fn fragment_ipv4<'py>(py: Python<'py>, packet: &[u8], mtu: usize) -> Vec<Bound<'py, PyBytes>> {
    fragment::fragment_ipv4(packet, mtu)
        .unwrap_or_default()
        .iter()
        .map(|p| PyBytes::new(py, p))
        .collect()
}

/// ICMP 3/4 "fragmentation needed" about `original`, or None when RFC 1122 forbids one.
#[pyfunction]
#[pyo3(signature = (original, mtu, source, *, ttl=255))]
pub fn icmp_frag_needed<'py>(
    py: Python<'py>,
    original: &[u8],
    mtu: u16,
    source: &Bound<'py, PyAny>,
    ttl: u8,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let source = address(source, "ICMP source")?;
    Ok(icmp::build_frag_needed(original, mtu, source, ttl)
        .ok()
        .map(|p| PyBytes::new(py, &p)))
}

/// A complete IPv4/TCP packet.
#[pyfunction]
#[pyo3(signature = (src, dst, sport, dport, seq, ack, flags, payload=None, *, mss=None, window=0xffff, df=true, ident=0, ttl=64))]
#[allow(clippy::too_many_arguments)]
pub fn tcp_segment<'py>(
    py: Python<'py>,
    src: &Bound<'py, PyAny>,
    dst: &Bound<'py, PyAny>,
    sport: u16,
    dport: u16,
    seq: u64,
    ack: u64,
    flags: u8,
    payload: Option<&[u8]>,
    mss: Option<u16>,
    window: u16,
    df: bool,
    ident: u16,
    ttl: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let spec = TcpSpec {
        src: address(src, "TCP source")?,
        dst: address(dst, "TCP destination")?,
        sport,
        dport,
        // sequence numbers are taken modulo 2**32
        seq: seq as u32,
        ack: ack as u32,
        flags,
        window,
        mss,
        ttl,
        ident,
        dont_fragment: df,
    };
    let p = spec
        .build(payload.unwrap_or_default())
        .map_err(|e| LocalProtocolError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &p))
}

/// A complete IPv4/UDP packet.
#[pyfunction]
#[pyo3(signature = (src, dst, sport, dport, payload, *, df=true, ttl=64, ident=0))]
#[allow(clippy::too_many_arguments)]
pub fn udp_datagram<'py>(
    py: Python<'py>,
    src: &Bound<'py, PyAny>,
    dst: &Bound<'py, PyAny>,
    sport: u16,
    dport: u16,
    payload: &[u8],
    df: bool,
    ttl: u8,
    ident: u16,
) -> PyResult<Bound<'py, PyBytes>> {
    let spec = UdpSpec {
        src: address(src, "UDP source")?,
        dst: address(dst, "UDP destination")?,
        sport,
        dport,
        ttl,
        ident,
        dont_fragment: df,
    };
    let p = spec
        .build(payload)
        .map_err(|e| LocalProtocolError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &p))
}

/// A parsed IPv4/TCP segment.
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct TcpSegment {
    src: Py<PyBytes>,
    dst: Py<PyBytes>,
    src_ip: String,
    dst_ip: String,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    mss: Option<u16>,
    payload: Py<PyBytes>,
    df: bool,
    ttl: u8,
    ident: u16,
    length: u16,
}

#[pymethods]
impl TcpSegment {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "TcpSegment({}:{} -> {}:{}, seq={}, ack={}, flags={:#04x}, payload_len={})",
            self.src_ip,
            self.sport,
            self.dst_ip,
            self.dport,
            self.seq,
            self.ack,
            self.flags,
            self.payload.bind(py).as_bytes().len()
        )
    }
}

/// The TCP segment of `packet`, or None unless it is an unfragmented, sound IPv4/TCP
/// packet with a right checksum and well-formed options.
#[pyfunction]
pub fn parse_tcp(py: Python<'_>, packet: &[u8]) -> Option<TcpSegment> {
    let s = tcp::parse_tcp(packet).ok()?;
    Some(TcpSegment {
        src: packed(py, s.ip.src),
        dst: packed(py, s.ip.dst),
        src_ip: s.ip.src.to_string(),
        dst_ip: s.ip.dst.to_string(),
        sport: s.sport,
        dport: s.dport,
        seq: s.seq,
        ack: s.ack,
        flags: s.flags,
        window: s.window,
        mss: s.mss,
        payload: PyBytes::new(py, s.payload).unbind(),
        df: s.ip.flags_df,
        ttl: s.ip.ttl,
        ident: s.ip.ident,
        length: s.ip.total_len,
    })
}

/// A parsed ICMP message, with the quoted datagram of an error.
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct IcmpMessage {
    src: Py<PyBytes>,
    dst: Py<PyBytes>,
    src_ip: String,
    icmp_type: u8,
    code: u8,
    mtu: Option<u16>,
    is_error: bool,
    quoted_src: Option<Py<PyBytes>>,
    quoted_dst: Option<Py<PyBytes>>,
    quoted_protocol: Option<u8>,
    quoted_sport: Option<u16>,
    quoted_dport: Option<u16>,
    quoted_seq: Option<u32>,
}

#[pymethods]
impl IcmpMessage {
    fn __repr__(&self) -> String {
        let mtu = self
            .mtu
            .map_or_else(|| "None".to_owned(), |m| m.to_string());
        format!(
            "IcmpMessage(src_ip={:?}, type={}, code={}, mtu={mtu})",
            self.src_ip, self.icmp_type, self.code
        )
    }
}

/// The ICMP message of `packet`, or None unless it is an unfragmented, sound IPv4/ICMP
/// packet of at least 8 ICMP bytes with a right checksum.
#[pyfunction]
pub fn parse_icmp(py: Python<'_>, packet: &[u8]) -> Option<IcmpMessage> {
    let m = icmp::parse_icmp(packet).ok()?;
    let q = m.quote();
    let ports = q.as_ref().and_then(icmp::IcmpQuote::ports);
    Some(IcmpMessage {
        src: packed(py, m.ip.src),
        dst: packed(py, m.ip.dst),
        src_ip: m.ip.src.to_string(),
        icmp_type: m.icmp_type,
        code: m.code,
        mtu: m.next_hop_mtu(),
        is_error: m.is_error(),
        quoted_src: q.as_ref().map(|q| packed(py, q.ip.src)),
        quoted_dst: q.as_ref().map(|q| packed(py, q.ip.dst)),
        quoted_protocol: q.as_ref().map(|q| q.ip.protocol),
        quoted_sport: ports.map(|p| p.0),
        quoted_dport: ports.map(|p| p.1),
        quoted_seq: q.as_ref().and_then(icmp::IcmpQuote::tcp_seq),
    })
}

/// What a [`Reassembler`] made of one packet.
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct ReassemblyOutcome {
    kind: &'static str,
    packet: Option<Py<PyBytes>>,
    reason: Option<String>,
}

#[pymethods]
impl ReassemblyOutcome {
    fn __repr__(&self, py: Python<'_>) -> String {
        let len = self.packet.as_ref().map_or_else(
            || "None".to_owned(),
            |p| p.bind(py).as_bytes().len().to_string(),
        );
        let reason = self
            .reason
            .as_ref()
            .map_or_else(|| "None".to_owned(), |r| format!("{r:?}"));
        format!(
            "ReassemblyOutcome(kind={:?}, packet_len={len}, reason={reason})",
            self.kind
        )
    }
}

const _: () = assert!(
    reassembly::DEFAULT_TIMEOUT_US == 30_000_000
        && reassembly::DEFAULT_MAX_DATAGRAMS == 64
        && reassembly::DEFAULT_MAX_FRAGMENTS == 128
);

/// The sans-IO IPv4 reassembler of a host: whole datagrams out of fragments.
#[pyclass(module = "tunnelswarm._core")]
pub struct Reassembler {
    inner: reassembly::Reassembler,
}

#[pymethods]
impl Reassembler {
    #[new]
    // literals, so that the text signature (and stubtest) shows them; kept equal to the
    // core's defaults by the assertion below
    #[pyo3(signature = (*, timeout_us=30_000_000, max_datagrams=64, max_fragments=128))]
    fn new(timeout_us: u64, max_datagrams: usize, max_fragments: usize) -> PyResult<Self> {
        let limits = ReassemblyLimits {
            timeout_us,
            max_datagrams,
            max_fragments,
        };
        let inner = reassembly::Reassembler::new(limits)
            .map_err(|e| ConfigError::new_err(e.to_string()))?;
        Ok(Reassembler { inner })
    }

    fn handle(
        &mut self,
        py: Python<'_>,
        now: i64,
        packet: Bound<'_, PyBytes>,
    ) -> PyResult<ReassemblyOutcome> {
        let out = self.inner.handle(now_us(now)?, packet.as_bytes());
        let (kind, packet, reason) = match out {
            Outcome::Pass => ("pass", Some(packet.unbind()), None),
            Outcome::Malformed(e) => ("malformed", Some(packet.unbind()), Some(e.to_string())),
            Outcome::Held => ("held", None, None),
            Outcome::Reassembled(d) => ("reassembled", Some(PyBytes::new(py, &d).unbind()), None),
            Outcome::Dropped(r) => ("dropped", None, Some(r.name().to_owned())),
        };
        Ok(ReassemblyOutcome {
            kind,
            packet,
            reason,
        })
    }

    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    fn handle_timeout(&mut self, now: i64) -> PyResult<()> {
        self.inner.handle_timeout(now_us(now)?);
        Ok(())
    }

    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    #[getter]
    fn timeout_us(&self) -> u64 {
        self.inner.limits().timeout_us
    }

    #[getter]
    fn max_datagrams(&self) -> usize {
        self.inner.limits().max_datagrams
    }

    #[getter]
    fn max_fragments(&self) -> usize {
        self.inner.limits().max_fragments
    }

    fn stats(&self) -> HashMap<&'static str, u64> {
        let s = self.inner.stats();
        [
            ("fragments_in", s.fragments_in),
            ("reassembled", s.reassembled),
            ("timeouts", s.timeouts),
            ("overlaps", s.overlaps),
            ("too_big", s.too_big),
            ("too_many_fragments", s.too_many_fragments),
            ("evicted", s.evicted),
            ("malformed", s.malformed),
            ("duplicates", s.duplicates),
            ("discarded", s.discarded),
        ]
        .into_iter()
        .collect()
    }

    fn __repr__(&self) -> String {
        let s = self.inner.stats();
        format!(
            "Reassembler(pending={}, fragments_in={}, reassembled={})",
            self.inner.pending(),
            s.fragments_in,
            s.reassembled
        )
    }
}

/// What one inbound packet meant to a flow receiver.
#[pyclass(module = "tunnelswarm._core", frozen, get_all)]
pub struct FlowVerdict {
    kind: &'static str,
    new_bytes: u64,
    reason: Option<String>,
}

#[pymethods]
impl FlowVerdict {
    fn __repr__(&self) -> String {
        let reason = self
            .reason
            .as_ref()
            .map_or_else(|| "None".to_owned(), |r| format!("{r:?}"));
        format!(
            "FlowVerdict(kind={:?}, new_bytes={}, reason={reason})",
            self.kind, self.new_bytes
        )
    }
}

fn flow_verdict(v: CoreFlowVerdict) -> FlowVerdict {
    let (kind, new_bytes, reason) = match v {
        CoreFlowVerdict::NotOurs => ("not-ours", 0, None),
        CoreFlowVerdict::Progress { new_bytes } => ("progress", new_bytes, None),
        CoreFlowVerdict::Complete { new_bytes } => ("complete", new_bytes, None),
        CoreFlowVerdict::Reset => ("reset", 0, None),
        CoreFlowVerdict::Malformed(r) => ("malformed", 0, Some(r)),
    };
    FlowVerdict {
        kind,
        new_bytes,
        reason,
    }
}

/// The client end of one mock-ASA "web server" transfer (sans-IO).
#[pyclass(module = "tunnelswarm._core")]
pub struct FlowReceiver {
    inner: flow::FlowReceiver,
}

#[pymethods]
impl FlowReceiver {
    #[new]
    #[pyo3(signature = (src, dst, sport, dport, mss, nbytes, isn=0, *, syn_rto_us=1_000_000, syn_retries=3, ttl=64, window=0xffff))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
        sport: u16,
        dport: u16,
        mss: u16,
        nbytes: u64,
        isn: u32,
        syn_rto_us: u64,
        syn_retries: u32,
        ttl: u8,
        window: u16,
    ) -> PyResult<Self> {
        let cfg = FlowConfig {
            src: address(src, "flow source")?,
            dst: address(dst, "flow target")?,
            sport,
            dport,
            mss,
            nbytes,
            isn,
            syn_rto_us,
            syn_retries,
            ttl,
            window,
        };
        let inner =
            flow::FlowReceiver::new(cfg).map_err(|e| ConfigError::new_err(e.to_string()))?;
        Ok(FlowReceiver { inner })
    }

    fn syn<'py>(&mut self, py: Python<'py>, now: i64) -> PyResult<Bound<'py, PyBytes>> {
        let p = self
            .inner
            .syn(now_us(now)?)
            .map_err(|e| LocalProtocolError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &p))
    }

    fn handle_packet(&mut self, now: i64, packet: &[u8]) -> PyResult<FlowVerdict> {
        Ok(flow_verdict(self.inner.handle_packet(now_us(now)?, packet)))
    }

    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.poll_transmit().map(|p| PyBytes::new(py, &p))
    }

    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    fn handle_timeout(&mut self, now: i64) -> PyResult<()> {
        self.inner.handle_timeout(now_us(now)?);
        Ok(())
    }

    #[getter]
    fn state(&self) -> &'static str {
        self.inner.state().name()
    }

    #[getter]
    fn sport(&self) -> u16 {
        self.inner.config().sport
    }

    #[getter]
    fn mss(&self) -> u16 {
        self.inner.config().mss
    }

    #[getter]
    fn nbytes(&self) -> u64 {
        self.inner.config().nbytes
    }

    fn stats(&self) -> HashMap<&'static str, Option<u64>> {
        let s = self.inner.stats();
        [
            ("syns_sent", Some(s.syns_sent)),
            ("syn_retransmits", Some(s.syn_retransmits)),
            ("segments", Some(s.segments)),
            ("data_segments", Some(s.data_segments)),
            ("bytes", Some(s.bytes)),
            ("largest_payload", s.largest_payload),
            ("smallest_payload", s.smallest_payload),
            ("full_segment", s.full_segment),
            ("out_of_order", Some(s.out_of_order)),
            ("duplicates", Some(s.duplicates)),
            ("short_segments", Some(s.short_segments)),
            ("payload_errors", Some(s.payload_errors)),
            ("ignored", Some(s.ignored)),
            ("malformed", Some(s.malformed)),
            ("acks_sent", Some(s.acks_sent)),
            ("syn_at_us", s.syn_at_us),
            ("established_at_us", s.established_at_us),
            ("first_byte_at_us", s.first_byte_at_us),
            ("completed_at_us", s.completed_at_us),
            ("reset_at_us", s.reset_at_us),
            ("gave_up_at_us", s.gave_up_at_us),
        ]
        .into_iter()
        .collect()
    }
}

/// Register the classes and functions of this module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Ipv4Info>()?;
    m.add_class::<TcpSegment>()?;
    m.add_class::<IcmpMessage>()?;
    m.add_class::<FlowReceiver>()?;
    m.add_class::<FlowVerdict>()?;
    m.add_class::<Reassembler>()?;
    m.add_class::<ReassemblyOutcome>()?;
    m.add_function(wrap_pyfunction!(internet_checksum, m)?)?;
    m.add_function(wrap_pyfunction!(ipv4_inspect, m)?)?;
    m.add_function(wrap_pyfunction!(fragment_ipv4, m)?)?;
    m.add_function(wrap_pyfunction!(icmp_frag_needed, m)?)?;
    m.add_function(wrap_pyfunction!(tcp_segment, m)?)?;
    m.add_function(wrap_pyfunction!(udp_datagram, m)?)?;
    m.add_function(wrap_pyfunction!(parse_tcp, m)?)?;
    m.add_function(wrap_pyfunction!(parse_icmp, m)?)?;
    Ok(())
}
