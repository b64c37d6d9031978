"""Type stubs of ``tunnelswarm._core``, the PyO3 binding of the Rust sans-IO core.

Every method follows the core's contract: inputs carry ``now`` (integer microseconds on
the caller's monotonic timeline, e.g. ``int(trio.current_time() * 1e6)``); after any
input the caller drains ``poll_transmit()``, then ``next_deadline()``, then
``poll_events()``. Errors are the classes of :mod:`tunnelswarm.errors`.
"""

from collections.abc import Callable, Sequence
from ipaddress import IPv4Address
from typing import ClassVar, Final, Literal, final

__version__: Final[str]
#: largest payload of one CSTP frame that still fits one TLS record (16384 - 8)
MAX_SEND_PAYLOAD: Final[int]

EventKind = Literal[
    "data",
    "dpd-request",
    "dpd-response",
    "keepalive",
    "disconnect",
    "terminate",
    "peer-dead",
    "rekey-due",
]

@final
class CstpEvent:
    """Something that happened on a CSTP connection.

    Attributes:
        kind: what happened. ``dpd-request`` was already answered by the core;
            ``peer-dead`` means more than 2 x DPD without any received frame
            (protocol.md §7.1); ``rekey-due`` means the rekey interval elapsed.
        payload: the frame payload (the IP packet for ``data``).
        reason: the DISCONNECT reason byte (``0xb0`` user, ``0x91`` reconnecting), if any.
        text: the DISCONNECT text, control characters removed.
    """

    @property
    def kind(self) -> EventKind: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def reason(self) -> int | None: ...
    @property
    def text(self) -> str: ...

@final
class CstpConnection:
    """TLS (rustls) + HTTP pass-through + CSTP framing and timers of one TCP connection.

    Starts in HTTP mode (``write_http`` / ``read_http`` move plaintext); after ``200`` to
    ``CONNECT``, ``start_cstp`` switches to CSTP frames. One frame is written per TLS
    record (protocol.md §4.1).
    """

    @staticmethod
    def client(
        server_name: str,
        *,
        wall_time: int,
        ca_pem: bytes | None = None,
        pins: list[str] = ...,
        insecure: bool = False,
        keylog: bool = False,
        tls12_only: bool = False,
    ) -> CstpConnection:
        """A client connection to ``server_name`` (SNI and name check).

        Arguments:
            wall_time: seconds since 1970, for certificate validity (the core reads no clock).
            ca_pem: trusted roots (``--cafile`` or the system bundle).
            pins: ``pin-sha256:<base64>`` pins; when given they replace the chain check.
            insecure: accept any certificate (handshake signatures are still verified).
            keylog: collect NSS key-log lines for ``take_keylog``.
            tls12_only: offer TLS 1.2 only.

        Raises:
            ConfigError: bad name, pin syntax or CA bundle.
        """

    @staticmethod
    def server(
        chain_pem: bytes, key_pem: bytes, *, wall_time: int, keylog: bool = False
    ) -> CstpConnection:
        """A server (headend) connection with this certificate chain and key."""

    def handle_input(self, now: int, data: bytes) -> None:
        """Feed bytes received from TCP.

        Raises:
            TlsError, CertificateError: the TLS layer failed (sticky).
            CstpFramingError: broken CSTP framing or an unexpected packet type (sticky; a
                BYE ``b0 "Unknown packet received"`` is queued first, as openconnect does).
        """

    def handle_eof(self, now: int) -> None:
        """The TCP stream ended. Raises ConnectionLost without close_notify, and
        CstpFramingError when a frame was cut short."""

    def write_http(self, data: bytes) -> None:
        """HTTP mode: queue plaintext. Raises LocalProtocolError in CSTP mode."""

    def read_http(self) -> bytes:
        """HTTP mode: decrypted bytes received so far (drained)."""

    def start_cstp(
        self, now: int, *, dpd: int, keepalive: int, rekey: int, leftover: bytes | None = None
    ) -> None:
        """Switch to CSTP. Intervals in seconds (0 = off); ``leftover`` = bytes read past
        the CONNECT response head."""

    def send_data(self, now: int, packet: bytes) -> None:
        """Send an IP packet as a DATA frame. LocalProtocolError if over MAX_SEND_PAYLOAD."""

    def send_frame(self, now: int, packet_type: int, payload: bytes) -> None:
        """Send one frame of any type code."""

    def send_disconnect(self, now: int, reason: int, text: str) -> None:
        """Send DISCONNECT (reason byte + text), then close_notify."""

    def close(self) -> None:
        """Queue close_notify."""

    def poll_transmit(self) -> bytes | None:
        """Ciphertext to send, or None."""

    def poll_events(self) -> list[CstpEvent]:
        """Events since the last call."""

    def next_deadline(self) -> int | None:
        """When ``handle_timeout`` must be called next (microseconds), or None."""

    def handle_timeout(self, now: int) -> None:
        """Run due keepalive/DPD/rekey timers. Early calls do nothing."""

    @property
    def is_handshaking(self) -> bool: ...
    @property
    def is_cstp(self) -> bool: ...
    @property
    def peer_closed(self) -> bool:
        """The peer sent close_notify."""
    @property
    def protocol_version(self) -> str | None:
        """``TLSv1_2`` or ``TLSv1_3`` once negotiated."""
    @property
    def cipher_suite(self) -> str | None:
        """IANA name of the negotiated suite."""
    @property
    def peer_pin(self) -> str | None:
        """``pin-sha256:`` of the server certificate's public key, once seen."""

    def export_keying_material(
        self, label: bytes, length: int, context: bytes | None = None
    ) -> bytes:
        """RFC 5705 exporter (PSK-NEGOTIATE: ``EXPORTER-openconnect-psk``, 32 bytes)."""

    def refresh_traffic_keys(self) -> None:
        """TLS 1.3 KeyUpdate. Raises TlsError under TLS 1.2."""

    def take_keylog(self) -> list[str]:
        """NSS key-log lines collected since the last call (``SSLKEYLOGFILE`` format)."""

    def stats(self) -> dict[str, int]:
        """Frame and byte counters."""

