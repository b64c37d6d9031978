"""Unit tests for tunnelswarm.asa.mtu, the mock ASA's MTU model (protocol.md §6.3, §6.4,
§10.7; docs/mock-asa-mtu.md)."""

from __future__ import annotations

import pytest

from tunnelswarm import _core
from tunnelswarm.asa.mtu import (
    ASP_DROP_NO_FRAGMENT,
    DEFAULT_ANYCONNECT_MTU,
    DEFAULT_INTERFACE_MTU,
    DEFAULT_TCPMSS,
    DEFAULT_TLS_CIPHER,
    AsaMtu,
    DropTooBig,
    Forward,
    Fragment,
    MtuConfig,
    dtls_record_cipher,
    effective_mss,
    negotiate,
    tls_record_cipher,
)
from tunnelswarm.errors import ConfigError, LocalProtocolError

# --- defaults and the numbers Cisco confirms ----------------------------------------------


def test_defaults() -> None:
    assert DEFAULT_INTERFACE_MTU == 1500
    assert DEFAULT_TCPMSS == 1380
    assert DEFAULT_ANYCONNECT_MTU == 1406
    assert DEFAULT_TLS_CIPHER == "rc4-sha1"
    assert ASP_DROP_NO_FRAGMENT == "mp-svc-no-fragment"
    config = MtuConfig()
    assert config.anyconnect_mtu is None
    assert config.client_mtu_policy == "ignore"


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-SHA", "DHE-RSA-AES256-SHA"])
def test_tech_note_numbers(cipher: str) -> None:
    """[TN116881]: X-DTLS-MTU 1418 and the 722036 threshold 1347 on the defaults."""
    mtu = negotiate(MtuConfig(), cipher)
    assert mtu.dtls_mtu == 1418
    assert mtu.cstp_mtu == 1347
    assert mtu.tls_threshold == 1347
    assert mtu.mss == 1380
    assert mtu.path_mtu == 1500
    assert mtu.headers() == {"X-CSTP-MTU": "1347", "X-DTLS-MTU": "1418"}


def test_tcpmss_1460_gives_1427() -> None:
    """The tech note's third workaround: ``sysopt connection tcpmss 1460`` → TLS MTU 1427
    (RC4/SHA1), above the DTLS 1418."""
    mtu = negotiate(MtuConfig(tcpmss=1460), "AES256-SHA")
    assert mtu.cstp_mtu == 1427
    assert mtu.dtls_mtu == 1418
    assert mtu.cstp_mtu > mtu.dtls_mtu


def test_tcpmss_disabled_uses_the_path() -> None:
    assert negotiate(MtuConfig(tcpmss=0), "AES256-SHA").cstp_mtu == 1427
    assert effective_mss(1500, 0) == 1460
    assert effective_mss(1500, 0, ipv6=True) == 1440
    assert effective_mss(1500, 1380) == 1380
    assert effective_mss(1400, 1380) == 1360
    assert effective_mss(30, 0) == 0


@pytest.mark.parametrize(
    ("tls_cipher", "threshold"),
    [
        ("rc4-sha1", 1347),  # confirmed (tech note)
        ("aes-cbc-sha1-tls10", 1331),  # model: TLS 1.0 implicit IV
        ("aes-cbc-sha1", 1315),  # model: TLS 1.1/1.2 explicit IV
        ("aes-gcm", 1343),  # model: TLS 1.2 AES-GCM
    ],
)
def test_tls_threshold_models(tls_cipher: str, threshold: int) -> None:
    """§6.3 "other values derived with the same model" (UNCONFIRMED models) at tcpmss 1380."""
    mtu = negotiate(MtuConfig(tls_cipher=tls_cipher), "AES128-SHA")
    assert mtu.tls_threshold == threshold
    assert mtu.cstp_mtu == threshold
    assert mtu.dtls_mtu == 1418


