"""LeaseAPI: the Lease calls of the replicas, as plain JSON through `modules.kube.raw`.

Input: an `ApiClient` and a namespace; output: Leases as dicts. The generated client's
models are slow and validate MicroTimes on the way; these calls are not (as
`modules.edgecontroller.kube_ops` does for node Leases).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from modules.kube import raw

JsonObj = dict[str, Any]
Query = list[tuple[str, str]]


class LeaseAPI:
    """Get, create, replace and list the Leases of one namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str, *, timeout: float) -> None:
        self.api_client = api_client  # transport, auth and TLS of the cluster
        self.namespace = namespace  # where the Leases live
        self.timeout = timeout  # seconds for each request
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    def get(self, name: str) -> JsonObj | None:
        """The Lease, or None when it does not exist.

        Raises:
            kubernetes.client.ApiException: any other error status.
        """
        try:
            lease: JsonObj = self._call("GET", f"{self._path}/{name}")
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return lease

    def create(self, body: JsonObj) -> JsonObj:
        """Create the Lease (409 if it exists); the namespace is created if missing."""
        try:
            created: JsonObj = self._call("POST", self._path, body=body)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            self.ensure_namespace()
            created = self._call("POST", self._path, body=body)
        return created

    def replace(self, body: JsonObj) -> JsonObj:
        """Replace the Lease; 409 when its resourceVersion is no longer current."""
        replaced: JsonObj = self._call("PUT", f"{self._path}/{body['metadata']['name']}", body=body)
        return replaced

    def delete(self, name: str, resource_version: str) -> None:
        """Delete the Lease if it is still at `resource_version` (409 otherwise; a
        missing one is no error)."""
        body = {"preconditions": {"resourceVersion": resource_version}}
        try:
            self._call("DELETE", f"{self._path}/{name}", body=body)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def list(self, label_selector: str) -> list[JsonObj]:
        """The Leases carrying the labels of `label_selector`."""
        items: list[JsonObj] = self.list_all(label_selector).get("items") or []
        return items

    def list_all(self, label_selector: str) -> JsonObj:
        """The LeaseList of `label_selector` (its resourceVersion starts a watch)."""
        found: JsonObj = self._call("GET", self._path, query=[("labelSelector", label_selector)])
        return found

    def stream(self, query: Query, *, timeout: float) -> Any:
        """A watch request's open response (urllib3), read line by line by the caller.

        Raises:
            kubernetes.client.ApiException: the server answered with an error status.
        """
        return raw.stream(self.api_client, self._path, query=query, timeout=timeout)

    def ensure_namespace(self) -> None:
        """Create the namespace (409 from a concurrent creator is fine)."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        try:
            self._call("POST", "/api/v1/namespaces", body=body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return raw.request(self.api_client, method, path, timeout=self.timeout, **kwargs)
