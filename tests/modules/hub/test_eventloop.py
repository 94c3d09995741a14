"""The paced event loop: at most EVENTS_PER_ROUND ready sockets per poll, all of them
in turn."""

from __future__ import annotations

import asyncio
import select
import selectors
import socket
from collections.abc import Iterator

import pytest

from modules.hub import eventloop

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux's")


@pytest.fixture
def readable() -> Iterator[list[socket.socket]]:
    """100 sockets, each with a byte waiting to be read."""
    pairs = [socket.socketpair() for _ in range(100)]
    for _, writer in pairs:
        writer.send(b"x")
    yield [reader for reader, _ in pairs]
    for pair in pairs:
        for sock in pair:
            sock.close()


def test_a_poll_returns_at_most_events_per_round_and_the_next_ones_the_rest(
    readable: list[socket.socket],
) -> None:
    rounds = -(-len(readable) // eventloop.EVENTS_PER_ROUND)  # enough polls for them all
    with eventloop.PacedSelector() as selector:
        for sock in readable:
            selector.register(sock, selectors.EVENT_READ)
        polls = [{key.fileobj for key, _ in selector.select(0)} for _ in range(rounds)]
    assert [len(p) for p in polls[:-1]] == [eventloop.EVENTS_PER_ROUND] * (rounds - 1)
    assert set().union(*polls) == set(readable)  # epoll takes the ready sockets in turn


def test_the_loop_reads_every_ready_socket(readable: list[socket.socket]) -> None:
    async def read_all() -> int:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        left = set(readable)

        def on_readable(sock: socket.socket) -> None:
            sock.recv(1)
            loop.remove_reader(sock)
            left.discard(sock)
            if not left:
                done.set_result(None)

        for sock in readable:
            loop.add_reader(sock, on_readable, sock)
        await asyncio.wait_for(done, 5)
        return len(readable) - len(left)

    with asyncio.Runner(loop_factory=eventloop.new_event_loop) as runner:
        assert runner.run(read_all()) == len(readable)
