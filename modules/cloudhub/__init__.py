"""cloudhub: the cloud end of the cloud<->edge connection (KubeEdge's cloudhub module)."""
