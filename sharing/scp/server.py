"""Building and running the Storage SCP (pynetdicom) from Lightbox's settings."""

from __future__ import annotations

import logging
import socket
import socketserver
import tempfile
from typing import Any, cast

from pynetdicom import AE, _config, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.transport import ThreadedAssociationServer

from sharing.conf import app_settings
from sharing.scp import handlers

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


class ReusePortAssociationServer(ThreadedAssociationServer):
    """Lets several SCP processes listen on one port; the kernel spreads associations."""

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


def _handle_accepted(event: Any, allowed: list[str]) -> None:
    calling_ae, address = handlers.peer_of(event.assoc)
    if not handlers.is_peer_allowed(calling_ae, address, allowed):
        logger.warning("association from %s@%s refused: host not allowed for this AE", calling_ae, address)
        event.assoc.abort()
        return
    logger.info("association accepted from %s@%s", calling_ae, address)


def build_ae(*, ae_title: str | None = None, allowed_aes: list[str] | None = None) -> AE:
    # Received datasets go straight to a temporary file (bounded memory whatever their size),
    # in Lightbox's temp directory so the local store can hard-link rather than copy them.
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(app_settings.TEMP_DIR)

    ae = AE(ae_title=ae_title or app_settings.SCP_AE_TITLE)
    ae.maximum_pdu_size = app_settings.SCP_MAX_PDU
    ae.maximum_associations = app_settings.SCP_MAX_ASSOCIATIONS
    ae.acse_timeout = app_settings.SCP_TIMEOUT
    ae.dimse_timeout = app_settings.SCP_TIMEOUT
    ae.network_timeout = app_settings.SCP_TIMEOUT
    allowed = app_settings.SCP_ALLOWED_AES if allowed_aes is None else allowed_aes
    ae.require_calling_aet = [entry.partition("@")[0].strip() for entry in allowed]
    ae.add_supported_context(VERIFICATION_SOP_CLASS)
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    return ae


def make_server(
    *, host: str, port: int, ae_title: str | None = None, allowed_aes: list[str] | None = None
) -> ReusePortAssociationServer:
    """A bound, not yet serving, SCP server. Call ``serve_forever()`` (or run it in a thread).

    ``allowed_aes`` overrides LIGHTBOX_SCP_ALLOWED_AES (the demo seed's private SCP takes any).
    """
    allowed = app_settings.SCP_ALLOWED_AES if allowed_aes is None else allowed_aes
    ae = build_ae(ae_title=ae_title, allowed_aes=allowed)
    event_handlers: list[Any] = [
        (evt.EVT_C_ECHO, handlers.handle_echo),
        (evt.EVT_C_STORE, handlers.handle_store),
        (evt.EVT_ACCEPTED, _handle_accepted, [allowed]),
        (evt.EVT_RELEASED, handlers.handle_released),
        (evt.EVT_ABORTED, handlers.handle_aborted),
    ]
    server = ae.make_server(
        (host, port), evt_handlers=event_handlers, server_class=ReusePortAssociationServer
    )
    return cast(ReusePortAssociationServer, server)
