"""The eventbus module: the router's topics on the edge's MQTT broker (paho-mqtt).

Input: its mailbox: the router's messages from edgehub (`modules.userbus`:
``publish`` a body on a topic; ``subscribe``/``unsubscribe`` a rule's source topic);
and what the broker delivers on subscribed topics (paho's network thread
"beehive-eventbus-mqtt"). Output: MQTT publishes; a reply to each routed publish
(200 once handed to the broker, 503 while the broker is unreachable); an ``upload``
to edgehub for each message on a subscribed topic. As edge/pkg/eventbus (external
MQTT mode). The broker being down stops nothing: paho reconnects with backoff
(reconnect_initial doubling to reconnect_max) and subscriptions are made again on
every connect.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from beehive import errors as beehive_errors
from beehive.message import Message
from beehive.module import Module
from modules import contract, userbus

log = logging.getLogger("modules.eventbus")


@dataclasses.dataclass(frozen=True, slots=True)
class EventBusSettings:
    """The broker and how to reach it (eventBus.mqttServerExternal in edgecore.yaml)."""

    broker: str = "127.0.0.1:1883"  # host:port of the MQTT broker
    node_name: str = "edge-1"
    hub_module: str = contract.EDGEHUB  # where uploads and replies go
    client_id: str = ""  # default: beehive-eventbus-<node_name>
    keepalive: int = dataclasses.field(default=30, metadata={"min": 5})
    qos: int = dataclasses.field(default=0, metadata={"min": 0, "max": 1})
    reconnect_initial: float = dataclasses.field(default=1.0, metadata={"min": 0.01})
    reconnect_max: float = dataclasses.field(default=30.0, metadata={"min": 0.01})


class EventBus(Module):
    """KubeEdge's eventbus against an external broker (see the module docstring)."""

    settings_type = EventBusSettings

    def on_start(self) -> None:
        self._settings: EventBusSettings = self.settings or EventBusSettings()
        host, _, port = self._settings.broker.rpartition(":")
        self._lock = threading.Lock()  # guards _topics
        self._topics: set[str] = set()  # subscribed topics, made again on each connect
        self.published = 0  # routed publishes handed to the broker
        self.uploaded = 0  # messages on subscribed topics sent up
        self.failed_connects = 0  # connection attempts failed since the last connect
        client_id = self._settings.client_id or f"beehive-eventbus-{self._settings.node_name}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.reconnect_delay_set(max(1, round(self._settings.reconnect_initial)),
                                         max(1, round(self._settings.reconnect_max)))  # fmt: skip
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_mqtt
        self._client.connect_async(host or "127.0.0.1", int(port), self._settings.keepalive)
        self._client.loop_start()  # retries the first connection too
        self.hive.register_command(f"{self.module_name}.state", self._state)

    def on_stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def on_message(self, message: Message) -> None:
        operation, resource = message.route.operation, message.route.resource
        if operation == userbus.PUBLISH:
            self._publish(message)
        elif operation in (userbus.SUBSCRIBE, userbus.UNSUBSCRIBE):
            self._subscribe(resource, on=operation == userbus.SUBSCRIBE)
        else:
            log.warning("eventbus: operation %r on %r not handled", operation, resource[:128])

    def _publish(self, message: Message) -> None:
        topic = message.route.resource
        content = message.content
        payload = content.encode() if isinstance(content, str) else b""
        if not topic or "+" in topic or "#" in topic:
            self._reply(message, 400, f"topic {topic!r} is empty or holds a wildcard")
            return
        if not self._client.is_connected():
            self._reply(message, 503, f"MQTT broker {self._settings.broker} is unreachable")
            return
        info = self._client.publish(topic, payload, qos=self._settings.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._reply(message, 503, f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
            return
        self.published += 1
        log.info("eventbus %s: published %d bytes on %s", self._settings.node_name,
                 len(payload), topic)  # fmt: skip
        self._reply(message, 200, f"published on {topic}")

    def _subscribe(self, topic: str, *, on: bool) -> None:
        if not topic or "+" in topic or "#" in topic:
            log.error("eventbus: refused to subscribe to %r: wildcards are not allowed", topic)
            return
        with self._lock:
            (self._topics.add if on else self._topics.discard)(topic)
        if on:
            self._client.subscribe(topic, qos=self._settings.qos)
        else:
            self._client.unsubscribe(topic)
        log.info("eventbus %s: %ssubscribed %s", self._settings.node_name,
                 "" if on else "un", topic)  # fmt: skip

    def _reply(self, message: Message, status: int, text: str) -> None:
        self._to_hub(userbus.http_reply(message, status, text.encode()))

    def _to_hub(self, message: Message) -> None:
        try:
            self.hive.send(self._settings.hub_module, message)
        except beehive_errors.BeehiveError as exc:
            log.error("eventbus: cannot pass %s to %s: %s", message.msg_id,
                      self._settings.hub_module, exc)  # fmt: skip

    # --- paho's thread -------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: Any, _properties: Any) -> None:  # fmt: skip
        if reason.is_failure:
            log.warning("eventbus: broker %s refused the connection: %s",
                        self._settings.broker, reason)  # fmt: skip
            return
        self.failed_connects = 0
        with self._lock:
            topics = sorted(self._topics)
        log.info("eventbus %s: connected to %s (%d subscription(s))",
                 self._settings.node_name, self._settings.broker, len(topics))  # fmt: skip
        for topic in topics:
            client.subscribe(topic, qos=self._settings.qos)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self.failed_connects += 1  # paho waits reconnect_initial, doubling to reconnect_max
        log.warning("eventbus %s: MQTT broker %s is unreachable (%d failed attempt(s)); "
                    "retrying", self._settings.node_name, self._settings.broker,
                    self.failed_connects)  # fmt: skip

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: Any, _properties: Any) -> None:  # fmt: skip
        log.warning("eventbus %s: disconnected from %s (%s); reconnecting",
                    self._settings.node_name, self._settings.broker, reason)  # fmt: skip

    def _on_mqtt(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            wanted = msg.topic in self._topics
        if not wanted:
            return
        self.uploaded += 1
        log.info("eventbus %s: %d bytes on %s sent up", self._settings.node_name,
                 len(msg.payload), msg.topic)  # fmt: skip
        self._to_hub(userbus.upload(msg.topic, bytes(msg.payload)))

    def _state(self) -> dict[str, Any]:
        with self._lock:
            topics = sorted(self._topics)
        return {"broker": self._settings.broker, "connected": self._client.is_connected(),
                "topics": topics, "published": self.published,
                "uploaded": self.uploaded,
                "failed_connects": self.failed_connects}  # fmt: skip
