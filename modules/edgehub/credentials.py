"""The edge's certificate: enrolment, the mutual-TLS context, and rotation.

Input: edgehub's settings (certificate server, join token or token file,
certificate directory). Output: the `ssl.SSLContext` edgehub connects with, and
when to rotate. As edge/pkg/edgehub/certificate/certmanager.go: at start, a valid
certificate on disk is used; otherwise the edge enrols with the join token
(`modules.certs.enroll`); the certificate is replaced at a jittered 70-90 % of its
lifetime, authenticating with itself, and edgehub reconnects with the new one.
The token is read only when an enrolment needs it, and never logged.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from pathlib import Path

from modules.certs import enroll, errors, tls
from modules.certs.token import utc_now
from modules.edgehub.settings import EdgeHubSettings

log = logging.getLogger("modules.edgehub")


class EdgeCredentials:
    """The node certificate edgehub presents (see the module docstring)."""

    def __init__(self, settings: EdgeHubSettings) -> None:
        self._settings = settings
        self.paths = enroll.EdgeCertPaths.in_directory(settings.cert_dir)  # CA, cert, key
        self.rotate_at: datetime.datetime | None = None  # when the current cert is due
        self.expires: datetime.datetime | None = None  # the current cert's notAfter

    def context(self) -> ssl.SSLContext:
        """The client context with a valid certificate, enrolling first if there is none.

        Raises:
            EnrollError: no valid certificate, and enrolment failed (the reason says why).
        """
        s = self._settings
        cert = enroll.ensure_certificate(
            s.cert_server, s.node_name, self.paths, join_token=self._token(),
            timeout=s.handshake_timeout,
        )  # fmt: skip
        self.rotate_at = enroll.next_rotation(cert) if s.rotate_certificates else None
        self.expires = cert.not_valid_after_utc
        return self._load()

    def rotation_due(self, now: datetime.datetime | None = None) -> bool:
        return self.rotate_at is not None and (now or utc_now()) >= self.rotate_at

    def rotate(self) -> None:
        """A new certificate over mutual TLS with the current one (no token).

        Raises:
            EnrollError: the current files are left as they were.
        """
        s = self._settings
        cert = enroll.rotate(s.cert_server, s.node_name, self.paths, timeout=s.handshake_timeout)
        self.rotate_at = enroll.next_rotation(cert)
        self.expires = cert.not_valid_after_utc
        log.info("edge %s: certificate rotated, valid until %s",
                 s.node_name, cert.not_valid_after_utc.isoformat())  # fmt: skip

    def postpone(self, seconds: float) -> None:
        """A rotation failed: try again in `seconds`."""
        self.rotate_at = utc_now() + datetime.timedelta(seconds=seconds)

    def _load(self) -> ssl.SSLContext:
        try:
            return tls.client_context(
                ca_pem=self.paths.ca.read_bytes(), cert=self.paths.cert, key=self.paths.key
            )
        except (OSError, ssl.SSLError) as exc:
            raise errors.EnrollError("load certificate", f"{self.paths.cert}: {exc}") from None

    def _token(self) -> str:
        """The join token from the settings or the token file ("" if neither is given).

        Raises:
            EnrollError: the token file cannot be read.
        """
        s = self._settings
        if s.token or not s.token_file:
            return s.token
        if enroll.load_valid(self.paths, s.node_name, utc_now()) is not None:
            return ""  # not needed
        try:
            return Path(s.token_file).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise errors.EnrollError("read token", f"{s.token_file}: {exc}") from None
