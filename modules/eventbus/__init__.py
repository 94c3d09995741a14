"""The edge's eventbus: the router's messages to and from an MQTT broker."""

from modules.eventbus.module import EventBus, EventBusSettings

__all__ = ["EventBus", "EventBusSettings"]
