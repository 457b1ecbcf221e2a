"""An idempotent producer that outlives librdkafka's fatal errors by replacing its client.

librdkafka gives an idempotent producer up for good on a fatal error (OUT_OF_ORDER_SEQUENCE_NUMBER,
UNKNOWN_PRODUCER_ID, a fenced producer): its error callback gets the error with ``fatal()`` True, the
records still queued fail (``_PURGE_QUEUE``), those in flight get the broker's answer, and every later
``produce`` raises ``_FATAL``. Only a new client goes on. :class:`RenewingProducer` hands each user the
current client (a :class:`Generation`) and, once one is found fatal, makes a new one for the next users;
the old client's own users still get its delivery reports (or its errors), and it is closed in the
background once the last of them is done, so nothing waits for it but the appends it failed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pinpipe._optional import require
from pinpipe.log.kafka.delivery import DELIVERY_MARGIN_S
from pinpipe.log.kafka.reader import ProducerFatalError, is_fatal

ck = require("confluent_kafka", "kafka")
_log = logging.getLogger(__name__)
_librdkafka = logging.getLogger("pinpipe.kafka")  # where librdkafka's errors went before error_cb took them


class Generation:
    """One librdkafka producer, its fatal error once it had one, and how many users hold it."""

    __slots__ = ("client", "fatal", "users")

    def __init__(self, config: Mapping[str, Any], make: Callable[[dict[str, Any]], Any]) -> None:
        self.fatal: Any = None
        """The KafkaError that ended the client (the broker's, from the error callback, once served)."""
        self.users = 0
        self.client = make({**config, "error_cb": self._on_error})

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.fatal = err  # the real cause: replaces a ``_FATAL`` seen at produce first
        else:  # what librdkafka logs itself when no error callback is set
            _librdkafka.error("%s", err.str())

    def failed(self, errors: Iterable[Any]) -> bool:
        """Whether ``errors`` (from ``produce`` or delivery reports) came from this client's end: one is
        fatal, or the client is (its queued records fail with ``_PURGE_QUEUE``, those in flight with the
        broker's error). A fatal error the error callback has not been given yet is served first."""
        for err in errors:
            if is_fatal(err) and self.fatal is None:
                self.fatal = err
        if self.fatal is None:
            self.client.poll(0)
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
        gen.client.poll(0)  # the error callback: the warning names the broker's error
        _log.warning(
            "Kafka %s producer stopped by a fatal error (%s): the appends it failed answer a retryable "
            "error; a new producer takes over",
            self._what,
            gen.fatal.str(),
        )
        gen.client.flush(self._timeout_s)
        with self._cond:
            idle = self._cond.wait_for(lambda: gen.users <= 0, self._timeout_s + DELIVERY_MARGIN_S)
        if idle:
            gen.client.close()

    def flush(self) -> int:
        """``flush`` of the current generation: the number of records still undelivered."""
        return int(self.current.client.flush(self._timeout_s))

    def close(self) -> None:
        """Flush the current generation; wait (bounded) for retired ones to close."""
        self.flush()
        with self._cond:
            retiring, self._retiring = self._retiring, []
        for thread in retiring:
            thread.join(self._timeout_s + DELIVERY_MARGIN_S)