@final
class Deframer:
    """Streaming CSTP deframer; the same frames however the stream is split."""

    def __new__(cls, max_payload: int = 16384) -> Deframer: ...
    def push(self, data: bytes) -> None:
        """Append bytes. Raises the sticky CstpFramingError of a broken stream."""
    def frames(self) -> list[tuple[int, bytes]]:
        """Complete frames as (type code, payload). Raises CstpFramingError."""
    def finish(self) -> None:
        """End of stream. CstpFramingError if a frame was cut short."""
    @property
    def buffered(self) -> int: ...

def encode_frame(packet_type: int, payload: bytes) -> bytes:
    """One CSTP frame. LocalProtocolError if the payload is over MAX_SEND_PAYLOAD."""

def pin_sha256(cert_der: bytes) -> str | None:
    """openconnect's ``pin-sha256:`` of a DER certificate, or None if it does not parse."""

ProbeKind = Literal["reply", "duplicate", "late", "icmp-error", "not-ours", "malformed"]

@final
class ProbeResult:
    """What an inbound packet meant to a prober."""

    @property
    def kind(self) -> ProbeKind: ...
    @property
    def seq(self) -> int | None: ...
    @property
    def rtt_us(self) -> int | None: ...
    @property
    def ttl(self) -> int | None: ...
    @property
    def size(self) -> int | None:
        """IPv4 total length of the reply."""
    @property
    def icmp_type(self) -> int | None: ...
    @property
    def icmp_code(self) -> int | None: ...
    @property
    def mtu(self) -> int | None:
        """Next-hop MTU of an ICMP fragmentation-needed error."""
    @property
    def source(self) -> str | None: ...
    @property
    def reason(self) -> str | None:
        """Why a packet was malformed."""

@final
class Prober:
    """ICMP echo or UDP probes with sequence numbers and timestamps; RTT and loss."""

    def __new__(
        cls,
        src: str,
        dst: str,
        *,
        kind: Literal["icmp", "udp"] | str = "icmp",
        ident: int = 0x7453,
        src_port: int = 40000,
        dst_port: int = 7,
        payload_len: int = 56,
        ttl: int = 64,
        dont_fragment: bool = True,
    ) -> Prober:
        """Raises ConfigError for bad addresses, kind, payload length (24..65000), TTL 0."""
    def build(self, now: int) -> tuple[int, bytes]:
        """The next probe: (seq, IPv4 packet with valid checksums)."""
    def handle_packet(self, now: int, packet: bytes) -> ProbeResult:
        """Classify an inbound IPv4 packet; never raises on bad bytes."""
    def expire(self, now: int, timeout_us: int) -> list[int]:
        """Declare probes older than ``timeout_us`` lost; their seqs."""
    def next_expiry(self, timeout_us: int) -> int | None: ...
    def stats(self) -> dict[str, int | float | None]:
        """sent, received, duplicates, late, lost, outstanding, errors, malformed,
        rtt_min_us, rtt_max_us, rtt_avg_us, rtt_mdev_us, loss_ratio."""

def icmp_echo_reply(request: bytes) -> bytes | None:
    """The echo reply a host would send for an IPv4 ICMP echo request."""

def udp_echo_reply(request: bytes) -> bytes | None:
    """The reply an echo service would send for an IPv4 UDP datagram."""

# ----------------------------------------------------------------- IPv4 packets
#: an IPv4 address: text, 4 packed bytes, or an ``ipaddress.IPv4Address``; a bad one
#: raises ConfigError
Address = str | bytes | IPv4Address

