"""API errors and the `Status` bodies the Kubernetes API server answers with.

Raised by the store, the resource catalogue and the HTTP layer; `http.py` turns an
`ApiError` into a response whose body is a `meta/v1 Status`, shaped like the ones
k8s.io/apimachinery/pkg/api/errors builds (reason, message, details, code).

Tree:
  ApiError(code, reason, message, details)
"""

from __future__ import annotations

from typing import Any

JsonObj = dict[str, Any]

# The subset of metav1.StatusReason values this server produces.
BAD_REQUEST = "BadRequest"
UNAUTHORIZED = "Unauthorized"
NOT_FOUND = "NotFound"
ALREADY_EXISTS = "AlreadyExists"
CONFLICT = "Conflict"
INVALID = "Invalid"
GONE = "Expired"
TOO_LARGE = "RequestEntityTooLarge"
METHOD_NOT_ALLOWED = "MethodNotAllowed"
UNSUPPORTED_MEDIA = "UnsupportedMediaType"
INTERNAL = "InternalError"


class ApiError(Exception):
    """An error answered to the client as an HTTP status with a `Status` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: JsonObj | None = None
    ) -> None:
        super().__init__(message)
        self.code = code  # HTTP status code
        self.reason = reason  # metav1.StatusReason
        self.message = message  # human-readable text, what kubectl prints
        self.details = details  # metav1.StatusDetails, or None

    def status(self) -> JsonObj:
        """The `Status` object for this error."""
        body: JsonObj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(kind: str, name: str, group: str = "") -> JsonObj:
    details: JsonObj = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


def qualified(plural: str, group: str) -> str:
    """`pods`, or `rules.rules.kubeedge.io` for a grouped resource, as errors name them."""
    return f"{plural}.{group}" if group else plural


def unauthorized() -> ApiError:
    """No credentials, or wrong ones: kube-apiserver's 401, which says nothing more."""
    return ApiError(401, UNAUTHORIZED, "Unauthorized")


def not_found(plural: str, group: str, name: str) -> ApiError:
    what = qualified(plural, group)
    return ApiError(404, NOT_FOUND, f'{what} "{name}" not found', _details(plural, name, group))


def already_exists(plural: str, group: str, name: str) -> ApiError:
    what = qualified(plural, group)
    return ApiError(
        409, ALREADY_EXISTS, f'{what} "{name}" already exists', _details(plural, name, group)
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    what = qualified(plural, group)
    return ApiError(
        409,
        CONFLICT,
        f'Operation cannot be fulfilled on {what} "{name}": {why}',
        _details(plural, name, group),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """A 422 Invalid; each cause is (field, type, message) as field.Error renders them."""
    texts = list(dict.fromkeys(f"{field}: {message}" for field, _, message in causes))
    text = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"  # utilerrors.Aggregate
    details = _details(kind, name, group)
    if not name:
        del details["name"]  # omitempty
    details["causes"] = [
        {"reason": ctype, "message": message, "field": field} for field, ctype, message in causes
    ]
    what = f"{kind}.{group}" if group else kind
    return ApiError(422, INVALID, f'{what} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, BAD_REQUEST, message)


def gone(message: str) -> ApiError:
    return ApiError(410, GONE, message)


def unprocessable(message: str) -> ApiError:
    """A generic 422 as the server answers a patch that cannot be applied."""
    return ApiError(422, INVALID, message)


def unknown_resource() -> ApiError:
    return ApiError(404, NOT_FOUND, "the server could not find the requested resource")


def too_large(limit: int) -> ApiError:
    return ApiError(413, TOO_LARGE, f"Request entity too large: limit is {limit}")


def success(plural: str, group: str, name: str, uid: str) -> JsonObj:
    """The `Status` a delete answers with for types that do not return the object."""
    details = _details(plural, name, group)
    details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
