"""metamanager: the edge's sqlite store of what the cloud delivered (`MetaManager`)."""

from modules.metamanager.module import MetaManager, MetaManagerSettings

__all__ = ["MetaManager", "MetaManagerSettings"]
