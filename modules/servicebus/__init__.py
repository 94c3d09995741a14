"""The edge's servicebus: the router's requests to a local HTTP app, and its answers."""

from modules.servicebus.module import ServiceBus, ServiceBusSettings

__all__ = ["ServiceBus", "ServiceBusSettings"]
