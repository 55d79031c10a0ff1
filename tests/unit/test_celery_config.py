"""The Celery settings the store's guarantees depend on."""

from __future__ import annotations

from celery import Celery

from assessment_store.celery_config import celery_settings
from assessment_store.config import Settings, load_settings
from assessment_store.publishing import CeleryDispatcher
from assessment_store.queues import (
    ALL_QUEUES,
    MAINTENANCE_QUEUE,
    MAINTENANCE_TASK_PREFIX,
    NORMAL_QUEUE,
    RUN_ASSESSMENT_TASK,
    queue_for_priority,
    queue_list,
)
from workers.celery_app import configure


def configured() -> Celery:
    app = Celery("config-test")
    configure(app, load_settings(broker_visibility_timeout_seconds=1234))
    return app


def test_delivery_settings_make_redelivery_safe_and_fair() -> None:
    conf = configured().conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 4, "Celery's default, measured (README)"
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.worker_send_task_events is False, "task events cost throughput: opt-in"
    assert conf.broker_connection_retry_on_startup is True
    # Running attempts keep going on a broker blip: the claim makes a redelivery harmless.
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_prefetch_is_a_setting_for_long_assessments() -> None:
    app = Celery("config-test")
    configure(app, load_settings(worker_prefetch_multiplier=1))
    assert app.conf.worker_prefetch_multiplier == 1


def test_the_visibility_timeout_is_the_same_everywhere() -> None:
    conf = configured().conf
    assert conf.broker_transport_options["visibility_timeout"] == 1234
    assert conf.result_backend_transport_options["visibility_timeout"] == 1234
    assert conf.broker_transport_options["queue_order_strategy"] == "priority"


def test_maintenance_is_polled_first_so_a_low_backlog_cannot_starve_it() -> None:
    assert ALL_QUEUES[0] == MAINTENANCE_QUEUE
    assert queue_list().split(",")[0] == MAINTENANCE_QUEUE
    assert ALL_QUEUES[1:] == ("assessments.high", "assessments.normal", "assessments.low")


def test_priorities_map_to_the_spec_bands() -> None:
    assert {p: queue_for_priority(p) for p in (1, 3, 4, 7, 8, 10)} == {
        1: "assessments.low",
        3: "assessments.low",
        4: "assessments.normal",
        7: "assessments.normal",
        8: "assessments.high",
        10: "assessments.high",
    }


def test_producers_publish_with_exactly_the_workers_delivery_settings() -> None:
    settings = load_settings(broker_visibility_timeout_seconds=4321)
    producer = CeleryDispatcher(settings)._celery()
    worker = configured_with(settings)
    for key in celery_settings(settings):
        if key != "broker_transport_options":
            assert producer.conf[key] == worker.conf[key], key
    # The transport options too, but for the socket: a producer waits on a broker that
    # answers nothing no longer than its publish timeout (the workers: 30 s).
    produced, consumed = (dict(app.conf.broker_transport_options) for app in (producer, worker))
    assert produced.pop("socket_timeout") == settings.broker_publish_timeout_seconds
    assert consumed.pop("socket_timeout") == 30
    assert produced == consumed
    assert producer.conf.broker_transport_options["visibility_timeout"] == 4321


def configured_with(settings: Settings) -> Celery:
    app = Celery("config-test-2")
    configure(app, settings)
    return app


def test_task_events_are_a_setting() -> None:
    app = configured_with(load_settings(task_events=True))
    assert app.conf.worker_send_task_events is True
    assert app.conf.task_send_sent_event is True


def test_a_failed_attempt_is_a_failed_task_that_is_acked_and_never_retried_by_celery() -> None:
    from workers.tasks import AttemptFailedError, run_assessment

    task = run_assessment
    assert task.name == RUN_ASSESSMENT_TASK
    # The failure is recorded in PostgreSQL before the task raises: ack it, whatever
    # ended it (a raised error or the hard time limit); the store schedules the retry.
    assert task.acks_late and task.acks_on_failure and task.acks_on_timeout
    # Expected: Celery logs it without a traceback, and never retries it on its own.
    assert task.throws == (AttemptFailedError,)
    assert not getattr(task, "autoretry_for", ())


def test_each_queue_has_its_own_direct_exchange_and_routing_key() -> None:
    queues = configured().amqp.queues
    assert list(queues) == list(ALL_QUEUES), "declared in the order workers poll them"
    declared = {
        name: (queue.exchange.name, queue.exchange.type, queue.routing_key)
        for name, queue in queues.items()
    }
    assert declared == {name: (name, "direct", name) for name in ALL_QUEUES}


def test_every_task_is_routed_to_its_queue_and_exchange() -> None:
    router = configured().amqp.router
    for job in ("rescue", "redispatch", "retry", "retention"):
        queue = router.route({}, f"{MAINTENANCE_TASK_PREFIX}{job}")["queue"]
        assert (queue.name, queue.exchange.name) == (MAINTENANCE_QUEUE, MAINTENANCE_QUEUE), job
    for priority in (1, 5, 9):
        band = queue_for_priority(priority)
        queue = router.route({"queue": band}, RUN_ASSESSMENT_TASK)["queue"]
        assert (queue.name, queue.exchange.name, queue.routing_key) == (band, band, band)
    # A message sent without a queue goes where normal priority goes.
    assert router.route({}, RUN_ASSESSMENT_TASK)["queue"].name == NORMAL_QUEUE
