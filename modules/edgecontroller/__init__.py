"""edgecontroller: Kubernetes objects down to edge nodes, edge reports up to Kubernetes.

See `modules.edgecontroller.module` for the wiring and `modules.contract` for the
messages exchanged with cloudhub.
"""

from modules.edgecontroller.module import EdgeController
from modules.edgecontroller.settings import EdgeControllerSettings

__all__ = ["EdgeController", "EdgeControllerSettings"]
