"""Connection to a DICOM peer over DIMSE (C-ECHO, C-FIND, C-GET or C-MOVE, C-STORE): AE titles, host and port."""

from __future__ import annotations

from typing import Any

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.hooks import with_connection_form
from claimed_airflow.pacs.dimse import echo
from claimed_airflow.pacs.servers import DEFAULT_CALLING_AET, DimseServer, check_ae_title
from claimed_airflow.version_compat import BaseHook


@with_connection_form
class DicomHook(BaseHook):
    """A PACS reached by DICOM networking, for input.dicom_network and output.dicom_network.

    Connection fields: **Host** and **Port** of the PACS, and the extras ``ae_title`` (the PACS's AE
    title, called), ``calling_ae_title`` (ours; default ``CLAIMED``; the PACS must know it),
    ``timeout`` (seconds) and how instances are retrieved: ``retrieve`` = ``get`` (C-GET, default) or
    ``move`` (C-MOVE, for a PACS that answers only that: our storage SCP listens on ``move_port``,
    on the address ``move_bind`` (default all), as ``move_ae_title`` (default the calling AE title);
    the PACS must list that AE title with our host and that port). On ``dicom_default``,
    ``allowed_hosts`` lists the hosts a ``dicom://AET@host:port`` URI may name. DIMSE carries no password.

    :param dicom_conn_id: Airflow connection id (type ``dicom``).
    """

    conn_name_attr = "dicom_conn_id"
    default_conn_name = "dicom_default"
    conn_type = "dicom"
    hook_name = "DICOM (DIMSE, PACS)"

    def __init__(self, dicom_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dicom_conn_id = dicom_conn_id

    def server(self):
        """The peer as a :class:`claimed_airflow.pacs.servers.DimseServer`."""

        name = self.dicom_conn_id
        conn = self.get_connection(name)
        extra = conn.extra_dejson
        if not conn.host or not conn.port:
            raise ClaimedError(f"conn_id: connection {name!r} needs the PACS's host and port")
        if not extra.get("ae_title"):
            raise ClaimedError(f"conn_id: connection {name!r} has no ae_title (the PACS's AE title)")
        server = DimseServer(
            ae_title=check_ae_title(str(extra["ae_title"]), "conn_id"),
            host=conn.host,
            port=int(conn.port),
            calling_ae_title=check_ae_title(str(extra.get("calling_ae_title") or DEFAULT_CALLING_AET), "conn_id"),
        )
        if extra.get("timeout"):
            server.timeout = float(extra["timeout"])
        retrieve = str(extra.get("retrieve") or "get").strip().lower()
        if retrieve not in ("get", "move"):
            raise ClaimedError(f"conn_id: connection {name!r}: retrieve must be get or move, not {retrieve!r}")
        server.retrieve = retrieve
        server.move_ae_title = check_ae_title(str(extra.get("move_ae_title") or server.calling_ae_title), "conn_id")
        server.move_bind = str(extra.get("move_bind") or "")
        if retrieve == "move":
            try:
                server.move_port = int(extra.get("move_port") or 0)
            except ValueError:
                server.move_port = 0
            if not 0 < server.move_port < 65536:
                raise ClaimedError(
                    f"conn_id: connection {name!r}: retrieve=move needs move_port (our storage SCP's port)"
                )
        return server

    def get_conn(self):
        return self.server()

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: a C-ECHO (verification)."""
        try:
            server = self.server()
            echo(server)
            return True, f"C-ECHO answered by {server.name}"
        except ClaimedError as exc:  # our messages name the peer
            return False, str(exc)
        except Exception as exc:  # a client's text is not shown
            return False, f"{type(exc).__name__} (details withheld)"
