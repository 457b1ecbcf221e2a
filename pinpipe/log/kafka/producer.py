"""An idempotent producer that outlives librdkafka's fatal errors by replacing its client.

librdkafka gives an idempotent producer up for good on a fatal error (OUT_OF_ORDER_SEQUENCE_NUMBER,
UNKNOWN_PRODUCER_ID, a fenced producer, a gap ``enable.gapless.guarantee`` forbids): the records in flight
or queued fail, and every later ``produce`` raises ``_FATAL``. confluent-kafka raises the fatal error
itself from the ``poll`` or ``flush`` that serves it (the error callback never sees it), possibly
as the context of a SystemError from a delivery callback it ran with that error still pending.

Only a new client goes on. :class:`RenewingProducer` hands each user the current client (a
:class:`Generation`) and, once one is found fatal, makes a new one for the next users; the old client's
own users still get its delivery reports (or its errors), and it is closed in the background once the
last of them is done, so nothing waits for it but the appends it failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pinpipe._optional import require
from pinpipe.log.kafka.delivery import DELIVERY_MARGIN_S
from pinpipe.log.kafka.reader import ProducerFatalError, is_fatal

ck = require("confluent_kafka", "kafka")
_log = logging.getLogger(__name__)

SETTLE_S = 1.0
"""How long a failed append waits for another thread's ``poll`` or ``flush`` that may be raising the
fatal error behind its failed reports (that thread served both)."""


def _fatal_in(exc: BaseException) -> Any:
    """The fatal KafkaError ``exc`` carries (itself, or as the cause or context of a SystemError)."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        if isinstance(candidate, ck.KafkaException) and candidate.args and is_fatal(candidate.args[0]):
            return candidate.args[0]
    return None


class Generation:
    """One librdkafka producer, its fatal error once it had one, and how many users hold it."""

    __slots__ = ("_lock", "_running", "_tickets", "client", "fatal", "users")

    def __init__(self, config: Mapping[str, Any], make: Callable[[dict[str, Any]], Any]) -> None:
        self.fatal: Any = None
        """The KafkaError that ended the client (``_FATAL`` from produce until the real one is served)."""
        self.users = 0
        self._running: set[int] = set()  # the poll/flush calls running now, by ticket
        self._tickets = 0
        self._lock = threading.Lock()
        self.client = make(dict(config))

    def serve(self, timeout: float, flush: bool = False) -> int:
        """``poll`` (or ``flush``) the client: a fatal error it raises is kept in ``fatal``, not raised.
        Returns what librdkafka returns (0 after a fatal error)."""
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
            self._running.add(ticket)
        try:
            return int((self.client.flush if flush else self.client.poll)(timeout))
        except Exception as exc:
            err = _fatal_in(exc)
            if err is None:
                raise
            if self.fatal is None or self.fatal.code() == ck.KafkaError._FATAL:
                self.fatal = err
            return 0
        finally:
            with self._lock:
                self._running.discard(ticket)

    def failed(self, errors: Iterable[Any]) -> bool:
        """Whether ``errors`` (from ``produce`` or delivery reports) came from this client's end: one is
        fatal, or the client is (its failed records report the broker's error or ``_PURGE_QUEUE``). The
        fatal error may still be queued, or raising in another thread that served both: the calls running
        now are waited for."""
        for err in errors:
            if is_fatal(err) and self.fatal is None:
                self.fatal = err
        if self.fatal is None:
            with self._lock:
                running = list(self._running)
            self.serve(0)
            deadline = time.monotonic() + SETTLE_S
            while self.fatal is None and any(t in self._running for t in running):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
        return self.fatal is not None

    def error(self, what: str) -> ProducerFatalError:
        """The retryable error of the appends this client failed."""
        return ProducerFatalError(
            f"Kafka: {what}: the producer failed fatally ({self.fatal.str()}); the records may be stored "
            "(a new producer takes over): retry"
        )


class RenewingProducer:
    """The current :class:`Generation` of a producer with ``config``; safe to share between threads.
    ``acquire`` a generation before producing on it and ``release`` it once its reports are served."""

    def __init__(
        self,
        config: Mapping[str, Any],
        timeout_s: float,
        what: str,
        make: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._config = dict(config)
        self._timeout_s = timeout_s
        self._what = what
        self._make = make or (lambda conf: ck.Producer(conf))
        self._cond = threading.Condition()
        self._retiring: list[threading.Thread] = []
        self.current = Generation(self._config, self._make)

    def acquire(self) -> Generation:
        """The current generation (a new one if the current went fatal), held until ``release``."""
        with self._cond:
            if self.current.fatal is not None:
                self._replace(self.current)
            gen = self.current
            gen.users += 1
            return gen

    def release(self, gen: Generation) -> None:
        with self._cond:
            gen.users -= 1
            self._cond.notify_all()

    def renew(self, gen: Generation) -> Generation:
        """Replace ``gen`` (gone fatal) unless another thread did already; returns the new current
        generation, held by the caller instead of ``gen``."""
        with self._cond:
            if self.current is gen:
                self._replace(gen)
            gen.users -= 1
            self.current.users += 1
            self._cond.notify_all()
            return self.current

    def _replace(self, gen: Generation) -> None:
        """A new current generation; ``gen`` is retired in the background. Called holding the lock."""
        self.current = Generation(self._config, self._make)
        self._retiring = [t for t in self._retiring if t.is_alive()]
        thread = threading.Thread(target=self._retire, args=(gen,), name="kafka-producer-retire", daemon=True)
        self._retiring.append(thread)
        thread.start()

    def _retire(self, gen: Generation) -> None:
        """Serve the reports of ``gen``'s records still in flight (their appends get them), then close it
        once its last user released it."""
        gen.serve(0)  # the fatal error itself, if only ``_FATAL`` from produce is known yet
        _log.warning(
            "Kafka %s producer stopped by a fatal error (%s): the appends it failed answer a retryable "
            "error; a new producer takes over",
            self._what,
            gen.fatal.str(),
        )
        gen.serve(self._timeout_s, flush=True)
        with self._cond:
            idle = self._cond.wait_for(lambda: gen.users <= 0, self._timeout_s + DELIVERY_MARGIN_S)
        if idle:
            gen.client.close()

    def flush(self) -> int:
        """``flush`` of the current generation: the number of records still undelivered."""
        return self.current.serve(self._timeout_s, flush=True)

    def close(self) -> None:
        """Flush the current generation; wait (bounded) for retired ones to close."""
        self.flush()
        with self._cond:
            retiring, self._retiring = self._retiring, []
        for thread in retiring:
            thread.join(self._timeout_s + DELIVERY_MARGIN_S)
