"""Errors of the certificate and token flow; none of them carries a token or a key.

- `CertError`
  - `TokenError(reason)`: a join token failed verification (malformed, wrong CA hash,
    bad signature, expired); the text names what failed, never the token.
  - `EnrollError(step, reason)`: edge enrolment or rotation failed at `step`
    (fetch CA, check CA, request certificate, verify certificate, write files).
  - `CAStoreError(reason)`: the CA or server certificate in the Secrets is unusable.
"""

from __future__ import annotations


class CertError(Exception):
    """Base of this package's errors."""


class TokenError(CertError):
    """A join token is not acceptable; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"join token refused: {self.reason}"


class EnrollError(CertError):
    """Edge enrolment or rotation failed; nothing was written."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(step, reason)
        self.step = step
        self.reason = reason

    def __str__(self) -> str:
        return f"certificate enrolment failed at {self.step}: {self.reason}"


class CAStoreError(CertError):
    """The CA or the server certificate kept in the Secrets cannot be used."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"certificate store: {self.reason}"
