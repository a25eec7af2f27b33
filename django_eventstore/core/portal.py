"""One background event loop per process, and the bridge to it from sync and async callers.

nats-py is asyncio and its connection belongs to one loop, so the store keeps
that loop in a daemon thread. Sync callers hand a coroutine over with
``call_soon_threadsafe`` and wait on a lock; coroutines from any other loop
await it through a wrapped future. A forked child starts its own loop.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from typing import Any, Callable, Coroutine, TypeVar

from .errors import EventStoreError, EventStoreUnavailable

T = TypeVar("T")

_portals: "weakref.WeakSet[Portal]" = weakref.WeakSet()


def _closed() -> EventStoreUnavailable:
    return EventStoreUnavailable("the store was closed while the call was running")


class Portal:
    """Runs coroutines on a private event loop in a daemon thread, started on first use."""

    def __init__(self, name: str = "django-eventstore", on_fork: Callable[[], None] | None = None):
        self._name = name
        self._on_fork = on_fork
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._waiting: set[Callable[[Any, BaseException | None], None]] = set()
        self._pid = os.getpid()
        _portals.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's loop thread does not exist here; start afresh on next use."""
        self._lock = threading.Lock()
        self._loop = None
        self._waiting = set()
        self._pid = os.getpid()
        if self._on_fork is not None:
            self._on_fork()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._pid != os.getpid():
            self._after_fork()
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._thread = threading.Thread(target=self._run_loop, args=(loop, ready), name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()
        for finish in list(self._waiting):  # calls stepped without a task (3.11) end here
            finish(None, _closed())

    def in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro on the portal loop and wait for its result in this thread."""
        loop = self.loop
        if self.in_loop_thread():
            coro.close()
            raise EventStoreError(
                "a sync store method was called from the store's own event loop; await its async twin (a-prefixed) instead"
            )
        waiter = threading.Lock()
        waiter.acquire()
        box: list[Any] = []

        def finish(result: Any, error: BaseException | None) -> None:
            if box:
                return
            box.extend((result, error))
            self._waiting.discard(finish)
            waiter.release()

        self._waiting.add(finish)
        try:
            loop.call_soon_threadsafe(_start, coro, finish)
        except RuntimeError:  # the loop closed meanwhile
            self._waiting.discard(finish)
            coro.close()
            raise _closed() from None
        waiter.acquire()
        error = box[1]
        if error is not None:
            if isinstance(error, asyncio.CancelledError):
                raise _closed() from None
            raise error
        return box[0]

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await coro on the portal loop from whatever loop is running."""
        loop = self.loop
        if asyncio.get_running_loop() is loop:
            return await coro
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:
            coro.close()
            raise _closed() from None
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and not (task is not None and task.cancelling()):
                raise _closed() from None
            raise

    def stop(self) -> None:
        """Stop the loop thread, failing the calls still running (the next call starts a new loop)."""
        with self._lock:
            loop, self._loop = self._loop, None
            thread = self._thread
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None and thread is not threading.current_thread():
                thread.join(10)


async def _run(coro: Coroutine[Any, Any, Any], finish: Callable[[Any, BaseException | None], None]) -> None:
    try:
        result = await coro
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
        finish(None, exc)
        return
    finish(result, None)


_running: set[asyncio.Task[None]] = set()


def _start_eager_task(coro: Coroutine[Any, Any, Any], finish: Callable[[Any, BaseException | None], None]) -> None:
    """Python 3.12+: a task whose first step runs now, not on the next loop turn."""
    task = asyncio.Task(_run(coro, finish), loop=asyncio.get_running_loop(), eager_start=True)  # type: ignore[call-arg]
    if not task.done():
        _running.add(task)
        task.add_done_callback(_running.discard)


def _drive(coro: Coroutine[Any, Any, Any], finish: Callable[[Any, BaseException | None], None]) -> None:
    """Python 3.11: step coro eagerly, as a Task would, without a Task's two extra loop turns.

    Saves about a third of the sync hand-off. Code that needs a current task
    (wait_for's timeout on 3.12+) never runs here: 3.12+ uses eager tasks.
    """

    def step(_: object = None) -> None:
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            finish(stop.value, None)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            finish(None, exc)
            return
        if getattr(yielded, "_asyncio_future_blocking", False):
            yielded._asyncio_future_blocking = False
            yielded.add_done_callback(step)
        elif yielded is None:
            asyncio.get_running_loop().call_soon(step)
        else:
            coro.close()
            finish(None, RuntimeError(f"store coroutine yielded {yielded!r}, not an asyncio future"))

    step()


_start_now = _start_eager_task if sys.version_info >= (3, 12) else _drive


def _start(coro: Coroutine[Any, Any, Any], finish: Callable[[Any, BaseException | None], None]) -> None:
    try:
        _start_now(coro, finish)
    except BaseException as exc:  # noqa: BLE001 - the caller waits for finish: it must always come
        coro.close()
        finish(None, exc)


def _reset_portals_in_child() -> None:
    for portal in list(_portals):
        portal._after_fork()


os.register_at_fork(after_in_child=_reset_portals_in_child)
