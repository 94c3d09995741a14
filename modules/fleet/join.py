"""Joining the fleet's nodes to a cloud: certificates and Node objects.

Input: `FleetOptions` (the certificate server, the join token, the certificate
directory, a kubeconfig). Output: each node's TLS credentials (`nodetls.NodeTLS`:
its certificate enrolled with the token through `modules.certs.enroll`, KubeEdge's
join flow, or reused from the directory, then read and parsed once; one client
context per CA for them all) and, when a kubeconfig is given, the nodes' Node objects
created through the API. Both run with bounded concurrency, off the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modules import hollow, private
from modules.certs import enroll, errors
from modules.fleet import nodetls
from modules.fleet.options import FleetOptions
from modules.fleet.stats import Counters
from modules.kube import raw


class JoinError(Exception):
    """A node could not join: enrolment or Node creation failed."""


async def enroll_all(options: FleetOptions, counters: Counters) -> list[nodetls.NodeTLS]:
    """Each node's credentials, in node order, enrolling those without a valid certificate.

    The certificate folder is made 0700 if missing (each node's folder in it is 0700,
    its files 0600: `modules.certs.enroll`).

    Raises:
        JoinError: naming the node and the enrolment step that failed, or the folder.
    """
    try:
        private.make_dir(options.certs)
    except OSError as exc:
        raise JoinError(f"certificate folder {options.certs}: {exc}") from None
    gate = asyncio.Semaphore(options.enroll_concurrency)
    contexts = nodetls.Contexts()

    async def one(name: str) -> nodetls.NodeTLS:
        async with gate:
            credentials = await asyncio.to_thread(_ensure, options, name, contexts)
        counters.enrolled += 1
        return credentials

    return list(await asyncio.gather(*(one(name) for name in options.node_names)))


def _ensure(options: FleetOptions, name: str, contexts: nodetls.Contexts) -> nodetls.NodeTLS:
    """`name`'s certificate (enrolled if need be), read and parsed with its key and CA."""
    paths = enroll.EdgeCertPaths.in_directory(options.certs / name)
    try:
        enroll.ensure_certificate(options.cert_server_url, name, paths, join_token=options.token)
    except errors.EnrollError as exc:
        raise JoinError(f"node {name}: {exc}") from None
    try:
        return contexts.node(name, paths)
    except (OSError, ValueError) as exc:
        raise JoinError(
            f"node {name}: its certificate files in {paths.cert.parent}: {exc}"
        ) from None


def create_nodes(options: FleetOptions) -> int:
    """Create the nodes' Node objects (an existing one is kept); returns how many were new.

    Raises:
        JoinError: the API refused a Node for another reason than that it exists.
    """
    api_client = config.new_client_from_config(config_file=options.kubeconfig)  # type: ignore[no-untyped-call]
    try:
        with concurrent.futures.ThreadPoolExecutor(options.enroll_concurrency) as pool:
            return sum(pool.map(lambda name: _create_node(api_client, name), options.node_names))
    finally:
        api_client.close()


def _create_node(api_client: client.ApiClient, name: str) -> int:
    try:  # `raw` reads the answer, so that the connection goes back to the pool
        raw.request(api_client, "POST", "/api/v1/nodes", body=hollow.node_object(name))
    except ApiException as exc:
        if exc.status == 409:
            return 0
        raise JoinError(
            f"node {name}: the API refused its Node: {exc.status} {exc.reason}"
        ) from None
    return 1
