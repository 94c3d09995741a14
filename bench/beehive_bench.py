"""Benchmark: the hive's send and send_sync against raw pykka, and queued-message memory.

Run: python bench/beehive_bench.py [--messages N] [--round-trips N] [--queued N]

Prints, side by side:
- messages/s from one module to another with `Hive.send` (and `send_many` in batches of
  64) vs pykka `tell` between two actors;
- round trips/s with `Hive.send_sync` vs pykka `ask`;
- memory of N queued messages (the hive's overhead per message) vs the messages themselves.
Goals: send >= 50% of tell, send_sync >= 50% of ask, overhead < 1 KiB per queued message.
"""

from __future__ import annotations

import argparse
import gc
import logging
import threading
import time
import tracemalloc
from typing import Any

import pykka

from beehive import Hive, MailboxSpec, Message, Module, codec


def sample_message(n: int) -> Message:
    return Message.new(
        source="edgecontroller",
        group="resource",
        operation="update",
        resource=f"node/edge-1/default/pod/pod-{n}",
        content={
            "metadata": {"name": f"pod-{n}", "namespace": "default", "resourceVersion": str(n)}
        },
        resource_version=str(n),
    )


# --- send vs tell --------------------------------------------------------------------


class _Sink(Module):
    def on_message(self, message: Message) -> None:
        done: _Counter = self.context.services["counter"]
        done.hit()


class _Source(Module):
    def run(self) -> None:
        start = self.receive(timeout=None)
        assert start is not None
        messages = self.context.services["messages"]
        batch = self.context.services.get("batch", 0)
        if batch:
            for i in range(0, len(messages), batch):
                self.hive.send_many("sink", messages[i : i + batch])
        else:
            for message in messages:
                self.hive.send("sink", message)
        self.stopping.wait()


class _Counter:
    def __init__(self, target: int) -> None:
        self.target, self.count, self.done = target, 0, threading.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count == self.target:
            self.done.set()


def hive_send(messages: list[Message], batch: int = 0) -> float:
    """Messages/s from one module to another: `send` each, or `send_many` in batches."""
    counter = _Counter(len(messages))
    hive = Hive()
    services = {"counter": counter, "messages": messages, "batch": batch}
    hive.add("sink", _Sink, services=services)
    hive.add("source", _Source, services=services)
    hive.start()
    started = time.perf_counter()
    hive.send("source", Message.new(operation="start"))
    counter.done.wait()
    elapsed = time.perf_counter() - started
    hive.stop()
    return len(messages) / elapsed


class _PykkaSink(pykka.ThreadingActor):
    def __init__(self, counter: _Counter) -> None:
        super().__init__()
        self.counter = counter

    def on_receive(self, message: Any) -> None:
        self.counter.hit()


class _PykkaSource(pykka.ThreadingActor):
    def __init__(self, sink: pykka.ActorRef[Any], messages: list[Message]) -> None:
        super().__init__()
        self.sink, self.messages = sink, messages

    def on_receive(self, message: Any) -> None:
        for m in self.messages:
            self.sink.tell(m)


def pykka_tell(messages: list[Message]) -> float:
    counter = _Counter(len(messages))
    sink = _PykkaSink.start(counter)
    source = _PykkaSource.start(sink, messages)
    started = time.perf_counter()
    source.tell("go")
    counter.done.wait()
    elapsed = time.perf_counter() - started
    source.stop()
    sink.stop()
    return len(messages) / elapsed


# --- send_sync vs ask ----------------------------------------------------------------


class _Echo(Module):
    def on_message(self, message: Message) -> None:
        self.hive.send_resp(message.reply(message.content))


class _PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message.reply(message.content)


def hive_sync(messages: list[Message]) -> float:
    hive = Hive()
    hive.add("echo", _Echo)
    hive.start()
    started = time.perf_counter()
    for m in messages:
        hive.send_sync("echo", m, timeout=10)
    elapsed = time.perf_counter() - started
    hive.stop()
    return len(messages) / elapsed


def pykka_ask(messages: list[Message]) -> float:
    echo = _PykkaEcho.start()
    started = time.perf_counter()
    for m in messages:
        echo.ask(m, timeout=10)
    elapsed = time.perf_counter() - started
    echo.stop()
    return len(messages) / elapsed


# --- memory --------------------------------------------------------------------------


def queued_memory(count: int) -> tuple[float, float, float]:
    """(bytes per message object, bytes of JSON per message, hive overhead per queued message)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    messages = [sample_message(n) for n in range(count)]
    built = tracemalloc.get_traced_memory()[0]
    hive = Hive()
    hive.add("parked", _Sink, mailbox=MailboxSpec(size=count))  # never started: all stay queued
    cell_ready = tracemalloc.get_traced_memory()[0]
    for m in messages:
        hive.send("parked", m)
    queued = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    wire = sum(len(codec.encode(m)) for m in messages[:1000]) / min(count, 1000)
    hive.stop()
    return (built - before) / count, wire, (queued - cell_ready) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--round-trips", type=int, default=20_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    logging.getLogger("beehive").setLevel(logging.ERROR)  # the parked queue is dropped at the end

    messages = [sample_message(n) for n in range(args.messages)]
    send = max(hive_send(messages) for _ in range(args.repeat))
    many = max(hive_send(messages, batch=64) for _ in range(args.repeat))
    tell = max(pykka_tell(messages) for _ in range(args.repeat))
    requests = messages[: args.round_trips]
    sync = max(hive_sync(requests) for _ in range(args.repeat))
    ask = max(pykka_ask(requests) for _ in range(args.repeat))
    per_object, per_wire, overhead = queued_memory(args.queued)

    print(f"{'measure':<44}{'hive':>14}{'raw pykka':>14}{'ratio':>8}")
    print(
        f"{'send between two modules (msgs/s)':<44}{send:>14,.0f}{tell:>14,.0f}{send / tell:>8.0%}"
    )
    print(
        f"{'send_many, batches of 64 (msgs/s)':<44}{many:>14,.0f}{tell:>14,.0f}{many / tell:>8.0%}"
    )
    print(f"{'send_sync round trips (/s)':<44}{sync:>14,.0f}{ask:>14,.0f}{sync / ask:>8.0%}")
    print()
    print(f"{args.queued:,} queued messages:")
    print(f"  message objects themselves     {per_object:8.0f} B/message")
    print(f"  their JSON encoding            {per_wire:8.0f} B/message")
    print(f"  hive overhead while queued     {overhead:8.0f} B/message (goal < 1024)")


if __name__ == "__main__":
    main()
