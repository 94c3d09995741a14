"""Several cloudcore replicas on Kubernetes Leases: membership, a leader, self-fencing.

`elector` is the sans-I/O logic of one Lease (acquire, renew, lose, release); `leases`
does the API calls with plain JSON; `keeper` runs an elector in a thread; `service`
holds a replica's own Lease and the leader Lease, and is what modules use (the
``replica`` service). Settings: `settings.ReplicaSettings` (the ``replica:`` section).
"""
