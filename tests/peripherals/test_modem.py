"""agent.peripherals.modem against emulated modems on pty pairs: vendor ICCID variants, echo, URCs,
garbage, errors, timeouts, a modem that disappears and returns; the value helpers; a fake-clock port."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from agent.errors import TransportError
from agent.peripherals.modem import (
    AtLines,
    Modem,
    ModemError,
    ModemPortError,
    SignalQuality,
    login_iccid,
    luhn_ok,
    mask_iccid,
    parse_iccid,
    swap_nibbles,
)
from tests.peripherals.devices import FakeModem, PtyDevice, ef_iccid

ICCID = "89860000000000000001"  # Luhn-valid
ICCID19 = "8944500601234567890"  # 19 digits


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "ttyMODEM"


def serve(link: Path, devices: list[PtyDevice], fake: FakeModem) -> PtyDevice:
    device = PtyDevice(link, handler=fake)
    devices.append(device)
    return device


@pytest.mark.parametrize(
    ("vendor", "variant"),
    [("ublox", "AT+CCID"), ("sim800", "AT+CCID"), ("quectel", "AT+QCCID"), ("simcom", "AT+ICCID"),
     ("crsm", "AT+CRSM=176,12258,0,0,10")],
)
def test_each_vendor_variant_gives_the_iccid(link: Path, devices: list[PtyDevice], vendor: str,
                                             variant: str) -> None:
    fake = FakeModem(vendor=vendor, iccid=ICCID)
    serve(link, devices, fake)
    with Modem.open(str(link), timeout_s=0.5) as modem:
        assert modem.read_iccid() == ICCID
        assert modem.variant == variant
        assert modem.read_iccid() == ICCID  # the variant that worked is tried first next time
    assert fake.commands[-1] == variant
    assert fake.commands[:2] == ["AT", "ATE0"]


@pytest.mark.parametrize("vendor", ["quectel", "crsm"])
def test_a_19_digit_iccid_loses_its_f_padding_and_the_login_carries_it_padded(
        link: Path, devices: list[PtyDevice], vendor: str) -> None:
    serve(link, devices, FakeModem(vendor=vendor, iccid=ICCID19))
    with Modem.open(str(link), timeout_s=0.5) as modem:
        iccid = modem.read_iccid()
    assert iccid == ICCID19
    assert login_iccid(iccid) == ICCID19 + "F"
    assert login_iccid(ICCID) == ICCID


def test_echo_that_stays_on_urcs_and_garbage_are_filtered(link: Path, devices: list[PtyDevice]) -> None:
    fake = FakeModem(vendor="quectel", iccid=ICCID, sticky_echo=True, urcs=("+CREG: 1,5", "RING"),
                     garbage=b"\xff\x00~\x1b[noise\r\n+QIND: SMS DONE\r\n")
    serve(link, devices, fake)
    with Modem.open(str(link), timeout_s=0.5) as modem:
        assert modem.read_iccid() == ICCID
        quality = modem.signal_quality()
        lines = modem.command("AT+CSQ")
    assert lines == ["~[noise", "+CSQ: 23,99"]  # no echo, no URC; garbage stays for the parsers to skip
    assert quality == SignalQuality(23, 99)
    assert "RING" in modem.urcs and "+CREG: 1,5" in modem.urcs


def test_cme_errors_and_bad_values_fall_through_to_the_next_command(link: Path,
                                                                     devices: list[PtyDevice]) -> None:
    fake = FakeModem(vendor="crsm", iccid=ICCID, cme=True, replies={"AT+CCID": "+CCID: 12345"})
    serve(link, devices, fake)
    with Modem.open(str(link), timeout_s=0.5) as modem:
        assert modem.read_iccid() == ICCID
    assert fake.commands[2:] == ["AT+CCID", "AT+QCCID", "AT+ICCID", "AT+CICCID", "AT+CRSM=176,12258,0,0,10"]


def test_no_iccid_anywhere_is_a_modem_error_naming_each_attempt(link: Path, devices: list[PtyDevice]) -> None:
    fake = FakeModem(vendor="crsm", cme=True,
                     replies={"AT+CRSM=176,12258,0,0,10": '+CRSM: 106,130,""', "AT+QCCID": "+QCCID: junk"})
    serve(link, devices, fake)
    with Modem.open(str(link), timeout_s=0.5) as modem, pytest.raises(ModemError) as info:
        modem.read_iccid()
    text = str(info.value)
    assert "(AT+CCID: +CME ERROR: 4;" in text
    assert "AT+QCCID: no ICCID in the reply" in text
    assert "SIM status 6A82" in text
    assert isinstance(info.value, TransportError)


def test_a_silent_modem_fails_to_open_within_its_timeouts(link: Path, devices: list[PtyDevice]) -> None:
    serve(link, devices, FakeModem(silent=frozenset({"AT"})))
    start = time.monotonic()
    with pytest.raises(ModemError, match="no answer to AT"):
        Modem.open(str(link), timeout_s=0.2)
    assert time.monotonic() - start < 10.0  # bounded (3 × 0.2 s plus scheduling)


def test_a_command_that_times_out_does_not_poison_the_next(link: Path, devices: list[PtyDevice]) -> None:
    fake = FakeModem(vendor="quectel", iccid=ICCID, silent=frozenset({"AT+CCID"}))
    serve(link, devices, fake)
    with Modem.open(str(link), timeout_s=0.3) as modem:
        assert modem.read_iccid() == ICCID
        assert modem.variant == "AT+QCCID"


def test_a_port_that_cannot_be_opened_is_a_modem_error(tmp_path: Path) -> None:
    with pytest.raises(ModemError, match="cannot open"):
        Modem.open(str(tmp_path / "ttyNONE"), timeout_s=0.2)
    with pytest.raises(ModemError, match="no answer to AT"):
        Modem.open("loop://", timeout_s=0.2)  # pyserial URL: our own bytes come back, no OK


def test_the_modem_disappears_and_returns_at_the_same_path(link: Path, devices: list[PtyDevice]) -> None:
    first = serve(link, devices, FakeModem(vendor="ublox", iccid=ICCID))
    modem = Modem.open(str(link), timeout_s=0.3)
    assert modem.read_iccid() == ICCID
    first.disappear()
    with pytest.raises(ModemPortError):  # EIO from the dead pty, never a raw OSError; no other command tried
        modem.read_iccid()
    modem.close()
    with pytest.raises(ModemError):  # the path now leads to a closed pty
        Modem.open(str(link), timeout_s=0.2)
    serve(link, devices, FakeModem(vendor="simcom", iccid=ICCID19))  # a new modem, same path
    with Modem.open(str(link), timeout_s=0.3) as again:
        assert again.read_iccid() == ICCID19


def test_signal_quality_to_dbm() -> None:
    assert SignalQuality(0, 0).dbm == -113
    assert SignalQuality(23, 99).dbm == -67
    assert SignalQuality(31, 7).dbm == -51
    assert SignalQuality(99, 99).dbm is None
    assert SignalQuality(100, 99).dbm == -116 and SignalQuality(191, 99).dbm == -25
    assert SignalQuality(23, 3).ber_class == 3 and SignalQuality(23, 99).ber_class is None


def test_unknown_signal_over_a_pty(link: Path, devices: list[PtyDevice]) -> None:
    serve(link, devices, FakeModem(csq=(99, 99)))
    with Modem.open(str(link), timeout_s=0.5) as modem:
        assert modem.signal_quality().dbm is None


def test_iccid_values() -> None:
    assert parse_iccid(' "89860000000000000001" ') == ICCID
    assert parse_iccid(ICCID19 + "F") == ICCID19
    assert parse_iccid(ICCID19.lower() + "f") == ICCID19
    for bad in ("", "1234", "8986000000000000000A", "898600000000000000011", "89860000000000000001FF1"):
        with pytest.raises(ValueError):
            parse_iccid(bad)
    assert swap_nibbles(ef_iccid(ICCID19)) == ICCID19 + "F"
    assert swap_nibbles("98680010325476981032") == "89860001234567890123"
    with pytest.raises(ValueError):
        swap_nibbles("986")
    with pytest.raises(ValueError):
        swap_nibbles("98XX")
    assert luhn_ok(ICCID) and luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert mask_iccid(ICCID) == "*" * 16 + "0001"
    with pytest.raises(ValueError):
        login_iccid("12")


def test_luhn_failure_is_logged_once_and_masked(link: Path, devices: list[PtyDevice],
                                                caplog: pytest.LogCaptureFixture) -> None:
    bad = "89861616020014100002"  # a real frame's ICCID that fails Luhn: kept
    serve(link, devices, FakeModem(vendor="ublox", iccid=bad))
    with caplog.at_level(logging.DEBUG, logger="agent.peripherals.modem"), \
            Modem.open(str(link), timeout_s=0.5) as modem:
        assert modem.read_iccid() == bad
        assert modem.read_iccid() == bad
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Luhn" in m for m in messages) == 1
    assert not any(bad in m for m in messages)
    assert any(mask_iccid(bad) in m for m in messages)


def test_at_lines_split_any_line_end_and_cut_overlong_lines() -> None:
    lines = AtLines()
    assert lines.feed(b"\r\nOK\r\n+CSQ: 1") == ["OK"]
    assert lines.feed(b"2,99\n\nA\rB") == ["+CSQ: 12,99", "A"]
    assert lines.feed(b"x" * 600) == [] and lines.overlong == 1
    assert lines.feed(b"\r\nOK\r\n") == ["OK"]


class ScriptedPort:
    """An in-memory port: replies are queued when a command is written; reads never block. With the
    fake clock below, a timeout is reached without sleeping."""

    def __init__(self, replies: dict[str, bytes], clock: list[float]) -> None:
        self.replies = replies
        self.clock = clock
        self.pending = b""
        self.closed = False

    @property
    def in_waiting(self) -> int:
        return len(self.pending)

    def read(self, size: int = 1) -> bytes:
        if not self.pending:
            self.clock[0] += 0.1  # a read with nothing to read costs the port's timeout
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def write(self, data: bytes) -> int:
        self.pending += self.replies.get(data.decode().strip(), b"")
        return len(data)

    def close(self) -> None:
        self.closed = True


def test_timeouts_follow_the_injected_clock() -> None:
    now = [0.0]
    port = ScriptedPort({"AT+CSQ": b"\r\n+CSQ: 5,2\r\n\r\nOK\r\n"}, now)
    modem = Modem(port, timeout_s=2.0, clock=lambda: now[0])
    assert modem.signal_quality() == SignalQuality(5, 2)
    with pytest.raises(ModemError, match="timeout"):
        modem.command("AT+CCID")
    assert 2.0 <= now[0] <= 2.3
    with pytest.raises(ModemError, match="ERROR"):
        Modem(ScriptedPort({"AT+CSQ": b"\r\nERROR\r\n"}, now), clock=lambda: now[0]).signal_quality()
    modem.close()
    assert port.closed
