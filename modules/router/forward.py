"""REST calls for nodes another cloudcore replica serves: passed on to its router.

With several replicas behind one balancer, a REST call reaches any of them, and only
the replica holding the node's websocket can route it. A router that does not serve
the node asks the node's owner Lease which replica does, and that replica's member
Lease where its router listens (`ANNOTATION`, written by each router at start, from
`replica.advertise_address` or POD_IP), and sends the call there as it came, marked
with `HEADER`; a marked call is never passed on again (no loops between replicas
whose views of a node's owner differ for a moment). KubeEdge's router has nothing of
the kind: its replicas each keep a connection to every edge.

Input: the request (method, path, headers, body). Output: the peer's answer, or
None when the call stays here (no replica service, already passed on, no owner, the
owner is this replica, or its router is not advertised).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable

import urllib3
from kubernetes import client

ANNOTATION = "cloudcore.beehive-edge.io/router"  # a member Lease's router URL
HEADER = "X-Beehive-Forwarded-By"  # the replica that passed the call on
_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding",
                         "keep-alive", "te", "trailer", "upgrade"})  # fmt: skip

Answer = tuple[int, dict[str, str], bytes]


def url_for(host: str, port: int) -> str:
    """A router's URL as advertised (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def passed_on(header: dict[str, list[str]]) -> bool:
    """The call came from another replica's router."""
    return any(key.lower() == HEADER.lower() for key in header)


def send(
    peer: str, *, via: str, method: str, path: str, header: dict[str, list[str]],
    body: bytes, timeout: float,
) -> Answer:  # fmt: skip
    """Send the call to the router at `peer` (a URL), marked as passed on by `via`;
    its answer, or 502 naming the peer when it did not answer."""
    headers = {k: ", ".join(v) for k, v in header.items() if k.lower() not in _HOP_BY_HOP}
    headers[HEADER] = via
    request = urllib.request.Request(peer + path, data=body or None, method=method,
                                     headers=headers)  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, _kept(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _kept(exc.headers.items()), exc.read()
    except (OSError, ValueError) as exc:  # refused, timed out, a bad URL in the Lease
        return 502, {}, f"the router at {peer} did not answer: {exc}".encode()


def _kept(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The peer's headers worth passing back (the answer's own framing is ours)."""
    return {k: v for k, v in items if k.lower() not in _HOP_BY_HOP | {"date", "server"}}


NO_ANSWER = (client.ApiException, OSError, urllib3.exceptions.HTTPError)  # Leases unread


class Recent:
    """What the Leases said lately (a node's owner, a replica's router URL), for `ttl`
    seconds, at most `size` keys (the oldest go first): a call for a node served
    elsewhere read two Leases before each pass, a load on the API server that grew
    with the REST traffic. Sans-I/O: the caller gives the time."""

    def __init__(self, *, ttl: float, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._seen: dict[str, tuple[float, str]] = {}  # key -> (when read, value)

    def get(self, key: str, now: float) -> str | None:
        """The value read within `ttl` of `now`, or None."""
        found = self._seen.get(key)
        if found is None or now - found[0] >= self.ttl:
            return None
        return found[1]

    def put(self, key: str, value: str, now: float) -> None:
        self._seen.pop(key, None)
        self._seen[key] = (now, value)
        while len(self._seen) > self.size:
            del self._seen[next(iter(self._seen))]

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)