@pytest.mark.parametrize(
    ("cipher", "dtls_mtu"),
    [
        ("AES128-SHA", 1418),
        ("DES-CBC3-SHA", 1426),
        ("AES128-GCM-SHA256", 1434),
        ("AES256-GCM-SHA384", 1434),
        ("ECDHE-RSA-AES256-GCM-SHA384", 1434),
        ("OC-DTLS1_2-AES128-GCM", 1434),
        ("OC-DTLS1_2-AES256-GCM", 1434),
        ("OC2-DTLS1_2-CHACHA20-POLY1305", 1442),
    ],
)
def test_dtls_mtu_per_cipher(cipher: str, dtls_mtu: int) -> None:
    """§6.1 table (exact model) for a 1500-byte path."""
    assert negotiate(MtuConfig(), cipher).dtls_mtu == dtls_mtu


def test_dtls_mtu_reuses_the_core() -> None:
    for path in (576, 1280, 1400, 1500, 9000):
        for name, core in (("AES256-SHA", "aes-cbc-sha1"), ("AES256-GCM-SHA384", "aes-gcm")):
            mtu = negotiate(MtuConfig(interface_mtu=path, tcpmss=0), name)
            assert mtu.dtls_mtu == _core.dtls_tunnel_mtu(path, core)
            assert mtu.tls_threshold == _core.asa_tls_threshold(path - 40, "rc4-sha1")


def test_ipv6_outer() -> None:
    mtu = negotiate(MtuConfig(), "AES256-SHA", ipv6=True)
    assert mtu.dtls_mtu == 1386  # 1500 − 48 − 13 = 1439; 1423 → floor16 1408; − 21 − 1
    assert mtu.cstp_mtu == 1347  # tcpmss 1380 < 1500 − 60


def test_dtls_off() -> None:
    mtu = negotiate(MtuConfig(), None)
    assert mtu.dtls_mtu is None
    assert mtu.dtls_cipher is None
    assert mtu.headers() == {"X-CSTP-MTU": "1347"}
    with pytest.raises(LocalProtocolError):
        mtu.threshold("dtls")


# --- anyconnect mtu -----------------------------------------------------------------------


def test_explicit_default_anyconnect_mtu_caps_dtls_only_above_it() -> None:
    mtu = negotiate(MtuConfig(anyconnect_mtu=DEFAULT_ANYCONNECT_MTU), "AES256-SHA")
    assert mtu.dtls_mtu == 1406
    assert mtu.cstp_mtu == 1347
    assert mtu.tls_threshold == 1347


def test_anyconnect_mtu_caps_both() -> None:
    """§3.3.3's illustrative ASA answer: X-CSTP-MTU 1300, X-DTLS-MTU 1300."""
    mtu = negotiate(MtuConfig(anyconnect_mtu=1300), "DHE-RSA-AES256-SHA")
    assert mtu.headers() == {"X-CSTP-MTU": "1300", "X-DTLS-MTU": "1300"}
    assert mtu.tls_threshold == 1347
    assert mtu.threshold("tls") == 1300


def test_anyconnect_mtu_above_the_model_changes_nothing() -> None:
    mtu = negotiate(MtuConfig(anyconnect_mtu=1462, tcpmss=1460), "AES256-SHA")
    assert (mtu.dtls_mtu, mtu.cstp_mtu) == (1418, 1427)


def test_equal_mtus_workaround() -> None:
    """Tech note option 1: an ``anyconnect mtu`` below the TLS MTU makes TLS and DTLS MTUs
    equal, so the client never needs the one-minute reconnect."""
    mtu = negotiate(MtuConfig(anyconnect_mtu=1340), "AES256-SHA")
    assert mtu.dtls_mtu == mtu.cstp_mtu == 1340


# --- the client's headers (UNCONFIRMED, our choice) ---------------------------------------


