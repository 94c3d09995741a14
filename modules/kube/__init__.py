"""How modules reach Kubernetes: settings and a connection (embedded server or kubeconfig)."""

from modules.kube.connection import KubeConnection, open_kube
from modules.kube.settings import KubeSettings

__all__ = ["KubeConnection", "KubeSettings", "open_kube"]
