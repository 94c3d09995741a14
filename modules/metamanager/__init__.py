"""metamanager: the edge's store of what the cloud sent (KubeEdge's metamanager module)."""
