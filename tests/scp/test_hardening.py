"""The Storage SCP cannot be blocked or made to grow by a peer that misbehaves on purpose.

Raw sockets against the real ``manage.py run_scp`` process on a free port (its memory is that
process's own, and its limits come from the environment as in production), with dcmtk's echoscu
as the PACS that must still get through. Each raw client binds its own loopback address
(127.0.0.2, 127.0.0.3, ...) so that the SCP sees distinct peers and one test's connections do not
count against another's. The one test that needs to see which PDUs the SCP decoded runs the SCP
in this process instead (``running_scp``), where its events can be observed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_ECHO_RQ
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

from tests.support.binaries import require_binary
from tests.support.network import free_port
from tests.support.scp import running_scp

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

NEGOTIATION_TIMEOUT = 2.0
PER_ADDRESS = 8
MAX_ASSOCIATIONS = 16
MAX_PDU = 65536
NETWORK_TIMEOUT = 3.0
VERIFICATION = "1.2.840.10008.1.1"
# A-ABORT PDU from the service provider (source 2): reason 6 "invalid PDU parameter value",
# reason 0 "not specified".
ABORT_INVALID_PARAMETER = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x06])
ABORT_NOT_SPECIFIED = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x00])
# A-ASSOCIATE-RJ: rejected permanent (1), by the service user (1), calling AE not recognised (3).
REJECT_CALLING_AE = bytes([0x03, 0, 0, 0, 0, 4, 0, 0x01, 0x01, 0x03])


@dataclass
class ScpProcess:
    pid: int
    port: int
    log: Path
    host: str = "127.0.0.1"
    ae_title: str = "LIGHTBOX"


def database_url(tmp_path: Path) -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    # The SQLite test database lives in this process's memory; these tests store nothing.
    return f"sqlite:///{tmp_path / 'scp.sqlite3'}"


@pytest.fixture(scope="module")
def scp_process(tmp_path_factory, django_db_setup) -> Iterator[ScpProcess]:
    tmp_path = tmp_path_factory.mktemp("scp")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
        "DATABASE_URL": database_url(tmp_path),
        "LIGHTBOX_OBJECT_STORE": (tmp_path / "objects").as_uri(),
        "LIGHTBOX_TEMP_DIR": str(tmp_path / "tmp"),
        "LIGHTBOX_SCP_ALLOWED_AES": "ECHOSCU,PACS@127.0.0.9",
        "LIGHTBOX_SCP_NEGOTIATION_TIMEOUT": str(NEGOTIATION_TIMEOUT),
        "LIGHTBOX_SCP_MAX_ASSOCIATIONS": str(MAX_ASSOCIATIONS),
        "LIGHTBOX_SCP_MAX_ASSOCIATIONS_PER_ADDRESS": str(PER_ADDRESS),
        "LIGHTBOX_SCP_MAX_PDU": str(MAX_PDU),
        "LIGHTBOX_SCP_TIMEOUT": str(NETWORK_TIMEOUT),
    }
    log = tmp_path / "scp.log"
    with log.open("w") as log_file:
        scp = subprocess.Popen(
            [sys.executable, "manage.py", "run_scp", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = ScpProcess(pid=scp.pid, port=port, log=log)
    try:
        wait_for(lambda: echoscu(running).returncode == 0, within=30)
        yield running
    finally:
        scp.terminate()
        try:
            scp.wait(timeout=30)
        except subprocess.TimeoutExpired:
            scp.kill()
            scp.wait()


def echoscu(scp: ScpProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("echoscu"), "-aet", "ECHOSCU", "-aec", scp.ae_title, scp.host, str(scp.port)],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_for(condition: Callable[[], bool], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def connect(scp: ScpProcess, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((scp.host, scp.port))
    return sock


def accepted_from(pid: int, source: str) -> int:
    """How many connections from ``source`` the SCP process has accepted and holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    # /proc/net/tcp gives addresses as little-endian hex, e.g. 0200007F for 127.0.0.2.
    remote = socket.inet_aton(source)[::-1].hex().upper()
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        count += fields[2].startswith(remote + ":") and fields[9] in inodes
    return count


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def read_until_closed(sock: socket.socket, *, within: float) -> bytes | None:
    """Everything the SCP sent before it closed the connection; None if still open after ``within``."""
    deadline = time.monotonic() + within
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def sent_before_dropped(sock: socket.socket, pieces: Iterable[tuple[bytes, float]]) -> int | None:
    """Bytes sent, each piece followed by its pause, before the SCP shut the connection; None if
    it took them all."""
    sent = 0
    for piece, pause in pieces:
        try:
            sock.sendall(piece)
        except OSError:  # broken pipe, or reset
            return sent
        sent += len(piece)
        time.sleep(pause)
    return None