def test_client_base_mtu_lowers_the_path() -> None:
    mtu = negotiate(MtuConfig(), "AES256-SHA", client_base_mtu=1406, client_mtu=1296)
    assert mtu.path_mtu == 1406
    assert mtu.dtls_mtu == _core.dtls_tunnel_mtu(1406, "aes-cbc-sha1") == 1322
    assert mtu.mss == 1366
    assert mtu.cstp_mtu == 1333  # 1366 − 5 − 20 − 8


def test_client_base_mtu_never_raises_the_path() -> None:
    mtu = negotiate(MtuConfig(), "AES256-SHA", client_base_mtu=65535)
    assert (mtu.path_mtu, mtu.dtls_mtu, mtu.cstp_mtu) == (1500, 1418, 1347)


def test_bogus_client_base_mtu_is_ignored() -> None:
    mtu = negotiate(MtuConfig(), "AES256-SHA", client_base_mtu=100)
    assert (mtu.path_mtu, mtu.dtls_mtu) == (1500, 1418)


def test_openconnect_request_is_ignored_by_default() -> None:
    """openconnect 9.01 asks base 1500 / X-CSTP-MTU 1390 and gets 1418 + 1347 (§3.3.3)."""
    asked = _core.openconnect_request_mtu(1500)
    assert asked == 1390
    mtu = negotiate(MtuConfig(), "AES256-SHA", client_base_mtu=1500, client_mtu=asked)
    assert (mtu.dtls_mtu, mtu.cstp_mtu) == (1418, 1347)


def test_client_mtu_cap_policy() -> None:
    config = MtuConfig(client_mtu_policy="cap")
    mtu = negotiate(config, "AES256-SHA", client_base_mtu=1500, client_mtu=1390)
    assert (mtu.dtls_mtu, mtu.cstp_mtu) == (1390, 1347)
    mtu = negotiate(config, "AES256-SHA", client_mtu=1300)
    assert (mtu.dtls_mtu, mtu.cstp_mtu) == (1300, 1300)
    assert negotiate(config, "AES256-SHA").dtls_mtu == 1418


# --- DF / fragment / ICMP (§6.4) ----------------------------------------------------------


@pytest.fixture
def tech_note() -> AsaMtu:
    return negotiate(MtuConfig(), "AES256-SHA")


def test_tech_note_drop(tech_note: AsaMtu) -> None:
    """DTLS down: the inside server's 1418-byte DF segments meet the 1347 TLS threshold:
    dropped (mp-svc-no-fragment) with ICMP "fragmentation needed", MTU 1347."""
    verdict = tech_note.decide(1418, True, "tls")
    assert verdict == DropTooBig(threshold=1347, icmp_mtu=1347)
    assert isinstance(verdict, DropTooBig)
    assert verdict.asp_drop == "mp-svc-no-fragment"


def test_decisions(tech_note: AsaMtu) -> None:
    assert tech_note.decide(1347, True, "tls") == Forward()
    assert tech_note.decide(1348, True, "tls") == DropTooBig(1347, 1347)
    assert tech_note.decide(1348, False, "tls") == Fragment(mtu=1347)
    assert tech_note.decide(1348, True, "tls", True) == Fragment(mtu=1347)
    assert tech_note.decide(1418, True, "dtls") == Forward()
    assert tech_note.decide(1419, True, "dtls") == DropTooBig(1418, 1418)
    assert tech_note.decide(1419, False, "dtls") == Fragment(1418)
    assert tech_note.decide(1419, True, "dtls", df_bit_ignore=True) == Fragment(1418)
    assert tech_note.decide(0, True, "tls") == Forward()


def test_ipv6_inner_is_never_fragmented(tech_note: AsaMtu) -> None:
    assert tech_note.decide(1348, False, "tls", True, ipv6_inner=True) == DropTooBig(1347, 1347)
    assert tech_note.decide(1347, False, "tls", ipv6_inner=True) == Forward()


