"""The composition root: the one place the service's parts are built and wired, for the API, the CLI and the
benches alike. ``Services.open(settings)`` gives the database, store, chain reader, queue (on the in-process
backend, or on Celery's with ALEAART_BROKER_URL), the model, uploads and publishing; ``close`` ends them.
``open_runner(settings)`` is its smaller part for what runs jobs without a service (the CLI's commands, a cluster
worker): the engine, loaded now, and the signing identity."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aleaart.chain import ChainReader
from aleaart.config import Settings
from aleaart.database import Database, move_journal_out_of_the_index, unfinished_jobs_in
from aleaart.errors import Limited
from aleaart.integrations.publisher import Publisher
from aleaart.jobs import EngineLike, JobBook, JobQueue, ModelHolder, Queue
from aleaart.jobs.runner import Runner
from aleaart.keys import KeyRing
from aleaart.limits import NO_LIMITS, Limiter, Rate
from aleaart.metrics import Metrics
from aleaart.provenance.credentials import Credentials
from aleaart.store import ImageStore
from aleaart.tally import LocalTally, RedisTally
from aleaart.uploads import ModelRegistry
from aleaart.watch.journal import WatchJournal
from aleaart.watch.watcher import WatchConfig, Watcher
from aleaart.webhooks.hub import Webhooks

log = logging.getLogger(__name__)

Loader = Callable[[], EngineLike]


def engine_loader(settings: Settings) -> Loader:
    def load() -> EngineLike:
        from aleaart.engine.pipeline import Engine  # torch is imported here, off the request path

        return Engine.load(settings)

    return load


def open_runner(settings: Settings, *, loader: Loader | None = None) -> Runner:
    """The engine loaded now, with the signing identity: what the CLI's commands and a cluster worker run jobs
    with (the service loads its engine in the background instead: ``ModelHolder``)."""
    credentials = Credentials.from_settings(settings)  # a key that cannot sign is said before the model loads
    return Runner((loader or engine_loader(settings))(), credentials=credentials)


@dataclass(frozen=True)
class Admission:
    """What the queue asks before a render of ``owner``'s (not a store hit, not a join): within its key's limits;
    and what it says when the owner no longer waits for it."""

    keys: KeyRing
    limiter: Limiter
    metrics: Metrics

    def admit(self, owner: str, job_id: str) -> None:
        if owner and (limits := self.keys.limits_of(owner)) != NO_LIMITS:
            try:
                self.limiter.render(owner, limits, job_id)
            except Limited as over:
                self.metrics.key_limited.labels(owner, over.policy).inc()
                raise
        self.metrics.key_renders.labels(owner or "-").inc()

    def left(self, owner: str, job_id: str) -> None:
        if owner:
            self.limiter.done(owner, job_id)


def open_limiter(settings: Settings, journal_db: Database, queue: Queue) -> Limiter:
    """Limits counted here and in the journal, or, with ALEAART_BROKER_URL, in the Redis every API process shares."""
    keyless = Rate.parse(settings.keyless_rate) if settings.keyless_rate else None
    if settings.broker_url:
        from aleaart.cluster.app import redis_client

        return Limiter(RedisTally(redis_client(settings), waiting_seconds=round(settings.result_hours * 3600)),
                       keyless_rate=keyless)
    return Limiter(LocalTally(journal_db, queue.waiting_of), keyless_rate=keyless)


def probe_cuda() -> bool:
    from aleaart.engine.loading import cuda_available

    return cuda_available()


@dataclass
class Services:
    settings: Settings
    db: Database  # the image index
    journal_db: Database  # jobs, records, uploads, the watcher's journal, webhooks
    store: ImageStore
    chain: ChainReader
    queue: Queue
    model: ModelHolder | None  # None where GPU workers load it (ALEAART_BROKER_URL)
    registry: ModelRegistry
    publisher: Publisher
    metrics: Metrics
    credentials: Credentials
    webhooks: Webhooks
    journal: WatchJournal  # the chain watcher's, read by /health and /metrics wherever the watcher runs
    keys: KeyRing  # the API keys: issued ones (in the journal) and the environment's
    limiter: Limiter  # their limits (and the keyless callers')
    watcher: Watcher | None  # with ALEAART_WATCH=1: this process follows the chain
    lost_jobs: list[str] | None = None  # unfinished jobs of a journal that could not be read (None: unknown which)

    @classmethod
    def open(cls, settings: Settings, *, loader: Loader | None = None, chain: ChainReader | None = None,
             metrics: Metrics | None = None) -> Services:
        """Everything built, nothing started; ``loader`` and ``chain`` replace the real engine and chain reader
        (the seams for tests)."""
        metrics = metrics or Metrics()
        credentials = Credentials.from_settings(settings)  # a key that cannot sign stops the start here
        db = Database(settings.db_path)  # the image index: derived from the PNGs, rebuilt if it cannot be read
        journal_db = Database(settings.journal_path)  # what was accepted and is owed: kept apart from the index
        move_journal_out_of_the_index(db, journal_db)
        if db.moved_aside is not None:
            log.warning("the image index is rebuilt from the PNGs' own metadata; the job journal is intact")
        lost_jobs: list[str] | None = []
        if journal_db.moved_aside is not None:
            lost_jobs = unfinished_jobs_in(journal_db.moved_aside)
            log.error("the job journal could not be read: jobs, records and webhooks accepted before this start are "
                      "lost (the damaged file is kept as %s); unfinished jobs lost: %s", journal_db.moved_aside,
                      "unknown, the file cannot be read" if lost_jobs is None else
                      f"{len(lost_jobs)} ({', '.join(lost_jobs) or 'none'})")
        store = ImageStore(settings.images_dir, db, min_free_mb=settings.min_free_mb, cache_mb=settings.serve_cache_mb)
        chain = chain or ChainReader.from_settings(settings)
        book = JobBook(journal_db, store)
        webhooks = Webhooks(journal_db, settings, metrics)
        book.on_save = webhooks.on_job_saved  # a job's webhook events are written with its record
        model: ModelHolder | None = None
        queue: Queue
        if settings.broker_url:  # many GPUs: the workers load the model, this process hands them jobs
            from aleaart.cluster.dispatch import CeleryQueue

            queue = CeleryQueue(store=store, book=book, settings=settings, metrics=metrics, chain=chain)
        else:
            probe = probe_cuda if loader is None else (lambda: False)  # a test's fake engine has no CUDA
            model = ModelHolder(loader or engine_loader(settings), probe_cuda=probe)
            queue = JobQueue(model=model, store=store, book=book, settings=settings, metrics=metrics, chain=chain,
                             credentials=credentials)
            metrics.model_load_seconds.set_function(lambda: model.load_seconds or 0.0)
        metrics.watch_queue(lambda: queue.depth)
        publisher = Publisher.from_settings(settings, store, index=db, journal=journal_db)
        journal = WatchJournal(journal_db, chain_id=settings.chain_id, address=settings.params_contract)
        watch_config = WatchConfig.from_settings(settings)
        metrics.watch_chain(lambda: journal.status().gauges(time.time()))
        keys = KeyRing(journal_db, api_key=settings.api_key, admin_key=settings.admin_key)
        limiter = open_limiter(settings, journal_db, queue)
        admission = Admission(keys, limiter, metrics)
        queue.admit, queue.left = admission.admit, admission.left
        queue.weight_of = keys.weight_of
        watcher = Watcher(chain=chain, queue=queue, journal=journal, config=watch_config, publisher=publisher,
                          metrics=metrics, notify=webhooks.service_event) if settings.watch else None
        return cls(settings=settings, db=db, journal_db=journal_db, store=store, chain=chain, queue=queue, model=model,
                   registry=ModelRegistry(settings.models_path, journal_db), publisher=publisher, metrics=metrics,
                   credentials=credentials, webhooks=webhooks, journal=journal, watcher=watcher,
                   keys=keys, limiter=limiter,
                   lost_jobs=lost_jobs)

    def start(self, *, resume: bool = True, publish: bool = True, start_watcher: bool = True) -> None:
        """Load the model in the background, take back unfinished jobs (``resume``: off for a one-off command
        sharing the service's database) and start the queue, with ``publish`` pinning and records, and the chain
        watcher's thread where there is one (``start_watcher``: off where the caller runs it itself)."""
        if self.model is not None:
            self.model.start()
        self.webhooks.start()  # before the queue: resumed jobs' events are written as they happen
        self.queue.start(resume=resume)
        if publish:
            self.publisher.start()
        if self.watcher is not None and start_watcher:
            self.watcher.start()

    def watch_status(self) -> dict[str, object] | None:
        """The chain watcher's state for /health: None where no watcher has followed this contract."""
        if self.watcher is None and not self.journal.started():
            return None
        config = self.watcher.config if self.watcher is not None else WatchConfig.from_settings(self.settings)
        return self.journal.status().to_json(now=time.time(), confirmations=config.confirmations,
                                             behind_after=config.behind_after)

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.queue.stop()
        self.publisher.stop()
        self.webhooks.stop()
        self.db.close()
        self.journal_db.close()
