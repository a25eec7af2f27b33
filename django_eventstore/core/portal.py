"""One background event loop per process, and the bridge to it from sync and async callers.

nats-py is asyncio and its connection belongs to one loop, so the store keeps
that loop in a daemon thread. A sync caller hands its coroutine over with
``loop.call_soon_threadsafe`` and blocks on a lock until the task finishes;
coroutines from any other loop await it through ``run_coroutine_threadsafe``.
On Python 3.12+ the loop starts tasks eagerly (``asyncio.eager_task_factory``),
so a request goes out in the same loop turn that received it. A forked child
starts its own loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Any, Callable, Coroutine, TypeVar

from .errors import EventStoreError, EventStoreUnavailable

T = TypeVar("T")

_portals: weakref.WeakSet[Portal] = weakref.WeakSet()

# asyncio receives into a fresh 256 KiB buffer on every read, then shrinks it to what arrived.
# glibc serves blocks that large with mmap until a freed block raises its dynamic mmap threshold
# (mallopt(3)); until then, in a thread's arena with no free block that large (the loop thread's),
# every message the loop receives costs mmap, mremap, munmap and a page fault (about 10 % of a
# sync save_event on a two-core VM). Freeing one larger block at the loop's start raises the threshold.
_MMAP_THRESHOLD_RAISER = 512 * 1024


def _raise_mmap_threshold() -> None:
    """Allocate and free one block larger than asyncio's read buffer (see _MMAP_THRESHOLD_RAISER)."""
    bytearray(_MMAP_THRESHOLD_RAISER)


Finish = Callable[[Any, "BaseException | None"], None]


def closed_while_running() -> EventStoreUnavailable:
    """The error of a call the store's close() cut short."""
    return EventStoreUnavailable("the store was closed while the call was running")


class _LoopState:
    """What belongs to one run of the loop: its tasks, and the sync callers waiting on them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()  # strong references: the loop keeps only weak ones
        self.waiting: set[Finish] = set()
        self.closing = False


class Portal:
    """Runs coroutines on a private event loop in a daemon thread, started on first use."""

    def __init__(self, name: str = "django-eventstore", on_fork: Callable[[], None] | None = None):
        self._name = name
        self._on_fork = on_fork
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _LoopState()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        _portals.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's loop thread does not exist here; start afresh on next use."""
        self._lock = threading.Lock()
        self._loop = None
        self._state = _LoopState()
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
                if hasattr(asyncio, "eager_task_factory"):  # Python 3.12+
                    loop.set_task_factory(asyncio.eager_task_factory)
                state = self._state = _LoopState()
                ready = threading.Event()
                self._thread = threading.Thread(target=self._run_loop, args=(loop, state, ready), name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, state: _LoopState, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(_raise_mmap_threshold)  # a callback: were it to fail, the loop still starts
        loop.call_soon(ready.set)
        try:
            loop.run_forever()  # a KeyboardInterrupt or SystemExit in a task ends it too
        finally:
            with self._lock:
                if self._loop is loop:  # ended by itself, not by stop(): the next call starts a new loop
                    self._loop = None
            state.closing = True
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.close()
            finally:
                for finish in list(state.waiting):  # anything handed over as the loop stopped
                    finish(None, closed_while_running())

    def in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro on the portal loop and wait for its result in this thread."""
        loop = self.loop
        state = self._state
        if self.in_loop_thread():
            coro.close()
            raise EventStoreError("a sync store method was called from the store's own event loop; await its async twin (a-prefixed) instead")
        waiter = threading.Lock()
        waiter.acquire()
        box: list[Any] = []

        def finish(result: Any, error: BaseException | None) -> None:
            if box:
                return
            box.extend((result, error))
            state.waiting.discard(finish)
            waiter.release()

        state.waiting.add(finish)
        try:
            loop.call_soon_threadsafe(_start, state, coro, finish)
        except RuntimeError:  # the loop closed meanwhile
            state.waiting.discard(finish)
            coro.close()
            raise closed_while_running() from None
        waiter.acquire()
        error = box[1]
        if error is not None:
            if isinstance(error, asyncio.CancelledError):
                raise closed_while_running() from None
            raise error
        return box[0]  # type: ignore[no-any-return]

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


async def _finishing(coro: Coroutine[Any, Any, T], finish: Finish) -> T:
    """coro's outcome, handed to finish as soon as it is known (a done callback would wait a loop turn)."""
    try:
        result = await coro
    except BaseException as exc:
        finish(None, exc)
        raise
    finish(result, None)
    return result


def _start(state: _LoopState, coro: Coroutine[Any, Any, Any], finish: Finish) -> None:
    """On the loop: run coro as a task and hand its outcome to finish (which may come twice: the first counts)."""
    if state.closing:
        coro.close()
        finish(None, closed_while_running())
        return
    running = _finishing(coro, finish)
    try:
        task = asyncio.get_running_loop().create_task(running)
    except BaseException as exc:  # noqa: BLE001 - the caller waits for finish: it must always come
        running.close()
        coro.close()
        finish(None, exc)
        return

    def done(task: asyncio.Task[Any]) -> None:  # finish has come already, unless the task was cancelled before it ran
        state.tasks.discard(task)
        if task.cancelled():
            coro.close()  # cancelled before its first step (no eager tasks before 3.12), coro never ran
            finish(None, asyncio.CancelledError())
        elif task.exception() is not None:
            finish(None, task.exception())
        else:
            finish(task.result(), None)

    if task.done():  # an eager task that finished without suspending
        done(task)
        return
    state.tasks.add(task)
    task.add_done_callback(done)


def _reset_portals_in_child() -> None:
    for portal in list(_portals):
        portal._after_fork()


os.register_at_fork(after_in_child=_reset_portals_in_child)
