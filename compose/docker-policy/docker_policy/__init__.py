"""docker-policy: the Celery workers' Docker API gateway (docs/security-gateway.md).

A request is read with a strict HTTP/1.1 parser (http_wire), routed on an explicit endpoint table (endpoints),
a container spec is decoded without duplicate or case-folded keys (strict_json) and checked against exact
expected values (create_spec); the gateway then writes its own request from the checked values and sends that,
and only that, to socket-proxy (server).
"""