def test_decide_misuse(tech_note: AsaMtu) -> None:
    with pytest.raises(LocalProtocolError):
        tech_note.decide(-1, True, "tls")
    with pytest.raises(LocalProtocolError):
        tech_note.decide(100, True, "ipsec")  # type: ignore[arg-type]


def test_decide_uses_the_capped_mtu() -> None:
    mtu = negotiate(MtuConfig(anyconnect_mtu=1300), "AES256-SHA")
    assert mtu.decide(1301, True, "dtls") == DropTooBig(1300, 1300)
    assert mtu.decide(1300, True, "dtls") == Forward()


# --- cipher names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "core"),
    [
        ("AES128-SHA", "aes-cbc-sha1"),
        ("aes256-sha", "aes-cbc-sha1"),
        ("DES-CBC3-SHA", "3des-cbc-sha1"),
        ("AES128-GCM-SHA256", "aes-gcm"),
        ("AES256-GCM-SHA384", "aes-gcm"),
        ("OC-DTLS1_2-AES128-GCM", "aes-gcm"),
        ("OC-DTLS1_2-AES256-GCM", "aes-gcm"),
        ("aes-gcm", "aes-gcm"),
    ],
)
def test_dtls_record_cipher(name: str, core: str) -> None:
    assert dtls_record_cipher(name) == core


@pytest.mark.parametrize(
    "name", ["PSK-NEGOTIATE", "RC4-SHA", "rc4-sha1", "tls13-aead", "", "NULL-SHA"]
)
def test_dtls_record_cipher_refuses(name: str) -> None:
    with pytest.raises(ConfigError):
        dtls_record_cipher(name)
    with pytest.raises(ConfigError):
        negotiate(MtuConfig(), name)


@pytest.mark.parametrize(
    ("suite", "version", "core"),
    [
        ("RC4-SHA", "TLSv1", "rc4-sha1"),
        ("AES128-SHA", "TLSv1", "aes-cbc-sha1-tls10"),
        ("AES256-SHA", "TLSv1.0", "aes-cbc-sha1-tls10"),
        ("AES256-SHA", "TLSv1.1", "aes-cbc-sha1"),
        ("DHE-RSA-AES256-SHA", "TLSv1.2", "aes-cbc-sha1"),
        ("AES256-SHA256", "TLSv1.2", "aes-cbc-sha256"),
        ("DES-CBC3-SHA", "TLSv1.2", "3des-cbc-sha1"),
        ("ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2", "aes-gcm"),
        ("TLS_AES_128_GCM_SHA256", "TLSv1.3", "tls13-aead"),
        ("rc4-sha1", "TLSv1.2", "rc4-sha1"),
    ],
)
def test_tls_record_cipher(suite: str, version: str, core: str) -> None:
    assert tls_record_cipher(suite, version) == core
    negotiate(MtuConfig(tls_cipher=core), "AES128-SHA")  # the core knows the name


@pytest.mark.parametrize(("suite", "version"), [("NULL-MD5", "TLSv1.2"), ("RC4-SHA", "SSLv3")])
def test_tls_record_cipher_refuses(suite: str, version: str) -> None:
    with pytest.raises(ConfigError):
        tls_record_cipher(suite, version)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interface_mtu": 63},
        {"interface_mtu": 9199},
        {"tcpmss": 47},
        {"tcpmss": 65536},
        {"anyconnect_mtu": 575},
        {"anyconnect_mtu": 1463},
        {"tls_cipher": "RC4-SHA"},
        {"client_mtu_policy": "min"},
    ],
)
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MtuConfig(**kwargs)  # type: ignore[arg-type]


def test_tiny_path_saturates() -> None:
    mtu = negotiate(MtuConfig(interface_mtu=64, tcpmss=0), "AES256-SHA")
    assert mtu.dtls_mtu == 0
    assert mtu.cstp_mtu == 0
    assert mtu.decide(1, False, "tls") == Fragment(0)
