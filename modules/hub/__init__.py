"""The cloud<->edge hub protocol shared by cloudhub and edgehub, without I/O.

`modules.hub.protocol.HubProtocol` turns frames and clock ticks into events and
frames to send; `modules.hub.handshake` builds and checks the connection path and
headers. Transports (websockets, websocket-client, in-memory) only move bytes.
"""
