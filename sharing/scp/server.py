"""Building and running the Storage SCP (pynetdicom) from Lightbox's settings.

Connections are bounded before they become associations (see ``sharing.scp.guard`` for PDUs):

- one address holds at most LIGHTBOX_SCP_MAX_ASSOCIATIONS_PER_ADDRESS connections at a time,
  negotiating or not; more are closed as soon as they are accepted;
- a connection has LIGHTBOX_SCP_NEGOTIATION_TIMEOUT to send its A-ASSOCIATE-RQ;
- only an association that has been let in takes one of the LIGHTBOX_SCP_MAX_ASSOCIATIONS
  slots, so connections that never negotiate cannot keep a PACS out;
- the allow-list and the slots are decided when the A-ASSOCIATE-RQ arrives, before Lightbox
  accepts the association, so a refused peer is answered with an A-ASSOCIATE-RJ and nothing it
  sent after its request is read.

All counts are per process: with ``--processes N`` each process applies them on its own.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import sys
import tempfile
import threading
from collections import Counter
from copy import deepcopy
from datetime import datetime
from typing import Any, cast

from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from sharing.conf import app_settings
from sharing.scp import handlers
from sharing.scp.guard import GuardedSocket, ScpLimits

logger = logging.getLogger("sharing.scp")

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
# Stored as received, never transcoded.
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
]

# A-ASSOCIATE-RJ, PS3.8 9.3.4: (result, source, reason).
REJECT_CALLING_AE_NOT_RECOGNISED = (0x01, 0x01, 0x03)  # permanent, by the service user
REJECT_LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)  # transient, by the presentation service provider


class GuardedRequestHandler(RequestHandler):
    """pynetdicom's handler, with the guarded socket, held until its association has ended.

    Holding the connection's thread (pynetdicom's returns once the association thread starts)
    lets the server count open connections and admitted associations exactly.
    """

    server: GuardedAssociationServer

    def handle(self) -> None:
        assoc = self._create_association()
        try:
            evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
            assoc.start()
            assoc.join()
        finally:
            self.server.association_ended(assoc)

    def _create_association(self) -> Association:
        # As pynetdicom's RequestHandler._create_association, with a GuardedSocket.
        assoc = Association(self.ae, "acceptor")
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        sock = GuardedSocket(assoc, self.request, peer=str(self.client_address[0]), limits=self.server.limits)
        assoc.set_socket(sock)
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        # supported_contexts is set by the server once the association is admitted.
        assoc.requestor.address_info = self.remote
        for event, bound in self.server._handlers.items():
            if event.is_intervention and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent):
                for handler, args in cast(list[tuple[Any, Any]], bound):
                    assoc.bind(event, handler, args)
        return assoc


class GuardedAssociationServer(ThreadedAssociationServer):
    """The SCP's listener: per-address limit at accept, association slots at negotiation.

    Several SCP processes may listen on one port (SO_REUSEPORT); the kernel spreads connections.
    """

    # Connection threads wait for their association; they must not hold up shutdown.
    daemon_threads = True
    block_on_close = False
    # socketserver's default of 5 makes a burst of connections (a PACS opening several
    # associations at once) wait for the kernel's SYN-ACK retransmits, a second or more.
    request_queue_size = 128

    def __init__(self, *args: Any, limits: ScpLimits, **kwargs: Any) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._open_by_address: Counter[str] = Counter()
        self._admitted: set[Association] = set()
        kwargs["request_handler"] = GuardedRequestHandler
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def shutdown(self) -> None:
        # pynetdicom's shutdown assumes the server was made by start_server and registered on
        # the AE; ours comes from make_server, so stop it without that bookkeeping.
        socketserver.BaseServer.shutdown(self)
        self.server_close()
        if self in self.ae._servers:
            self.ae._servers.remove(self)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        address = str(client_address[0])
        limit = self.limits.max_associations_per_address
        with self._lock:
            full = self._open_by_address[address] >= limit
            if not full:
                self._open_by_address[address] += 1
        if full:
            logger.warning("connection from %s refused: %d already open from that address", address, limit)
        return not full

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread, so nothing else will give the place back
            self._connection_closed(client_address)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.shutdown_request(request)
            self._connection_closed(client_address)

    def _connection_closed(self, client_address: Any) -> None:
        address = str(client_address[0])
        with self._lock:
            self._open_by_address[address] -= 1
            if self._open_by_address[address] <= 0:
                del self._open_by_address[address]

    def admit(self, assoc: Association) -> bool:
        """Give ``assoc`` one of the association slots, if one is free, and what it negotiates with.

        pynetdicom copies the supported contexts for every connection as it is accepted; for
        Lightbox's ~170 storage contexts that is ~90 ms of CPU and ~600 KB, which a connection
        must not cost before it has asked properly.
        """
        with self._lock:
            if len(self._admitted) >= self.limits.max_associations:
                return False
            self._admitted.add(assoc)
        assoc.acceptor.supported_contexts = deepcopy(self.contexts)
        return True

    def association_ended(self, assoc: Association) -> None:
        with self._lock:
            self._admitted.discard(assoc)


def _handle_requested(event: Any, server: GuardedAssociationServer, allowed: list[str]) -> None:
    """On the A-ASSOCIATE-RQ, before pynetdicom negotiates: the allow-list, then a free slot."""
    assoc = event.assoc
    calling_ae, address = "?", str(assoc.requestor.address)
    try:
        calling_ae = str(assoc.requestor.primitive.calling_ae_title).strip()
        if not handlers.is_peer_allowed(calling_ae, address, allowed):
            logger.warning(
                "association from %s@%s refused: not in LIGHTBOX_SCP_ALLOWED_AES", calling_ae, address
            )
            _reject(assoc, REJECT_CALLING_AE_NOT_RECOGNISED)
        elif not server.admit(assoc):
            logger.warning(
                "association from %s@%s refused: all %d association slots are in use",
                calling_ae,
                address,
                server.limits.max_associations,
            )
            _reject(assoc, REJECT_LOCAL_LIMIT_EXCEEDED)
    except Exception:  # pynetdicom would go on and accept: refuse instead
        logger.exception("association from %s@%s refused: could not be checked", calling_ae, address)
        _reject(assoc, REJECT_LOCAL_LIMIT_EXCEEDED)


def _reject(assoc: Association, reason: tuple[int, int, int]) -> None:
    assoc.acse.send_reject(*reason)
    # As pynetdicom after its own rejections: return once the A-ASSOCIATE-RJ is out and the
    # connection closed, so the caller's clean-up cannot cut the answer off.
    assoc.kill()


def _handle_accepted(event: Any) -> None:
    calling_ae, address = handlers.peer_of(event.assoc)
    logger.info("association accepted from %s@%s", calling_ae, address)


def build_ae(*, ae_title: str | None = None, limits: ScpLimits | None = None) -> AE:
    # Received datasets go straight to a temporary file (bounded memory whatever their size),
    # in Lightbox's temp directory so the local store can hard-link rather than copy them.
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(app_settings.TEMP_DIR)
    limits = limits or ScpLimits.from_settings()

    ae = AE(ae_title=ae_title or app_settings.SCP_AE_TITLE)
    ae.maximum_pdu_size = limits.max_pdu
    # The server admits associations itself (GuardedAssociationServer.admit): pynetdicom's own
    # count includes connections still negotiating, which must not take a slot.
    ae.maximum_associations = sys.maxsize
    # The ACSE timeout is pynetdicom's ARTIM timer: how long a connection may take to send its
    # A-ASSOCIATE-RQ, and to close once released or rejected.
    ae.acse_timeout = limits.negotiation_timeout
    ae.dimse_timeout = limits.network_timeout
    ae.network_timeout = limits.network_timeout
    ae.add_supported_context(VERIFICATION_SOP_CLASS)
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    return ae


def make_server(
    *, host: str, port: int, ae_title: str | None = None, allowed_aes: list[str] | None = None
) -> GuardedAssociationServer:
    """A bound, not yet serving, SCP server. Call ``serve_forever()`` (or run it in a thread).

    ``allowed_aes`` overrides LIGHTBOX_SCP_ALLOWED_AES (the demo seed's private SCP takes any).
    """
    allowed = app_settings.SCP_ALLOWED_AES if allowed_aes is None else allowed_aes
    limits = ScpLimits.from_settings()
    ae = build_ae(ae_title=ae_title, limits=limits)
    event_handlers: list[Any] = [
        (evt.EVT_C_ECHO, handlers.handle_echo),
        (evt.EVT_C_STORE, handlers.handle_store),
        (evt.EVT_ACCEPTED, _handle_accepted),
        (evt.EVT_RELEASED, handlers.handle_released),
        (evt.EVT_ABORTED, handlers.handle_aborted),
    ]
    server = ae.make_server(
        (host, port), evt_handlers=event_handlers, server_class=GuardedAssociationServer, limits=limits
    )
    server = cast(GuardedAssociationServer, server)
    server.bind(evt.EVT_REQUESTED, _handle_requested, [server, allowed])
    return server
