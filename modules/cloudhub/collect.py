"""The leader's cleanup, with several replicas: what is kept for nodes that are gone.

Every `interval` seconds, on the replica that holds the leader Lease only: the owner
Leases of Nodes that no longer exist are deleted (conditionally: a node claimed again
meanwhile keeps its Lease), and the records of what they acked are dropped (read
again first: other replicas wrote since this one started). The owner of a node drops
its records when it sees the node deleted; this catches the nodes no replica owned
then, and whatever a replica that died left behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import urllib3
from kubernetes import client

from modules.replicas.owners import OwnerLeases

log = logging.getLogger("modules.cloudhub.collect")

_NO_ANSWER = (OSError, urllib3.exceptions.HTTPError, client.ApiException)


class Collector:
    """A thread running `run_once` every `interval` seconds while `is_leader()`."""

    def __init__(
        self, owners: OwnerLeases, *, is_leader: Callable[[], bool],
        node_names: Callable[[], set[str] | None], records: Callable[[], int | None] | None,
        interval: float,
    ) -> None:  # fmt: skip
        self._owners = owners
        self._is_leader = is_leader
        self._node_names = node_names  # the cluster's Nodes (None: could not list)
        self._records = records  # drops the records of gone nodes (None: none kept)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beehive-cloudhub-collect",
                                        daemon=True)  # fmt: skip
        self.rounds = 0  # rounds run as the leader
        self.leases_deleted = 0  # owner Leases of gone nodes deleted

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def run_once(self) -> bool:
        """One round, if this replica leads; False when it does not or a list failed."""
        if not self._is_leader():
            return False
        nodes = self._node_names()
        if nodes is None:
            return False
        try:
            deleted = self._owners.collect(nodes)
        except _NO_ANSWER as exc:
            log.warning("cannot collect the owner Leases of deleted nodes: %s", exc)
            return False
        self.leases_deleted += deleted
        if deleted:
            log.info("deleted the owner Leases of %d deleted node(s)", deleted)
        self.rounds += 1
        return self._records is None or self._records() is not None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:  # a bug in one round must not end the cleanup
                log.exception("the cleanup of deleted nodes failed")
