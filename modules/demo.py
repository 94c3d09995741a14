"""Two small demo modules that exchange messages, to see the hive at work.

`Ticker` (pull style) sends a message to a target module or group every
`interval` seconds, every `sync_every`-th one as a request it waits on; `Echo`
(push style) counts what it gets, optionally works `work_ms` per message, and
answers requests. ``config/demo.yaml`` wires them up.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Literal

from beehive import BeehiveError, Message, Module, Operation

log = logging.getLogger("modules.demo")


@dataclasses.dataclass(frozen=True)
class TickerSettings:
    target: str = "echo"  # module (or group, see `via`) to send to
    via: Literal["module", "group"] = "module"
    interval: float = dataclasses.field(default=0.5, metadata={"min": 0})
    burst: int = dataclasses.field(default=1, metadata={"min": 1})  # messages per tick
    sync_every: int = dataclasses.field(default=10, metadata={"min": 0})  # 0 = never
    timeout: float = dataclasses.field(default=5.0, metadata={"min": 0})


class Ticker(Module):
    """Sends `burst` messages per tick; also answers anything sent to it with "OK"."""

    settings_type = TickerSettings

    def run(self) -> None:
        s: TickerSettings = self.settings
        sent = 0
        next_tick = time.monotonic()
        while not self.stopping.is_set():
            incoming = self.receive(timeout=max(next_tick - time.monotonic(), 0))
            if incoming is not None:
                self._answer(incoming)
                continue
            for _ in range(s.burst):
                sent += 1
                self._send(s, sent)
            next_tick += s.interval

    def _send(self, s: TickerSettings, n: int) -> None:
        msg = Message.new(
            source=self.module_name,
            operation=Operation.UPDATE,
            resource=f"demo/tick/{n}",
            content=n,
        )
        try:
            if s.sync_every and n % s.sync_every == 0:
                reply = self.hive.send_sync(s.target, msg, timeout=s.timeout)
                log.debug("tick %d answered: %s", n, reply.content)
            elif s.via == "group":
                self.hive.send_to_group(s.target, msg)
            else:
                self.hive.send(s.target, msg)
        except BeehiveError as exc:
            log.warning("tick %d not delivered: %s", n, exc)

    def _answer(self, message: Message) -> None:
        if message.header.sync:
            self.hive.send_resp(message.reply("OK"))


@dataclasses.dataclass(frozen=True)
class EchoSettings:
    work_ms: float = dataclasses.field(default=0.0, metadata={"min": 0})  # simulated work


class Echo(Module):
    """Counts messages and replies to requests with their own content."""

    settings_type = EchoSettings

    def on_start(self) -> None:
        self.count = 0

    def on_message(self, message: Message) -> None:
        self.count += 1
        if self.settings.work_ms:
            time.sleep(self.settings.work_ms / 1000)
        if message.header.sync:
            self.hive.send_resp(message.reply(message.content))
