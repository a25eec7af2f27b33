"""One background event loop per process, and the bridge to it from sync and async callers.

nats-py is asyncio and its connection belongs to one loop, so the store keeps
that loop in a daemon thread. Sync callers hand a coroutine over with
``call_soon_threadsafe`` and wait on a lock; coroutines from any other loop
await it through a wrapped future. A forked child starts its own loop.

A hand-over costs two thread wake-ups on top of the request's own, so the
store's sync methods go further: ``Portal.drive`` runs the coroutine in the
caller's thread, which writes its requests itself and blocks on a
``Blocking`` until the loop, reading the socket, hands it the reply. Code
driven that way moves to the loop (``await on_loop()``) before anything
else needs it, e.g. connecting.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import weakref
from typing import Any, Callable, Coroutine, Generator, TypeVar

from .errors import EventStoreError, EventStoreUnavailable

T = TypeVar("T")

_portals: "weakref.WeakSet[Portal]" = weakref.WeakSet()


_local = threading.local()
_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()


def closed_while_running() -> EventStoreUnavailable:
    """The error of a call the store's close() cut short."""
    return EventStoreUnavailable("the store was closed while the call was running")


def in_caller_thread() -> bool:
    """True while Portal.drive runs a coroutine in a sync caller's thread (not on the loop)."""
    return getattr(_local, "driving", False)


class _OnLoop:
    def __await__(self) -> Generator[Any, None, None]:
        if in_caller_thread():
            yield self


_ON_LOOP = _OnLoop()


def on_loop() -> _OnLoop:
    """Await it to go on running on the portal loop (a no-op there): for anything but Blocking waits."""
    return _ON_LOOP


async def sleep(seconds: float) -> None:
    """Pause the calling code: the caller's thread under Portal.drive, else the running loop's task."""
    if in_caller_thread():
        time.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


class Blocking:
    """A result the loop thread sets and a sync caller's thread blocks on, for at most timeout seconds.

    Only a coroutine run by Portal.drive awaits it; the await raises TimeoutError when nothing came in time.
    """

    __slots__ = ("_timeout", "_lock", "_result", "_error", "_done")

    def __init__(self, timeout: float):
        self._timeout = timeout
        self._lock = threading.Lock()
        self._lock.acquire()
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any) -> None:
        if not self._done:
            self._result, self._done = result, True
            self._lock.release()

    def set_exception(self, error: BaseException) -> None:
        if not self._done:
            self._error, self._done = error, True
            self._lock.release()

    def wait(self) -> None:
        """Block this thread until the result is set or the timeout has passed."""
        self._lock.acquire(timeout=min(self._timeout, threading.TIMEOUT_MAX))

    def __await__(self) -> Generator[Any, None, Any]:
        if not self._done:
            yield self
        if not self._done:
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._result


class Portal:
    """Runs coroutines on a private event loop in a daemon thread, started on first use."""

    def __init__(self, name: str = "django-eventstore", on_fork: Callable[[], None] | None = None):
        self._name = name
        self._on_fork = on_fork
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # the sync callers waiting on each loop, failed when that loop stops
        self._waiting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[Callable[[Any, BaseException | None], None]]] = weakref.WeakKeyDictionary()
        self._pid = os.getpid()
        _portals.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's loop thread does not exist here; start afresh on next use."""
        self._lock = threading.Lock()
        self._loop = None
        self._waiting = weakref.WeakKeyDictionary()
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
                self._waiting[loop] = set()
                ready = threading.Event()
                self._thread = threading.Thread(target=self._run_loop, args=(loop, ready), name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()  # a KeyboardInterrupt or SystemExit in a task ends it too
        finally:
            with self._lock:
                if self._loop is loop:  # ended by itself, not by stop(): the next call starts a new loop
                    self._loop = None
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.close()
            finally:
                for finish in list(self._waiting.get(loop, ())):  # calls stepped without a task (3.11) end here
                    finish(None, closed_while_running())

    def in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _loop_for_sync_caller(self, coro: Coroutine[Any, Any, Any]) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if self.in_loop_thread():
            coro.close()
            raise EventStoreError(
                "a sync store method was called from the store's own event loop; await its async twin (a-prefixed) instead"
            )
        return loop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro on the portal loop and wait for its result in this thread."""
        return self._hand_over(self._loop_for_sync_caller(coro), coro)

    def drive(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro in this thread, blocking on each Blocking it awaits; from its first on_loop() on, on the loop.

        Only for coroutines written for it: until on_loop(), they await nothing but Blockings.
        """
        if not _GIL:  # the thread hand-offs below rely on the GIL's atomicity
            return self.call(coro)
        loop = self._loop_for_sync_caller(coro)
        outer = in_caller_thread()
        _local.driving = True
        try:
            yielded = coro.send(None)
            while yielded is not _ON_LOOP:
                if not isinstance(yielded, Blocking):
                    raise RuntimeError(f"a coroutine driven in the caller's thread awaited {yielded!r}; await on_loop() first")
                yielded.wait()
                yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except BaseException:
            coro.close()
            raise
        finally:
            _local.driving = outer
        return self._hand_over(loop, coro)

    def _hand_over(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
        """Run (or resume) coro on the loop and wait in this thread for it to finish."""
        waiter = threading.Lock()
        waiter.acquire()
        box: list[Any] = []
        waiting = self._waiting[loop]

        def finish(result: Any, error: BaseException | None) -> None:
            if box:
                return
            box.extend((result, error))
            waiting.discard(finish)
            waiter.release()

        waiting.add(finish)
        try:
            loop.call_soon_threadsafe(_start, coro, finish)
        except RuntimeError:  # the loop closed meanwhile
            waiting.discard(finish)
            coro.close()
            raise closed_while_running() from None
        waiter.acquire()
        error = box[1]
        if error is not None:
            if isinstance(error, asyncio.CancelledError):
                raise closed_while_running() from None
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
            raise closed_while_running() from None
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and not (task is not None and task.cancelling()):
                raise closed_while_running() from None
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


_running: set[asyncio.Task[Any]] = set()


def _report(task: asyncio.Task[Any], finish: Callable[[Any, BaseException | None], None]) -> None:
    if task.cancelled():
        finish(None, asyncio.CancelledError())
        return
    error = task.exception()
    finish(None, error) if error is not None else finish(task.result(), None)


def _start_eager_task(coro: Coroutine[Any, Any, Any], finish: Callable[[Any, BaseException | None], None]) -> None:
    """Python 3.12+: a task whose first step runs now, not on the next loop turn.

    The task runs coro itself (no wrapper awaiting it): coro may already be
    suspended, started by Portal.drive in the caller's thread.
    """
    task = asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)  # type: ignore[call-arg]
    if task.done():
        _report(task, finish)
        return
    _running.add(task)

    def done(task: asyncio.Task[Any]) -> None:
        _running.discard(task)
        _report(task, finish)

    task.add_done_callback(done)


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