def still_open(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True


def read_pdu(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    pdu = b""
    while len(pdu) < 6 or len(pdu) < 6 + struct.unpack(">L", pdu[2:6])[0]:
        chunk = sock.recv(65536)
        assert chunk, "the SCP closed the connection"
        pdu += chunk
    return pdu


def associate(sock: socket.socket) -> None:
    sock.sendall(association_request("ECHOSCU"))
    assert read_pdu(sock)[0] == 0x02  # A-ASSOCIATE-AC


def pdu_header(pdu_type: int, length: int) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, length)


def association_request(calling_ae: str, called_ae: str = "LIGHTBOX") -> bytes:
    request = A_ASSOCIATE()
    request.application_context_name = "1.2.840.10008.3.1.1.1"
    request.calling_ae_title = calling_ae
    request.called_ae_title = called_ae
    context = build_context(VERIFICATION)
    context.context_id = 1
    request.presentation_context_definition_list = [context]
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.7433.1"
    request.user_information = [max_length, implementation]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(request)
    return pdu.encode()


def echo_request() -> bytes:
    primitive = C_ECHO()
    primitive.MessageID = 1
    primitive.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(primitive)
    return b"".join(P_DATA_TF(p).encode() for p in message.encode_msg(1, 16384))


def refusals(scp: ScpProcess) -> str:
    return "\n".join(
        line for line in scp.log.read_text().splitlines() if "refused" in line or "dropped" in line
    )


def test_silent_connections_take_no_association_slot_and_are_dropped_after_the_negotiation_timeout(
    scp_process,
):
    memory_before = rss(scp_process.pid)
    # As many silent connections as there are association slots, within each address's limit.
    sources = ["127.0.0.2", "127.0.0.3"]
    silent = [connect(scp_process, sources[i % 2]) for i in range(MAX_ASSOCIATIONS)]
    try:
        wait_for(
            lambda: sum(accepted_from(scp_process.pid, s) for s in sources) == MAX_ASSOCIATIONS, within=10
        )
        grown = rss(scp_process.pid) - memory_before

        result = echoscu(scp_process)

        assert result.returncode == 0, result.stdout + result.stderr
        assert grown < 6 * MB, f"{MAX_ASSOCIATIONS} silent connections grew the SCP by {grown / MB:.1f} MB"
        for sock in silent:
            assert read_until_closed(sock, within=NEGOTIATION_TIMEOUT + 3) == b""
    finally:
        for sock in silent:
            sock.close()


def test_a_pdu_declared_longer_than_the_limit_is_aborted_at_once_without_being_read(scp_process):
    with connect(scp_process, "127.0.0.4") as sock:
        sock.sendall(pdu_header(0x01, 0xFFFF_FFF0))  # an A-ASSOCIATE-RQ of ~4 GB, then nothing

        answer = read_until_closed(sock, within=NEGOTIATION_TIMEOUT / 2)

    assert answer == ABORT_INVALID_PARAMETER
    assert "connection from 127.0.0.4 dropped: it declared a PDU of 4294967280 bytes" in refusals(scp_process)
    assert echoscu(scp_process).returncode == 0


def test_a_p_data_pdu_longer_than_the_negotiated_maximum_is_aborted_unread(scp_process):
    with connect(scp_process, "127.0.0.5") as sock:
        associate(sock)

        sock.sendall(pdu_header(0x04, MAX_PDU + 1))
        answer = read_until_closed(sock, within=NEGOTIATION_TIMEOUT / 2)

    assert answer == ABORT_INVALID_PARAMETER


def test_streaming_into_a_huge_declared_pdu_is_cut_off_and_does_not_grow_the_scp(scp_process):
    before = rss(scp_process.pid)
    drip = [(bytes(16 * 1024), 0.005)] * 64  # 1 MB in small pieces, then as fast as loopback goes
    stream = [(bytes(64 * 1024), 0.0)] * (63 * 16)
    with connect(scp_process, "127.0.0.6") as sock:
        sock.sendall(pdu_header(0x01, 0xFFFF_FFF0))
        echo = echoscu(scp_process)  # a real peer, while the huge PDU is declared
        sent = sent_before_dropped(sock, drip + stream)
    grown = rss(scp_process.pid) - before

    assert echo.returncode == 0, echo.stdout + echo.stderr

    assert sent is not None, "the SCP read all 64 MB"
    assert sent < 16 * MB, f"the SCP went on reading: {sent / MB:.0f} MB sent"
    assert grown < 4 * MB, f"the SCP grew by {grown / MB:.1f} MB"


def test_an_association_request_dripped_in_slowly_is_dropped_at_the_negotiation_timeout(scp_process):
    request = association_request("ECHOSCU")
    start = time.monotonic()

    echoes: list[int] = []

    def drip() -> Iterator[tuple[bytes, float]]:
        for index, byte in enumerate(request):  # a byte every 100 ms: each within any idle timeout
            if time.monotonic() - start > NEGOTIATION_TIMEOUT + 3:
                return
            if index == 3:
                echoes.append(echoscu(scp_process).returncode)  # a real peer, during the drip
            yield bytes([byte]), 0.1

    with connect(scp_process, "127.0.0.7") as sock:
        sent = sent_before_dropped(sock, drip())
        answer = read_until_closed(sock, within=1)
    elapsed = time.monotonic() - start

    assert sent is not None, "the SCP was still reading the drip"
    assert echoes == [0]
    assert answer in (ABORT_NOT_SPECIFIED, b"")  # the abort may be lost to the reset
    assert NEGOTIATION_TIMEOUT - 0.5 < elapsed < NEGOTIATION_TIMEOUT + 3
    assert "connection from 127.0.0.7 dropped: its association request did not arrive in time" in refusals(
        scp_process
    )


def test_a_pdu_trickled_in_once_associated_is_dropped_when_the_network_timeout_has_passed(scp_process):
    with connect(scp_process, "127.0.0.12") as sock:
        associate(sock)
        start = time.monotonic()
        sock.sendall(pdu_header(0x04, 1000))  # within the maximum, but sent a byte at a time

        echoes: list[int] = []

        def drip() -> Iterator[tuple[bytes, float]]:
            while time.monotonic() - start < NETWORK_TIMEOUT + 3:
                if not echoes:
                    echoes.append(echoscu(scp_process).returncode)  # a real peer, during the drip
                yield b"\x00", 0.2

        sent = sent_before_dropped(sock, drip())
    elapsed = time.monotonic() - start

    assert echoes == [0]
    assert sent is not None, "the SCP was still reading the drip"
    assert NETWORK_TIMEOUT - 0.5 < elapsed < NETWORK_TIMEOUT + 3
    assert "connection from 127.0.0.12 dropped: a PDU did not arrive in time" in refusals(scp_process)


def test_one_address_cannot_hold_more_connections_than_its_limit_while_others_are_served(scp_process):
    held = [connect(scp_process, "127.0.0.8") for _ in range(PER_ADDRESS)]
    try:
        wait_for(lambda: accepted_from(scp_process.pid, "127.0.0.8") == PER_ADDRESS, within=10)

        with connect(scp_process, "127.0.0.8") as extra:
            refused = read_until_closed(extra, within=NEGOTIATION_TIMEOUT / 2)
        ae = AE(ae_title="ECHOSCU")
        ae.add_requested_context(VERIFICATION)
        other = ae.associate(
            scp_process.host, scp_process.port, ae_title="LIGHTBOX", bind_address=("127.0.0.10", 0)
        )
        try:
            assert other.is_established
            assert other.send_c_echo().Status == 0x0000
        finally:
            other.release()
        assert echoscu(scp_process).returncode == 0
        assert all(still_open(sock) for sock in held)  # accepted, waiting for their request
    finally:
        for sock in held:
            sock.close()

    assert refused == b""
    assert f"connection from 127.0.0.8 refused: {PER_ADDRESS} already open from that address" in refusals(
        scp_process
    )


def test_a_calling_ae_not_allowed_from_its_address_is_rejected_before_what_it_sent_next_is_read(
    scp_process,
):
    with connect(scp_process, "127.0.0.11") as sock:
        # PACS may store only from 127.0.0.9; it sends a C-ECHO right behind its request.
        sock.sendall(association_request("PACS") + echo_request())

        answer = read_until_closed(sock, within=5)

    assert answer == REJECT_CALLING_AE
    assert "association from PACS@127.0.0.11 refused: not in LIGHTBOX_SCP_ALLOWED_AES" in refusals(
        scp_process
    )


@pytest.mark.parametrize("calling_ae", ["INTRUDER", "PACS"])
def test_the_scp_decodes_nothing_after_the_request_of_a_refused_ae(calling_ae):
    received: list[str] = []
    with running_scp(allowed_aes=["PACS@10.9.9.9"]) as scp:
        scp.server.bind(evt.EVT_PDU_RECV, lambda event: received.append(type(event.pdu).__name__))
        with socket.create_connection((scp.host, scp.port)) as sock:
            sock.sendall(association_request(calling_ae) + echo_request())
            answer = read_until_closed(sock, within=5)

    assert answer == REJECT_CALLING_AE
    assert received == ["A_ASSOCIATE_RQ"]
