"""The hive: named modules, groups, and the operations between them.

No globals: every Hive is independent (tests build as many as they like). Each
registered module gets a `Cell` (actor + bounded mailbox + supervision). The
operations mirror KubeEdge's beehive context (core/channel/context_channel.go):
send, receive, send_sync/send_resp (matched by parent_msg_id), send_to_group and
send_to_group_sync; unlike KubeEdge, nothing is dropped without a dead letter,
a full mailbox answers within its timeout, and group sends keep their order per
member. A stats thread samples every mailbox once a second for the rates.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from beehive import codec, errors
from beehive._cell import Cell, ModuleFactory, ModuleState
from beehive.deadletters import DeadLetters
from beehive.mailbox import MailboxStats, WhenFull
from beehive.message import Message
from beehive.module import Module
from beehive.spec import MailboxSpec, RestartSpec

log = logging.getLogger("beehive.hive")


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleInfo:
    """A snapshot of one module for `beehive debug` and tests."""

    name: str
    group: str
    impl: str
    style: str  # "push" or "pull"
    state: str
    restarts: int
    failures: int
    last_error: str
    mailbox: MailboxStats
    rate_in: float  # messages/s accepted, over the last ~10 s
    rate_out: float  # messages/s handled, over the last ~10 s
    alive: bool = False  # its actor's thread runs


@dataclasses.dataclass(frozen=True, slots=True)
class StopReport:
    """What `Hive.stop` could not deliver: module name -> messages left queued."""

    undelivered: dict[str, list[Message]]

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.undelivered.values())


# The Module class attribute through which an application supplies its message
# redactor (see `Hive`): a module that carries sensitive content names how to hide it.
MESSAGE_REDACTOR = "message_redactor"
Redactor = Callable[[dict[str, Any]], dict[str, Any]]  # message JSON -> what a person may see


class _Waiter:
    """One send_sync / send_to_group_sync caller waiting for replies."""

    __slots__ = ("error", "event", "expected", "replies", "targets")

    def __init__(self, targets: tuple[str, ...]) -> None:
        self.targets = targets  # modules that were sent the request
        self.expected = len(targets)  # replies needed to complete
        self.replies: list[Message] = []
        self.error: BaseException | None = None  # set when a target failed or stopped
        self.event = threading.Event()  # set when complete or failed


class Hive:
    """A set of modules and the message operations between them."""

    def __init__(
        self, *, dead_letters: int = 1000, stats_interval: float = 1.0,
        message_redactor: Redactor | None = None,
    ) -> None:  # fmt: skip
        self.dead_letters = DeadLetters(dead_letters)  # ring of undeliverable messages
        # How messages are shown to people (`show`); also taken from a registered module
        # class's `MESSAGE_REDACTOR` attribute, so a config-built hive gets the application's.
        self.message_redactor = message_redactor
        self._cells: dict[str, Cell] = {}  # module name -> cell, in registration order
        self._groups: dict[str, list[Cell]] = {}  # group -> member cells
        self._waiters: dict[str, _Waiter] = {}  # request msg_id -> waiting caller
        self._lock = threading.Lock()  # guards _waiters
        self._stats_interval = stats_interval
        self._stats_stop = threading.Event()
        self._stats_thread: threading.Thread | None = None
        self._started = False
        self.commands: dict[str, Callable[..., Any]] = {}  # extra admin commands, by name

    # --- registration and lifecycle ----------------------------------------------------

    def add(
        self,
        name: str,
        module: type[Module] | ModuleFactory,
        *,
        group: str = "",
        mailbox: MailboxSpec | None = None,
        restart: RestartSpec | None = None,
        settings: Any = None,
        services: Mapping[str, Any] | None = None,
        impl: str = "",
    ) -> None:
        """Register a module (a Module subclass or a factory taking a ModuleContext).

        Raises:
            DuplicateModuleError: the name is taken.
        """
        if name in self._cells:
            raise errors.DuplicateModuleError(name)
        redactor = getattr(module, MESSAGE_REDACTOR, None)
        if callable(redactor):
            self.message_redactor = redactor
        pull = (
            issubclass(module, Module) and module.is_pull_style()
            if isinstance(module, type)
            else False
        )
        cell = Cell(
            self,
            name=name,
            factory=module,
            pull_style=pull,
            impl=impl or _qualname(module),
            group=group,
            mailbox=mailbox or MailboxSpec(),
            restart=restart or RestartSpec(),
            settings=settings,
            services=services or {},
        )
        self._cells[name] = cell
        if group:
            self._groups.setdefault(group, []).append(cell)
        if self._started:
            cell.start()

    def register_command(self, name: str, func: Callable[..., Any]) -> None:
        """Expose `func` as an admin command (``beehive debug``); kwargs come from the caller."""
        self.commands[name] = func

    def start(self, *, timeout: float = 30.0) -> None:
        """Start every registered module, in registration order.

        Each module's on_start runs on its own thread; the next module starts once
        it has returned (or failed, see the restart policy), or after `timeout`
        seconds, so modules listed earlier are up before those that use them.
        """
        self._started = True
        for cell in self._cells.values():
            cell.start()
            if not cell.started.wait(timeout):
                log.warning("module %s: on_start still running after %gs", cell.name, timeout)
        self._stats_thread = threading.Thread(
            target=self._sample_stats, name="beehive-stats", daemon=True
        )
        self._stats_thread.start()

    def stop(self, *, timeout: float = 5.0) -> StopReport:
        """Stop modules in reverse order; each drains its mailbox within `timeout`.

        Messages still queued after that are reported (and kept as dead letters).
        """
        undelivered: dict[str, list[Message]] = {}
        for cell in reversed(list(self._cells.values())):
            if cell.state is ModuleState.REGISTERED:
                cell.stopping.set()
                cell.mailbox.close()
                left = cell.mailbox.drain()
            else:
                left = cell.stop(timeout)
            for message in left:
                self.dead_letters.add(cell.name, "undelivered at stop", message)
            if left:
                undelivered[cell.name] = left
                log.warning(
                    "module %s stopped with %d message(s) undelivered", cell.name, len(left)
                )
        self._stats_stop.set()
        if self._stats_thread is not None:
            self._stats_thread.join(timeout=2)
        self._started = False
        return StopReport(undelivered)

    def __enter__(self) -> Hive:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- sending ---------------------------------------------------------------------

    def send(self, module: str, message: Message) -> None:
        """Put a message into a module's mailbox.

        Raises:
            UnknownModuleError: no such module.
            MailboxFullError: the mailbox stayed full (see its when_full policy).
            ModuleStoppedError: the module is stopping or stopped.
        """
        self._offer(self._cell(module, message), message, None)

    def send_many(self, module: str, messages: Sequence[Message]) -> None:
        """Send messages in order, as `send` each would, waking the module once.

        For a producer that has many messages at hand: one lock and one wake-up per
        batch instead of per message. What does not fit goes through `send` one by
        one (waiting, rejecting or evicting as the mailbox's policy says). On the
        first failure, that message and every later one become dead letters.

        Raises:
            UnknownModuleError, MailboxFullError, ModuleStoppedError: as `send`.
        """
        cell = self._cells.get(module)
        if cell is None:
            for message in messages:
                self.dead_letters.add(module, "unknown module", message)
            raise errors.UnknownModuleError(module)
        sent = 0
        try:
            sent = cell.mailbox.offer_some(messages)
            while sent < len(messages):
                cell.mailbox.offer(messages[sent], None)
                sent += 1
        except errors.BeehiveError as exc:
            for message in messages[sent:]:
                self.dead_letters.add(cell.name, str(exc), message)
            raise

    def send_all(self, module: str, messages: Sequence[Message], *, stop: threading.Event) -> bool:
        """Send every message in order, waiting for room as long as it takes: for a
        producer that may never drop what it hands over (it has recorded it as sent).

        Batches as `send_many` does; while the mailbox stays full it waits in steps of
        its timeout (at most a second), whatever its policy, until `stop` is set.
        Returns False when `stop` ended the wait (the rest unsent, no dead letters).

        Raises:
            UnknownModuleError, ModuleStoppedError: as `send`.
        """
        cell = self._cells.get(module)
        if cell is None:
            raise errors.UnknownModuleError(module)
        mailbox, sent, waited = cell.mailbox, 0, 0.0
        while sent < len(messages):
            sent += mailbox.offer_some(messages[sent:])
            if sent == len(messages):
                break
            step = min(max(mailbox.timeout, 0.01), 1.0)
            try:
                mailbox.offer(messages[sent], step)
                sent += 1
            except errors.MailboxFullError:
                waited += step
                pause = 0.0 if mailbox.when_full is WhenFull.BLOCK else step  # BLOCK waited
                if stop.wait(pause):
                    return False
                if waited >= 5.0:  # say so now and then: the producer is held up
                    log.warning("%s's mailbox stays full: waiting to hand over %d message(s)",
                                 module, len(messages) - sent)  # fmt: skip
                    waited = 0.0
        return True

    def send_to_group(self, group: str, message: Message) -> None:
        """Send to every member of a group, in the caller's thread, member by member.

        Successive group sends therefore arrive in order at each member. A member
        that cannot take the message does not stop the others.

        Raises:
            UnknownGroupError: the group has no members.
            GroupSendError: some members were not reached (each is a dead letter).
        """
        failures: dict[str, errors.BeehiveError] = {}
        for cell in self._members(group, message):
            try:
                self._offer(cell, message, None)
            except errors.BeehiveError as exc:
                failures[cell.name] = exc
        if failures:
            raise errors.GroupSendError(group, failures)

    def deliver(self, message: Message) -> None:
        """Send by the message's own route: `destination` module, else `group`.

        Raises:
            UnknownModuleError: the route names no module or group the hive has.
            and whatever `send` / `send_to_group` raise.
        """
        destination, group = message.route.destination, message.route.group
        if destination:
            self.send(destination, message)
        elif group and group in self._groups:
            self.send_to_group(group, message)
        else:
            target = group or "(empty route)"
            self.dead_letters.add(target, "no module or group for route", message)
            raise errors.UnknownModuleError(target)

    def receive(self, module: str, *, timeout: float | None = None) -> Message | None:
        """The next message for a pull-style module, or None after `timeout` seconds.

        Raises:
            UnknownModuleError: no such module.
            BeehiveError: the module is push-style (its messages go to on_message).
            ModuleStoppedError: the module is stopping and its mailbox is empty.
        """
        cell = self._cells.get(module)
        if cell is None:
            raise errors.UnknownModuleError(module)
        if not cell.pull_style:
            raise errors.BeehiveError(
                f"module {module!r} handles messages in on_message;"
                " receive() is for pull-style modules"
            )
        return cell.mailbox.take(timeout)

    def attach_reader(
        self, module: str, on_ready: Callable[[], object]
    ) -> Callable[[int], list[Message]]:
        """Let another thread of a module (its event loop) take the module's messages.

        From now on the module's messages skip `on_message`: `on_ready` is called (on
        a sender's thread; it must only schedule) when messages arrive after the
        reader took all there was, and the returned function takes up to n of them
        without blocking; call it until it returns fewer than n. One thread hop
        fewer than handing each message on from `on_message`, and one bound: the
        mailbox's. `detach_reader` gives them back to `on_message`.

        Raises:
            UnknownModuleError: no such module.
        """
        cell = self._cells.get(module)
        if cell is None:
            raise errors.UnknownModuleError(module)
        cell.mailbox.attach_reader(on_ready)
        return cell.mailbox.take_ready

    def detach_reader(self, module: str) -> None:
        """Undo `attach_reader` (unknown modules are ignored: this runs on stops)."""
        cell = self._cells.get(module)
        if cell is not None:
            cell.mailbox.detach_reader()

    # --- request / response ------------------------------------------------------------

    def send_sync(self, module: str, message: Message, *, timeout: float) -> Message:
        """Send a request and wait for the reply whose parent_msg_id is its msg_id.

        Raises:
            UnknownModuleError, MailboxFullError, ModuleStoppedError: as for `send`;
                ModuleStoppedError also when the target stops before replying.
            SyncTimeoutError: no reply within `timeout` seconds (a later reply
                becomes a dead letter).
            Exception: whatever the target's handler raised for this request.
        """
        cell = self._cell(module, message)
        return self._request((cell,), message, timeout)[0]

    def send_to_group_sync(self, group: str, message: Message, *, timeout: float) -> list[Message]:
        """Send a request to every member and wait for one reply from each.

        Returns the replies in arrival order.

        Raises:
            UnknownGroupError: the group has no members.
            SyncTimeoutError: not every member replied within `timeout`.
            and as for `send_sync`.
        """
        return self._request(tuple(self._members(group, message)), message, timeout)

    def send_resp(self, response: Message) -> bool:
        """Hand a reply to the caller waiting on its parent_msg_id.

        Returns False (and keeps a dead letter) when nobody waits for it any more.
        """
        with self._lock:
            waiter = self._waiters.get(response.parent_msg_id)
            if waiter is not None and waiter.error is None and not waiter.event.is_set():
                waiter.replies.append(response)
                if len(waiter.replies) >= waiter.expected:
                    waiter.event.set()
                return True
        reason = "reply with no waiter (late, duplicate or unknown parent_msg_id)"
        self.dead_letters.add(response.route.source or "-", reason, response)
        return False

    def is_awaiting(self, msg_id: str) -> bool:
        """Whether a send_sync caller still waits for replies to request `msg_id`."""
        with self._lock:
            waiter = self._waiters.get(msg_id)
            return waiter is not None and not waiter.event.is_set()

    def fail_waiter(self, msg_id: str, error: BaseException) -> None:
        """Fail the caller waiting on request `msg_id` (its handler raised `error`)."""
        with self._lock:
            waiter = self._waiters.get(msg_id)
            if waiter is not None and not waiter.event.is_set():
                waiter.error = error
                waiter.event.set()

    def fail_waiters(self, module: str, why: str) -> None:
        """Fail at once every caller still waiting on a reply from `module`."""
        with self._lock:
            for waiter in self._waiters.values():
                if module in waiter.targets and not waiter.event.is_set():
                    waiter.error = errors.ModuleStoppedError(module, f"{why} before replying")
                    waiter.event.set()

    def _request(self, cells: tuple[Cell, ...], message: Message, timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        request = message if message.header.sync else message.with_header(sync=True)
        waiter = _Waiter(tuple(c.name for c in cells))
        with self._lock:
            if request.msg_id in self._waiters:
                raise errors.BeehiveError(f"message {request.msg_id} is already awaiting a reply")
            self._waiters[request.msg_id] = waiter
        try:
            for cell in cells:
                self._offer(cell, request, max(deadline - time.monotonic(), 0.0))
            if not waiter.event.wait(max(deadline - time.monotonic(), 0.0)):
                detail = f"{len(waiter.replies)} of {waiter.expected} replies"
                raise errors.SyncTimeoutError(request.msg_id, timeout, detail)
        finally:
            with self._lock:
                del self._waiters[request.msg_id]
        if waiter.error is not None:
            raise waiter.error
        return waiter.replies

    # --- inspection --------------------------------------------------------------------

    def modules(self) -> list[ModuleInfo]:
        """A snapshot of every module, in registration order."""
        return [self._info(cell) for cell in self._cells.values()]

    def module(self, name: str) -> ModuleInfo:
        """A snapshot of one module.

        Raises:
            UnknownModuleError: no such module.
        """
        cell = self._cells.get(name)
        if cell is None:
            raise errors.UnknownModuleError(name)
        return self._info(cell)

    def show(self, message: Message) -> dict[str, Any]:
        """A message as wire JSON, through the message redactor: for debug views and logs."""
        shown = codec.to_json(message)
        return self.message_redactor(shown) if self.message_redactor is not None else shown

    def peek(self, module: str, limit: int = 10) -> list[tuple[Message, float]]:
        """Queued messages of a module without consuming them, with ages in seconds.

        Raises:
            UnknownModuleError: no such module.
        """
        cell = self._cells.get(module)
        if cell is None:
            raise errors.UnknownModuleError(module)
        return cell.mailbox.peek(limit)

    def groups(self) -> dict[str, list[str]]:
        return {group: [c.name for c in cells] for group, cells in self._groups.items()}

    # --- internals ---------------------------------------------------------------------

    def _cell(self, module: str, message: Message) -> Cell:
        cell = self._cells.get(module)
        if cell is None:
            self.dead_letters.add(module, "unknown module", message)
            raise errors.UnknownModuleError(module)
        return cell

    def _members(self, group: str, message: Message) -> Iterable[Cell]:
        members = self._groups.get(group)
        if not members:
            self.dead_letters.add(group, "unknown group", message)
            raise errors.UnknownGroupError(group)
        return members

    def _offer(self, cell: Cell, message: Message, timeout: float | None) -> None:
        try:
            cell.mailbox.offer(message, timeout)
        except errors.BeehiveError as exc:
            self.dead_letters.add(cell.name, str(exc), message)
            raise

    def _info(self, cell: Cell) -> ModuleInfo:
        rate_in = rate_out = 0.0
        if len(cell.samples) >= 2:
            (t0, in0, out0), (t1, in1, out1) = cell.samples[0], cell.samples[-1]
            rate_in, rate_out = (in1 - in0) / (t1 - t0), (out1 - out0) / (t1 - t0)
        return ModuleInfo(
            name=cell.name,
            group=cell.group,
            impl=cell.impl,
            style="pull" if cell.pull_style else "push",
            state=str(cell.state),
            restarts=cell.restarts,
            failures=cell.failures,
            last_error=cell.last_error,
            mailbox=cell.mailbox.stats(),
            rate_in=rate_in,
            rate_out=rate_out,
            alive=cell.alive,
        )

    def sample_stats(self) -> None:
        """Record one rate sample per mailbox (the stats thread calls this each interval)."""
        now = time.monotonic()
        for cell in list(self._cells.values()):
            cell.samples.append((now, cell.mailbox.received, cell.mailbox.delivered))

    def _sample_stats(self) -> None:
        while not self._stats_stop.wait(self._stats_interval):
            self.sample_stats()


def _qualname(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__name__)}"
