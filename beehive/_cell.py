"""One module's runtime: its pykka actor, mailbox, supervision and state.

The hive owns one cell per registered module. The actor's inbox *is* the cell's
mailbox, so the pykka loop takes messages straight from it (push style) while
pull-style modules run their loop inside the actor's start hook. Failures never
reach pykka (which would stop the actor): the cell catches them, records a dead
letter, and restarts a fresh module instance according to the restart policy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pykka

from beehive import errors
from beehive.mailbox import Mailbox
from beehive.message import Message
from beehive.module import Module, ModuleContext
from beehive.spec import MailboxSpec, RestartPolicy, RestartSpec

if TYPE_CHECKING:
    from beehive.hive import Hive

log = logging.getLogger("beehive.hive")

ModuleFactory = Callable[[ModuleContext], Module]
# Data messages a push-style module's actor handles per pass through pykka's loop.
RUN = 64


class ModuleState(StrEnum):
    REGISTERED = "registered"
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"  # waiting out the backoff after a failure
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"  # pull-style run() returned and the policy does not restart
    FAILED = "failed"  # gave up after a failure (policy never, or max_restarts)


class _ModuleActor(pykka.ThreadingActor):
    """The pykka actor behind a cell; all logic lives in the cell."""

    use_daemon_thread = True  # a module stuck in a handler must not keep the process alive

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        super().__init__()
        cell.bind(self.actor_ref)  # before the thread starts: on_start may need it

    def _create_actor_inbox(self) -> Mailbox:  # type: ignore[override]
        return self._cell.mailbox

    def on_start(self) -> None:
        threading.current_thread().name = f"beehive-{self._cell.name}"
        self._cell.actor_started()

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Message):
            cell = self._cell
            cell.handle(message)
            # Then what else is queued, up to a run of RUN, without pykka's loop.
            next_data = cell.mailbox.next_data
            for _ in range(RUN - 1):
                queued = next_data()
                if queued is None:
                    break
                cell.handle(queued)

    def on_stop(self) -> None:
        self._cell.stop_instance()


class Cell:
    """Runtime state of one module (see the module docstring)."""

    def __init__(
        self,
        hive: Hive,
        *,
        name: str,
        factory: ModuleFactory,
        pull_style: bool,
        impl: str,
        group: str,
        mailbox: MailboxSpec,
        restart: RestartSpec,
        settings: Any,
        services: Mapping[str, Any],
    ) -> None:
        self.hive = hive  # for dead letters and waiters
        self.name = name  # the module's name in the hive
        self.group = group  # the hive group it belongs to ("" for none)
        self.impl = impl  # dotted path of the implementation, for display
        self.pull_style = pull_style  # runs its own receive loop
        self.restart = restart  # restart policy and backoff
        self.stopping = threading.Event()  # set by Hive.stop; module code may watch it
        self.context = ModuleContext(name, group, hive, settings, services, self.stopping)
        self.mailbox = Mailbox(
            name,
            capacity=mailbox.size,
            when_full=mailbox.when_full,
            timeout=mailbox.timeout,
            on_drop=lambda msg, why: hive.dead_letters.add(name, why, msg),
        )
        self._factory = factory  # builds a fresh module instance (first start and restarts)
        self.instance: Module | None = None  # the running instance, None while down
        self.state = ModuleState.REGISTERED
        self.restarts = 0  # instances started after the first
        self.failures = 0  # handler/start/run exceptions seen
        self.last_error = ""  # text of the most recent failure
        self._consecutive = 0  # failures since the last healthy message, for the backoff
        self._loop_done = threading.Event()  # the actor left its start hook (pull loop ended)
        self.started = threading.Event()  # the first on_start returned (or failed)
        self._actor: pykka.ActorRef[Any] | None = None
        self.samples: deque[tuple[float, int, int]] = deque(maxlen=11)  # (t, in, out) per tick

    # --- called by the hive (any thread) ---------------------------------------------

    def start(self) -> None:
        self.state = ModuleState.STARTING
        _ModuleActor.start(self)

    def bind(self, actor: pykka.ActorRef[Any]) -> None:
        self._actor = actor

    @property
    def alive(self) -> bool:
        """Whether the actor's thread runs (it ends on stop, or when the module gave up)."""
        return self._actor is not None and self._actor.is_alive()

    def stop(self, timeout: float) -> list[Message]:
        """Close, drain within `timeout`, stop the actor; returns what was left queued."""
        deadline = time.monotonic() + timeout
        self.stopping.set()
        self.mailbox.close()
        if self.state not in (ModuleState.FAILED, ModuleState.FINISHED):
            self.state = ModuleState.STOPPING
        while self.mailbox.depth and time.monotonic() < deadline:
            if self.pull_style and self._loop_done.is_set():
                break
            self.mailbox.wait_empty(min(0.05, max(deadline - time.monotonic(), 0)))
        leftover = self.mailbox.drain()
        if self._actor is not None:
            try:
                self._actor.stop(block=True, timeout=max(deadline - time.monotonic(), 0.01))
            except pykka.Timeout:
                log.error("module %s did not stop within %gs", self.name, timeout)
            except pykka.ActorDeadError:
                pass
        if self.state is ModuleState.STOPPING:
            self.state = ModuleState.STOPPED
        self.hive.fail_waiters(self.name, "stopped")
        return leftover

    # --- called on the actor's thread ------------------------------------------------

    def actor_started(self) -> None:
        try:
            failure = self._start_instance()
            self.started.set()
            if failure is not None and not self._recover(failure):
                return
            if self.pull_style:
                self._pull_loop()
        finally:
            self.started.set()
            self._loop_done.set()

    def handle(self, message: Message) -> None:
        instance = self.instance
        if instance is None:
            self.hive.dead_letters.add(self.name, f"module {self.state}", message)
            self.hive.fail_waiter(message.msg_id, errors.ModuleStoppedError(self.name, self.state))
            return
        try:
            instance.on_message(message)
        except Exception as exc:
            self._failed(exc, "on_message", message)
            self._recover(exc)
            return
        if self._consecutive:
            self._consecutive = 0

    def stop_instance(self) -> None:
        instance, self.instance = self.instance, None
        if instance is None:
            return
        try:
            instance.on_stop()
        except Exception:
            log.exception("module %s: on_stop failed", self.name)

    def _pull_loop(self) -> None:
        while not self.stopping.is_set():
            assert self.instance is not None
            try:
                self.instance.run()
                failure: BaseException | None = None
            except errors.ModuleStoppedError as exc:
                failure = None if self.stopping.is_set() else exc
            except Exception as exc:
                failure = exc
            if self.stopping.is_set():
                return
            if failure is not None:
                self._failed(failure, "run", None)
            elif self.restart.policy is not RestartPolicy.ALWAYS:
                self._give_up(ModuleState.FINISHED, "run() returned")
                return
            if not self._recover(failure):
                return

    def _start_instance(self) -> BaseException | None:
        try:
            self.instance = self._factory(self.context)
            self.instance.on_start()
        except Exception as exc:
            self._failed(exc, "start", None)
            return exc
        self.state = ModuleState.RUNNING
        return None

    def _failed(self, exc: BaseException, where: str, message: Message | None) -> None:
        self.failures += 1
        self._consecutive += 1
        self.last_error = f"{where}: {type(exc).__name__}: {exc}"
        msg_id = message.msg_id if message is not None else "-"
        log.error(
            "module %s failed in %s (msg_id=%s): %s",
            self.name,
            where,
            msg_id,
            exc,
            exc_info=exc,
        )
        if message is not None:
            self.hive.dead_letters.add(self.name, f"handler failed: {self.last_error}", message)
            if message.header.sync:
                self.hive.fail_waiter(message.msg_id, exc)

    def _recover(self, failure: BaseException | None) -> bool:
        """Restart per policy after `failure`; True once a fresh instance runs."""
        while True:
            self.stop_instance()
            out_of_tries = self.restart.max_restarts and self.restarts >= self.restart.max_restarts
            if failure is not None and (self.restart.policy is RestartPolicy.NEVER or out_of_tries):
                self._give_up(ModuleState.FAILED, self.last_error)
                return False
            self.state = ModuleState.RESTARTING
            if self.stopping.wait(self.restart.delay(self._consecutive)):
                return False
            self.restarts += 1
            log.info("module %s: restart #%d", self.name, self.restarts)
            failure = self._start_instance()
            if failure is None:
                return True

    def _give_up(self, state: ModuleState, why: str) -> None:
        self.state = state
        log.error("module %s %s: %s", self.name, state, why)
        self.mailbox.close()
        for message in self.mailbox.drain():
            self.hive.dead_letters.add(self.name, f"module {state}", message)
        self.hive.fail_waiters(self.name, str(state))
        if self._actor is not None:
            self._actor.stop(block=False)  # processed once this handler returns
