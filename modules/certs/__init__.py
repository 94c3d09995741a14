"""KubeEdge's certificate and token flow: cloud CA, join tokens, the certificate
server, edge enrolment, mutual-TLS contexts and per-node authorization rules."""
