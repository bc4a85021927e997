"""What a peer can make the Storage SCP read, hold and wait for.

pynetdicom's upper layer reads each PDU as its 6-byte header and then as many bytes as that
header declares, blocking until all have arrived; its ARTIM timer is only looked at between two
reads. A peer could therefore declare a 4 GB PDU and trickle it in (the SCP buffers every byte),
or send half a header and go silent (the connection is never dropped). Each accepted connection
is wrapped in a ``GuardedSocket`` instead, which:

- refuses a PDU whose declared length is over the limit before reading any of its body: the
  maximum PDU Lightbox advertises (LIGHTBOX_SCP_MAX_PDU) once the A-ASSOCIATE-RQ is in, and
  ``PRE_NEGOTIATION_MAX_PDU`` for the A-ASSOCIATE-RQ itself. The peer gets an A-ABORT and the
  connection is shut at once;
- gives the A-ASSOCIATE-RQ until the negotiation deadline (LIGHTBOX_SCP_NEGOTIATION_TIMEOUT after
  the connection) to arrive whole, and every later PDU the network timeout (LIGHTBOX_SCP_TIMEOUT)
  from its first byte, however slowly the bytes come;
- reads nothing between the A-ASSOCIATE-RQ and Lightbox's answer, nor after a rejection, so data
  a refused peer sends ahead of the answer is never read.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import AssociationSocket

from sharing.conf import app_settings

if TYPE_CHECKING:
    from pynetdicom.association import Association

logger = logging.getLogger("sharing.scp")

PDU_HEADER_LENGTH = 6
# An A-ASSOCIATE-RQ proposing every storage SOP class with all of Lightbox's transfer syntaxes is
# under 100 KB; user identity items (Kerberos, SAML, JWT) add tens of KB at most.
PRE_NEGOTIATION_MAX_PDU = 1024 * 1024
_READ_CHUNK = 64 * 1024

# A-ABORT, PS3.8 9.3.8: source "service-provider initiated" and its reasons.
_ABORT_SOURCE_PROVIDER = 0x02
_ABORT_REASON_NOT_SPECIFIED = 0x00
_ABORT_REASON_INVALID_PARAMETER = 0x06

# pynetdicom's state machine, PS3.8 9.2. Its upper layer reads ahead of the events it has
# processed, so "Sta1" and "Sta2" may still be current once the A-ASSOCIATE-RQ has been read;
# "Sta3" waits for Lightbox's answer. "Sta13" waits for the connection to close after a
# rejection, a release or an abort.
_BEFORE_THE_ANSWER = frozenset({"Sta1", "Sta2", "Sta3"})
_AWAITING_CLOSE = "Sta13"


@dataclass(frozen=True)
class ScpLimits:
    """Everything that bounds one SCP process, from LIGHTBOX_SCP_* settings."""

    negotiation_timeout: float
    network_timeout: float
    max_pdu: int  # 0: unlimited, as DICOM allows (and as the SCP then advertises)
    max_associations: int
    max_associations_per_address: int

    @classmethod
    def from_settings(cls) -> ScpLimits:
        return cls(
            negotiation_timeout=app_settings.SCP_NEGOTIATION_TIMEOUT,
            network_timeout=app_settings.SCP_TIMEOUT,
            max_pdu=app_settings.SCP_MAX_PDU,
            max_associations=app_settings.SCP_MAX_ASSOCIATIONS,
            max_associations_per_address=app_settings.SCP_MAX_ASSOCIATIONS_PER_ADDRESS,
        )


class GuardedSocket(AssociationSocket):
    """An acceptor's connection that bounds each PDU's length and the time it takes to arrive.

    pynetdicom's upper layer calls ``recv(6)`` for a PDU's header, then ``recv(length)`` for its
    body; returning fewer bytes than asked is how it learns the connection is gone, so that is how
    a refused PDU ends here too (after the A-ABORT has been sent and the connection shut).
    """

    def __init__(
        self, assoc: Association, client_socket: socket.socket, *, peer: str, limits: ScpLimits
    ) -> None:
        super().__init__(assoc, client_socket=client_socket)
        self._peer = peer
        self._limits = limits
        self._negotiation_deadline = time.monotonic() + limits.negotiation_timeout
        self._deadline = self._negotiation_deadline
        self._request_read = False  # the first PDU: the A-ASSOCIATE-RQ
        self._body_pending = False
        self._refused = False
        # Sends wait no longer than this either: a peer that stops reading cannot hold a thread.
        client_socket.settimeout(limits.network_timeout)

    @property
    def ready(self) -> bool:
        if self._refused:
            return False  # what is still buffered must not be read as the next PDU
        state = self.assoc.dul.state_machine.current_state
        if self._request_read and state in _BEFORE_THE_ANSWER:
            return False
        if state == _AWAITING_CLOSE and self.assoc.is_rejected:
            return False  # pynetdicom then closes the connection without draining it
        return super().ready

    def recv(self, nr_bytes: int) -> bytearray:
        if not self._body_pending:
            return self._recv_header(nr_bytes)
        body = self._read(nr_bytes)
        self._body_pending = False
        self._request_read = True
        return body

    def _recv_header(self, nr_bytes: int) -> bytearray:
        if not self._request_read:
            limit = PRE_NEGOTIATION_MAX_PDU
            self._deadline = self._negotiation_deadline
        else:
            limit = self._limits.max_pdu
            self._deadline = time.monotonic() + self._limits.network_timeout
        header = self._read(nr_bytes)
        if len(header) < PDU_HEADER_LENGTH:
            return header
        (length,) = struct.unpack(">L", header[2:PDU_HEADER_LENGTH])
        if limit and length > limit:
            self._refuse(
                f"it declared a PDU of {length} bytes, over the limit of {limit}",
                reason=_ABORT_REASON_INVALID_PARAMETER,
            )
            return bytearray()
        self._body_pending = True
        return header

    def _read(self, nr_bytes: int) -> bytearray:
        """Up to ``nr_bytes``, fewer if the peer closes or the current deadline passes."""
        sock = self.socket
        data = bytearray()
        if sock is None or self._refused:
            return data
        try:
            while len(data) < nr_bytes:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    what = "a PDU" if self._request_read else "its association request"
                    self._refuse(f"{what} did not arrive in time", reason=_ABORT_REASON_NOT_SPECIFIED)
                    break
                sock.settimeout(remaining)
                try:
                    chunk = sock.recv(min(_READ_CHUNK, nr_bytes - len(data)))
                except TimeoutError:
                    continue
                if not chunk:
                    break
                data += chunk
        finally:
            if sock.fileno() != -1:
                sock.settimeout(self._limits.network_timeout)
        return data

    def _refuse(self, why: str, *, reason: int) -> None:
        """A-ABORT the peer and shut the connection; pynetdicom closes it on the short read."""
        logger.warning("connection from %s dropped: %s", self._peer, why)
        self._refused = True
        sock = self.socket
        if sock is None:
            return
        abort = A_ABORT_RQ()
        abort.source = _ABORT_SOURCE_PROVIDER
        abort.reason_diagnostic = reason
        # The peer may not be reading: closing matters more than telling it why.
        with contextlib.suppress(OSError):
            sock.settimeout(1.0)
            sock.sendall(abort.encode())
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