def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data`` (0 when ``data`` already carries a correct one)."""

@final
class Ipv4Info:
    """The header of a sound IPv4 packet (see :func:`ipv4_inspect`)."""

    @property
    def src(self) -> bytes:
        """Source address, 4 packed bytes."""
    @property
    def dst(self) -> bytes:
        """Destination address, 4 packed bytes."""
    @property
    def src_ip(self) -> str: ...
    @property
    def dst_ip(self) -> str: ...
    @property
    def protocol(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def ident(self) -> int: ...
    @property
    def total_len(self) -> int:
        """The total length field (header + payload)."""
    @property
    def header_len(self) -> int:
        """IHL x 4, 20..60."""
    @property
    def df(self) -> bool: ...
    @property
    def mf(self) -> bool: ...
    @property
    def frag_offset(self) -> int:
        """Fragment offset in 8-byte units, as on the wire."""
    @property
    def is_fragment(self) -> bool:
        """MF set or a non-zero offset."""

def ipv4_inspect(packet: bytes) -> Ipv4Info | None:
    """The IPv4 header, or None unless the packet is sound: version 4, IHL >= 5, total
    length within the bytes and >= the header, header checksum right. Never raises."""

def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """RFC 791 fragments of at most ``mtu`` bytes: data on 8-byte boundaries, offsets
    relative to the packet's own (a fragment can be fragmented again), MF on all but the
    last, options with the copied flag repeated in later fragments, DF and ident copied,
    header checksums recomputed. A packet that fits comes back whole (padding trimmed).
    [] when it cannot be fragmented (not sound IPv4, ``mtu`` below header + 8, offset
    overflow)."""

def icmp_frag_needed(original: bytes, mtu: int, source: Address, *, ttl: int = 255) -> bytes | None:
    """ICMP type 3 code 4 about ``original`` (RFC 792, RFC 1191): next-hop MTU ``mtu``
    (0..65535) in bytes 6-7, the original header + 8 data bytes quoted, from ``source``
    to the original sender, DF clear, ident 0. None when RFC 1122 §3.2.2 forbids an
    error: ``original`` not sound IPv4, a non-initial fragment, an ICMP error, from a
    non-host source or to a multicast/broadcast destination."""

def tcp_segment(
    src: Address,
    dst: Address,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes | None = None,
    *,
    mss: int | None = None,
    window: int = 65535,
    df: bool = True,
    ident: int = 0,
    ttl: int = 64,
) -> bytes:
    """A complete IPv4/TCP packet with both checksums right (20-byte IPv4 header; ``mss``
    adds the MSS option). ``seq`` / ``ack`` are taken modulo 2**32; ``flags`` is the
    whole flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20).
    LocalProtocolError if the packet would exceed 65535 bytes."""

def udp_datagram(
    src: Address,
    dst: Address,
    sport: int,
    dport: int,
    payload: bytes,
    *,
    df: bool = True,
    ttl: int = 64,
    ident: int = 0,
) -> bytes:
    """A complete IPv4/UDP packet with both checksums right (a computed UDP checksum of 0
    is sent as 0xFFFF). LocalProtocolError if it would exceed 65535 bytes."""

@final
class TcpSegment:
    """A parsed IPv4/TCP segment (see :func:`parse_tcp`)."""

    @property
    def src(self) -> bytes:
        """Source address, 4 packed bytes."""
    @property
    def dst(self) -> bytes:
        """Destination address, 4 packed bytes."""
    @property
    def src_ip(self) -> str: ...
    @property
    def dst_ip(self) -> str: ...
    @property
    def sport(self) -> int: ...
    @property
    def dport(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def ack(self) -> int: ...
    @property
    def flags(self) -> int:
        """The whole flags byte."""
    @property
    def window(self) -> int: ...
    @property
    def mss(self) -> int | None:
        """The MSS option, if present."""
    @property
    def payload(self) -> bytes: ...
    @property
    def df(self) -> bool: ...
    @property
    def ttl(self) -> int: ...
    @property
    def ident(self) -> int: ...
    @property
    def length(self) -> int:
        """The IPv4 total length."""

def parse_tcp(packet: bytes) -> TcpSegment | None:
    """The TCP segment of an unfragmented, sound IPv4 packet, or None: another protocol,
    a fragment, under 20 TCP bytes, a data offset outside 20..length, a wrong TCP
    checksum, or malformed options (a bad length byte; an MSS option not 4 bytes long).
    Never raises."""

@final
class IcmpMessage:
    """A parsed ICMP message (see :func:`parse_icmp`); the ``quoted_*`` fields describe
    the original datagram quoted by an error message (None when absent or too short)."""

    @property
    def src(self) -> bytes: ...
    @property
    def dst(self) -> bytes: ...
    @property
    def src_ip(self) -> str: ...
    @property
    def icmp_type(self) -> int: ...
    @property
    def code(self) -> int: ...
    @property
    def mtu(self) -> int | None:
        """Next-hop MTU of a type 3 code 4 message, as sent (0 from an old router)."""
    @property
    def is_error(self) -> bool:
        """Type 3, 4, 5, 11 or 12."""
    @property
    def quoted_src(self) -> bytes | None: ...
    @property
    def quoted_dst(self) -> bytes | None: ...
    @property
    def quoted_protocol(self) -> int | None: ...
    @property
    def quoted_sport(self) -> int | None:
        """Source port of a quoted TCP/UDP header (first fragment only)."""
    @property
    def quoted_dport(self) -> int | None: ...
    @property
    def quoted_seq(self) -> int | None:
        """Sequence number of a quoted TCP header (RFC 5927 §4.1 checks it)."""

def parse_icmp(packet: bytes) -> IcmpMessage | None:
    """The ICMP message of an unfragmented, sound IPv4 packet with at least 8 ICMP bytes
    and a right ICMP checksum, else None. The quote of an error is parsed leniently (cut
    short, checksum not checked). Never raises."""

# ----------------------------------------------------------------- IPv4 reassembly
ReassemblyKind = Literal["pass", "malformed", "held", "reassembled", "dropped"]
ReassemblyDrop = Literal[
    "bad-length", "overlap", "too-big", "too-many-fragments", "datagram-dropped"
]

@final
class ReassemblyOutcome:
    """What a :class:`Reassembler` made of one packet.

    Attributes:
        kind: ``pass`` — not an IPv4 fragment (another IP version, or a whole IPv4
            packet); ``malformed`` — version 4 but not sound IPv4 (counted, not kept);
            ``held`` — a fragment stored, its datagram still has holes; ``reassembled``
            — this fragment completed its datagram; ``dropped`` — a fragment not used.
        packet: what to deliver: the very ``bytes`` object handed in for ``pass`` and
            ``malformed``, the whole datagram for ``reassembled``, else None.
        reason: for ``dropped`` a :data:`ReassemblyDrop` — ``bad-length`` (MF set and
            the data empty or not a multiple of 8 bytes), ``overlap`` (overlapping
            fragments with different bytes, or disagreeing ends: the whole datagram is
            dropped), ``too-big`` (over 65535 bytes), ``too-many-fragments``,
            ``datagram-dropped`` (a fragment of a datagram dropped earlier, until its
            deadline); for ``malformed`` why the IPv4 header was refused; else None.
    """

    @property
    def kind(self) -> ReassemblyKind: ...
    @property
    def packet(self) -> bytes | None: ...
    @property
    def reason(self) -> str | None: ...

@final
class Reassembler:
    """A host's IPv4 reassembly (RFC 791 §3.2, RFC 815), sans-IO: the inverse of
    :func:`fragment_ipv4`. Fragments are keyed by (source, destination, protocol,
    identification); the whole datagram is the first fragment's header (options kept)
    with the total length set, MF and offset cleared and the checksum recomputed.

    Limits: a datagram not complete ``timeout_us`` after its first fragment is dropped
    (``timeouts``; default 30 s, Linux's ``ipfrag_time``); at most ``max_datagrams``
    in the table (default 64; the oldest datagram is ``evicted`` for a new one); at most
    ``max_fragments`` per datagram, duplicates included (default 128: a 65535-byte
    datagram over a 576-byte link). Expiry runs at the start of every :meth:`handle`
    and in :meth:`handle_timeout`.
    """

    def __new__(
        cls,
        *,
        timeout_us: int = 30_000_000,
        max_datagrams: int = 64,
        max_fragments: int = 128,
    ) -> Reassembler:
        """ConfigError for a zero timeout, zero datagrams or fewer than 2 fragments."""
    def handle(self, now: int, packet: bytes) -> ReassemblyOutcome:
        """One link-level packet; expires due datagrams first. Never raises on bad bytes
        (LocalProtocolError for a negative ``now``)."""
    def next_deadline(self) -> int | None:
        """The earliest datagram deadline (microseconds), None when the table is empty."""
    def handle_timeout(self, now: int) -> None:
        """Drop the datagrams whose deadline is at or before ``now`` (``timeouts``); an
        early call does nothing."""
    @property
    def pending(self) -> int:
        """Datagrams being reassembled."""
    @property
    def timeout_us(self) -> int: ...
    @property
    def max_datagrams(self) -> int: ...
    @property
    def max_fragments(self) -> int: ...
    def stats(self) -> dict[str, int]:
        """fragments_in (sound IPv4 fragments handled), reassembled, timeouts, overlaps,
        too_big, too_many_fragments, evicted (datagrams dropped for those reasons),
        malformed (version-4 packets that do not parse, fragments of a bad length),
        duplicates (fragments that added nothing), discarded (fragments of a datagram
        dropped earlier)."""

# ----------------------------------------------------------------- the flow receiver
FlowVerdictKind = Literal["not-ours", "progress", "complete", "reset", "malformed"]
FlowStateName = Literal["idle", "syn-sent", "established", "complete", "reset", "gave-up"]

@final
class FlowVerdict:
    """What an inbound packet meant to a :class:`FlowReceiver`.

    Attributes:
        kind: ``progress`` is any segment of the flow (``new_bytes`` may be 0: the
            SYN|ACK, a duplicate, a segment after a gap); ``complete`` is the in-order
            FIN; ``reset`` a server RST; ``malformed`` a TCP packet between the flow's
            addresses that does not parse; ``not-ours`` anything else.
        new_bytes: in-order response bytes the packet added.
        reason: why it was malformed.
    """

    @property
    def kind(self) -> FlowVerdictKind: ...
    @property
    def new_bytes(self) -> int: ...
    @property
    def reason(self) -> str | None: ...

@final
class FlowReceiver:
    """The client end of one mock-ASA "web server" transfer (``asa/inside.py``): a SYN
    with an MSS option and ``GET /<nbytes>``, cumulative ACKs, no out-of-order queue,
    SYN retransmission (``syn_rto_us`` doubling, at most ``syn_retries`` times, then
    ``gave-up``). Sans-IO: after any input drain ``poll_transmit()``, then look at
    ``next_deadline()``.
    """

    def __new__(
        cls,
        src: Address,
        dst: Address,
        sport: int,
        dport: int,
        mss: int,
        nbytes: int,
        isn: int = 0,
        *,
        syn_rto_us: int = 1_000_000,
        syn_retries: int = 3,
        ttl: int = 64,
        window: int = 65535,
    ) -> FlowReceiver:
        """ConfigError for a bad address, a zero port, TTL or RTO, or ``nbytes`` over
        2**31 - 4."""
    def syn(self, now: int) -> bytes:
        """The first SYN; arms the SYN timer. LocalProtocolError when called twice."""
    def handle_packet(self, now: int, packet: bytes) -> FlowVerdict:
        """Classify an inbound IPv4 packet; never raises on bad bytes."""
    def poll_transmit(self) -> bytes | None:
        """The next packet to send: a SYN retransmission, then the newest ACK (ACKs are
        cumulative: an unsent older one is replaced)."""
    def next_deadline(self) -> int | None:
        """When :meth:`handle_timeout` has work (the SYN timer), microseconds."""
    def handle_timeout(self, now: int) -> None:
        """Retransmit the SYN or give up, if due; an early call does nothing."""
    @property
    def state(self) -> FlowStateName: ...
    @property
    def sport(self) -> int: ...
    @property
    def mss(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def stats(self) -> dict[str, int | None]:
        """syns_sent, syn_retransmits, segments, data_segments, bytes (in order),
        largest_payload, smallest_payload, full_segment (min of both MSS), out_of_order
        (segments after a gap), duplicates (segments with bytes already received),
        short_segments (data short of the full size before the end of the response),
        payload_errors, ignored, malformed, acks_sent, and the times syn_at_us,
        established_at_us, first_byte_at_us, completed_at_us, reset_at_us,
        gave_up_at_us (None until they happen)."""

RecordCipherName = Literal[
    "aes-cbc-sha1",
    "aes-cbc-sha256",
    "3des-cbc-sha1",
    "aes-cbc-sha1-tls10",
    "aes-gcm",
    "chacha20-poly1305",
    "tls13-aead",
    "rc4-sha1",
]

def openconnect_request_mtu(base: int, *, ipv6: bool = False) -> int:
    """openconnect's requested ``X-CSTP-MTU``: base - 82 - 8 - (20|40) (protocol.md §6.1)."""

def dtls_tunnel_mtu(link: int, cipher: RecordCipherName | str, *, ipv6: bool = False) -> int:
    """Tunnel MTU over DTLS for a link MTU, exact model (OpenSSL ``DTLS_get_data_mtu``;
    the ASA's ``X-DTLS-MTU``: 1418 for AES-CBC-SHA1 at 1500). ConfigError for an unknown
    cipher name."""

def ocserv_data_mtu(link: int, cipher: RecordCipherName | str, *, ipv6: bool = False) -> int:
    """ocserv's ``DATA_MTU`` (GnuTLS overhead estimate; 1406 for AES-CBC-SHA1 at 1500)."""

def asa_tls_threshold(mss: int, cipher: RecordCipherName | str) -> int:
    """The ASA's TLS packet threshold for a TCP MSS (UNCONFIRMED model, protocol.md §6.3;
    1347 for tcpmss 1380 with RC4-SHA1, as in %ASA-6-722036)."""

DtlsEventKind = Literal[
    "connected",
    "handshake-failed",
    "data",
    "dpd-request",
    "dpd-response",
    "keepalive",
    "peer-dead",
    "closed",
]

@final
class DtlsEvent:
    """Something that happened on a DTLS session (protocol.md §5).

    Attributes:
        kind: ``connected`` (handshake done; ``version``/``suite`` set, ``text`` is the
            openconnect-style cipher description such as ``(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)``),
            ``handshake-failed`` (``text`` says why, e.g. ``timeout``), ``data`` (an IP
            packet), ``dpd-request`` (already answered), ``dpd-response``, ``keepalive``,
            ``peer-dead`` (no record for more than 2 x DPD), ``closed`` (peer alert).
        payload: the packet or DPD payload.
    """

    @property
    def kind(self) -> DtlsEventKind: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def suite(self) -> str | None: ...

DtlsMode = Literal["legacy", "dtls12", "psk"]
#: why ``DtlsEndpoint.handle_datagram`` dropped a datagram as junk
DatagramDrop = Literal["unknown-peer", "zero-random", "unknown-session", "malformed", "bad-auth"]

@final
class DtlsConnection:
    """One DTLS session, client role: resumption (DTLS 0.9 / 1.2) or PSK-NEGOTIATE.

    Bad datagrams never raise: they are dropped and counted in ``stats()``.
    """

    @staticmethod
    def client(
        now: int,
        *,
        mode: DtlsMode | str,
        cipher: str,
        session_id: bytes,
        master_secret: bytes,
        seed: bytes,
        psk: bytes | None = None,
        handshake_timeout: int = 12_000_000,
        dpd: int = 0,
        keepalive: int = 0,
        echo_dpd_payload: bool = False,
        keylog: bool = False,
        hello_style: str = "minimal",
    ) -> DtlsConnection:
        """Start a client handshake.

        Arguments:
            mode: ``legacy`` (name from X-DTLS-CipherSuite: DTLS 0.9, or DTLS 1.2 for
                ``OC-DTLS1_2-*``), ``dtls12`` (name from X-DTLS12-CipherSuite) or ``psk``.
            cipher: the cipher name the headend chose.
            session_id: X-DTLS-Session-ID bytes, or the X-DTLS-App-ID bytes for PSK.
            master_secret: the 48 bytes sent as X-DTLS-Master-Secret.
            seed: 32 bytes seeding the session's DRBG (randoms, IVs).
            psk: 32 bytes from the TLS exporter (``EXPORTER-openconnect-psk``) for PSK.
            handshake_timeout: give-up time in microseconds (openconnect: 12 s).
            dpd, keepalive: X-DTLS-DPD / X-DTLS-Keepalive seconds (0 = off).
            echo_dpd_payload: answer DPD with the payload (ocserv) or a bare ``04``
                (openconnect 9.01, the default).
            hello_style: ``minimal``, ``openssl``, ``gnutls`` (openconnect 9.01) or ``bare``.

        Raises:
            ConfigError: unsupported cipher name or wrong key sizes.
        """

    def handle_datagram(self, now: int, data: bytes) -> None: ...
    def poll_transmit(self, now: int) -> bytes | None:
        """The next UDP datagram to send, or None."""
    def poll_events(self) -> list[DtlsEvent]: ...
    def next_deadline(self) -> int | None: ...
    def handle_timeout(self, now: int) -> None: ...
    def send_data(self, now: int, packet: bytes) -> None:
        """Send an IP packet (``00`` + packet). LocalProtocolError if not established."""
    def send_control(self, now: int, packet_type: int, payload: bytes) -> None:
        """Send a control payload (``03`` DPD-REQ, ``07`` KEEPALIVE …)."""
    def close(self) -> None: ...
    @property
    def is_established(self) -> bool: ...
    @property
    def version(self) -> str:
        """``DTLS0.9`` or ``DTLS1.2``."""
    @property
    def suite(self) -> str | None:
        """IANA name of the negotiated suite."""
    def data_mtu(self, link_mtu: int, *, ipv6: bool = False) -> int:
        """Largest record plaintext for a link MTU with the negotiated suite (§6.1)."""
    def take_keylog(self) -> list[str]:
        """NSS ``CLIENT_RANDOM <random> <master secret>`` lines for Wireshark."""
    def stats(self) -> dict[str, int]:
        """Datagram/record counters and drops by reason."""

@final
class DtlsEndpoint:
    """Server role on one shared UDP socket: routes ClientHellos by session id (or PSK
    app id) to the sessions CONNECT registered; unknown ids get no answer."""

    def __new__(cls, seed: bytes) -> DtlsEndpoint: ...
    def register(
        self,
        session_key: bytes,
        *,
        mode: DtlsMode | str,
        cipher: str,
        master_secret: bytes | None = None,
        psk: bytes | None = None,
        dpd: int = 0,
        keepalive: int = 0,
        hello_verify: bool = False,
        flight_layout: str = "one-datagram",
        echo_dpd_payload: bool = True,
        keylog: bool = False,
    ) -> None: ...
    def unregister(self, session_key: bytes) -> None: ...
    def handle_datagram(self, now: int, peer: int, data: bytes) -> DatagramDrop | None:
        """A datagram from ``peer`` (an id the caller maps to a socket address). Returns
        why (some of) it was dropped as junk, or None: ``unknown-peer`` (an unknown peer,
        not a ClientHello), ``zero-random`` / ``unknown-session`` (a ClientHello that gets
        no answer), ``malformed`` / ``bad-auth`` (a known peer's record that does not
        parse / authenticate). Replayed and wrong-epoch records are not junk."""
    def poll_transmit(self, now: int) -> tuple[int, bytes] | None: ...
    def poll_events(self) -> list[tuple[bytes, DtlsEvent]]:
        """(session key, event) pairs."""
    def send_data(self, now: int, session_key: bytes, packet: bytes) -> None: ...
    def send_control(
        self, now: int, session_key: bytes, packet_type: int, payload: bytes
    ) -> None: ...
    def close(self, session_key: bytes) -> None: ...
    def next_deadline(self) -> int | None: ...
    def handle_timeout(self, now: int) -> None: ...
    def is_established(self, session_key: bytes) -> bool: ...
    def connection_stats(self, session_key: bytes) -> dict[str, int] | None: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def session_count(self) -> int: ...

# DTLS known answers: the pieces of the core that tests/vectors/dtls.json (protocol.md
# §10.4-§10.6) pins, for tests/unit/test_dtls_vectors.py. Not for the data path.

def dtls_resolve_cipher(header: str, name: str) -> tuple[int, str, str]:
    """``(suite id, version, PRF)`` a CONNECT cipher header selects, e.g.
    ``("X-DTLS-CipherSuite", "AES128-SHA")`` -> ``(0x002F, "DTLS0.9", "tls10")``.

    ``header`` is ``X-DTLS-CipherSuite`` or ``X-DTLS12-CipherSuite``; the version is
    ``DTLS0.9`` or ``DTLS1.2``; the PRF ``tls10``, ``sha256`` or ``sha384``.

    Raises:
        ConfigError: unknown header, or a name that header cannot carry.
    """

def dtls_prf(
    prf: Literal["tls10", "sha256", "sha384"] | str,
    secret: bytes,
    label: bytes,
    seed: bytes,
    length: int,
) -> bytes:
    """``PRF(secret, label, seed)[:length]``: TLS 1.0 (P_MD5 xor P_SHA1, DTLS 0.9) or
    TLS 1.2 P_SHA256 / P_SHA384. The RFC 5705 exporter without context is
    ``dtls_prf(prf, master, label, client_random + server_random, n)``."""

def dtls_key_block(
    prf: Literal["tls10", "sha256", "sha384"] | str,
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    length: int,
) -> bytes:
    """``PRF(master, "key expansion", server_random + client_random)[:length]``
    (randoms are 32 bytes)."""

def dtls_session_keys(
    suite_id: int,
    version: Literal["DTLS0.9", "DTLS1.2"] | str,
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
) -> dict[str, bytes]:
    """The suite's key block, sliced: ``client_mac_key``, ``server_mac_key``,
    ``client_key``, ``server_key``, ``client_iv``, ``server_iv`` (MAC keys empty for
    AEADs; IVs are GCM salts (4) or ChaCha20 IVs (12), empty for CBC)."""

def dtls_verify_data(
    prf: Literal["tls10", "sha256", "sha384"] | str,
    master_secret: bytes,
    sender: Literal["client", "server"],
    transcript: bytes,
) -> bytes:
    """The 12-byte Finished ``verify_data`` of ``sender`` over the handshake
    ``transcript`` (message bodies for DTLS 0.9, with 12-byte headers for DTLS 1.2)."""

def dtls_additional_data(
    content_type: int,
    version: Literal["DTLS0.9", "DTLS1.2"] | str,
    epoch: int,
    seq: int,
    length: int,
) -> bytes:
    """The 13 bytes a record binds (CBC MAC prefix, AEAD AAD):
    ``epoch + seq(6) + type + version + length``."""

def dtls_record_mac(
    suite_id: int,
    version: Literal["DTLS0.9", "DTLS1.2"] | str,
    *,
    mac_key: bytes,
    key: bytes,
    content_type: int,
    epoch: int,
    seq: int,
    plaintext: bytes,
) -> bytes:
    """The HMAC a CBC suite puts into the record carrying ``plaintext``.

    Raises:
        ConfigError: not a CBC suite, or wrong key lengths.
    """

def dtls_seal_record(
    suite_id: int,
    version: Literal["DTLS0.9", "DTLS1.2"] | str,
    *,
    mac_key: bytes,
    key: bytes,
    iv: bytes,
    content_type: int,
    epoch: int,
    seq: int,
    plaintext: bytes,
    cbc_iv: bytes | None = None,
) -> bytes:
    """One whole protected record (13-byte header + fragment), sealed by the code the
    connection uses. ``cbc_iv`` is the explicit IV of a CBC record (block size bytes;
    random when None); AES-GCM's explicit nonce is ``epoch + seq`` as on the wire.

    Raises:
        ConfigError: unknown suite or version, wrong key lengths.
    """

def dtls_open_record(
    suite_id: int,
    *,
    mac_key: bytes,
    key: bytes,
    iv: bytes,
    record: bytes,
    raw: bool = False,
) -> bytes:
    """Authenticate and decrypt one whole record; the plaintext. ``raw=True`` (CBC
    suites only) checks nothing and returns the decrypted ``plaintext + MAC + padding``.

    Raises:
        RemoteProtocolError: not a record, bad length, MAC, padding or tag.
        ConfigError: unknown suite, wrong key lengths, ``raw`` with an AEAD suite.
    """

def dtls_scripted_handshake(
    *,
    mode: DtlsMode | str,
    cipher: str,
    server_mode: DtlsMode | str,
    server_cipher: str,
    master_secret: bytes,
    session_id: bytes,
    client_random: bytes,
    server_random: bytes,
    cbc_iv: bytes | None = None,
    hello_style: str = "minimal",
    client_control: list[int] | None = None,
) -> list[tuple[str, bytes]]:
    """Run a resumption handshake between a core client and a core server whose
    randomness is scripted: the first draw is ``client_random`` / ``server_random``,
    every later one ``cbc_iv`` (the explicit IV of each CBC record; a fixed DRBG's
    output when None). Afterwards the
    client sends one empty control record per type in ``client_control`` (``7``
    keepalive, ``3`` DPD request), each its own datagram.

    Arguments:
        mode, cipher: the client's mode and cipher name (as ``DtlsConnection.client``).
        server_mode, server_cipher: the headend's (as ``DtlsEndpoint.register``).
        hello_style: ``minimal``, ``openssl``, ``gnutls`` or ``bare``.

    Returns:
        Every datagram in wire order as ``("client" | "server", datagram)``.

    Raises:
        ConfigError: bad mode, cipher, key or random sizes (``psk`` is not supported).
        RemoteProtocolError: the handshake did not complete.
    """

# ------------------------------------------------------------------ HDR histograms
@final
class Histogram:
    """An HDR histogram (the core's ``stats::hdr``): integer values, microseconds by
    convention, told apart down to ``lowest`` and tracked up to ``highest`` with
    ``sigfig`` significant decimal digits (1..5) in between; equivalent values share one
    slot. Mergeable across processes through :meth:`to_bytes` / :meth:`from_bytes`.

    Out-of-range values never raise: a value above ``highest`` is recorded as
    ``highest`` and one below zero as 0, both counted in :attr:`clamped` (and in
    :attr:`count`). An empty histogram reads 0 everywhere. Equal histograms (same
    layout, same counts, same clamped) compare equal and encode to equal bytes; pickling
    goes through :meth:`to_bytes`.
    """

    def __new__(cls, lowest: int = 1, highest: int = 3_600_000_000, sigfig: int = 3) -> Histogram:
        """ConfigError unless ``lowest >= 1``, ``highest >= 2 * lowest`` and ``1 <= sigfig
        <= 5`` (and the layout fits in 64 bits)."""
    def record(self, value: int, count: int = 1) -> None:
        """Record ``value`` ``count`` times (0 does nothing); an out-of-range value is
        clamped, never an error (only an int beyond 128 bits is an OverflowError)."""
    def merge(self, other: Histogram) -> None:
        """Add every sample of ``other`` (itself too). Same layouts: exactly the histogram
        of both sets of samples; different layouts: ``other``'s slots are recorded again
        at their lowest equivalent value. ``clamped`` adds up (at most :attr:`count`)."""
    def value_at_percentile(self, p: float) -> int:
        """The highest value equivalent to the sample of rank ``ceil(p / 100 * count)``
        (never under-reports); ``p == 0`` is :attr:`min`. ConfigError unless
        ``0 <= p <= 100``."""
    def percentiles(self, ps: Sequence[float]) -> list[int]:
        """:meth:`value_at_percentile` of each of ``ps``, in order."""
    def buckets(self) -> list[tuple[int, int, int]]:
        """``(lowest, highest, count)`` of every non-empty slot, lowest values first
        (the distribution, e.g. for CSV export)."""
    def reset(self) -> None:
        """Forget every sample (and the clamped count); the layout stays."""
    def copy(self) -> Histogram:
        """An independent copy."""
    def to_bytes(self) -> bytes:
        """The canonical encoding (``TSH`` version 1: layout, clamped count, then the
        non-zero counts), compact enough to send every second."""
    @staticmethod
    def from_bytes(data: bytes) -> Histogram:
        """A histogram from :meth:`to_bytes`'s bytes; RemoteProtocolError with a
        one-line reason for anything else (never a crash)."""
    def __reduce__(self) -> tuple[Callable[[bytes], Histogram], tuple[bytes]]: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]
    @property
    def count(self) -> int:
        """Values recorded, clamped ones included."""
    @property
    def clamped(self) -> int:
        """Values recorded out of range (above ``highest`` or below zero)."""
    @property
    def min(self) -> int:
        """The lowest value equivalent to the smallest sample (0 when empty)."""
    @property
    def max(self) -> int:
        """The highest value equivalent to the largest sample (0 when empty)."""
    @property
    def mean(self) -> float:
        """Mean of the samples' median equivalent values (0.0 when empty)."""
    @property
    def stdev(self) -> float:
        """Population standard deviation, as :attr:`mean` (0.0 when empty)."""
    @property
    def lowest(self) -> int: ...
    @property
    def highest(self) -> int: ...
    @property
    def sigfig(self) -> int: ...
