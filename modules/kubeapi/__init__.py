"""An embedded Kubernetes API server (real HTTP, the official client's wire format).

Public: `EmbeddedKubeAPI`. Layers, bottom up: resources/selectors/patch/objects/store
(pure logic), persistence (sqlite), api and watch (request handling), http (transport),
server (wiring), cli (the `kube-api` subcommand).
"""

from modules.kubeapi.server import EmbeddedKubeAPI

__all__ = ["EmbeddedKubeAPI"]
