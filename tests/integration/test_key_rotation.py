"""rotate-keys: everything re-encrypted under the first key (plaintext rows too), the
old key then droppable; nothing written with a missing or wrong key; no transition
lost while a worker-like updater changes the rows; the command's output and exit
codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import typer
from sqlalchemy import Engine, text

from assessment_store import AssessmentStore
from assessment_store.cli import app, run
from assessment_store.config import Settings, get_settings
from assessment_store.errors import ConfigurationError, DecryptionError
from assessment_store.models import Assessment
from assessment_store.rotation import rotate_keys
from tests.chain import audit_chain_problems
from tests.encrypted import (
    ERROR_SECRET,
    K1,
    K2,
    K3,
    RESULT_SECRET,
    key_ids_in_use,
    raw_snapshot,
    raw_values,
    with_keys,
)
from tests.factories import quiet_store, request
from tests.waiting import wait_until

OLD = f"k1:{K1}"
ROTATED = f"k2:{K2},k1:{K1}"


def populate(store: AssessmentStore, count: int = 3) -> list[str]:
    """``count`` each of pending, completed and failed assessments."""
    ids = []
    for n in range(count):
        ids.append(store.create_assessment(request(options={"server_filter": [f"h{n}"]})))
        done = store.create_assessment(request())
        store.start_processing(done, "w")
        store.complete_assessment(done, {"finding": f"{RESULT_SECRET}-{n}"})
        failed = store.create_assessment(request())
        store.start_processing(failed, "w")
        store.fail_assessment(failed, f"{ERROR_SECRET}-{n}")
        ids += [done, failed]
    return ids


def reads(store: AssessmentStore, ids: list[str]) -> list[object]:
    """What the API returns for ``ids``: states and audit trails."""
    return [store.get_state(i).to_wire() for i in ids] + [
        [e.to_wire() for e in store.get_audit_trail(i)] for i in ids
    ]


def test_rotation_re_encrypts_everything_and_the_old_key_can_then_be_dropped(
    settings: Settings, store: AssessmentStore, raw_engine: Engine
) -> None:
    plain_ids = populate(store)  # written before encryption was turned on
    with quiet_store(with_keys(settings, OLD)) as old:
        sealed_ids = populate(old)
    ids = plain_ids + sealed_ids
    assert key_ids_in_use(raw_engine) == {"plain", "k1"}
    with quiet_store(with_keys(settings, ROTATED)) as rotated:
        expected = reads(rotated, ids)
        with raw_engine.connect() as conn:
            versions = conn.execute(
                text("SELECT assessment_id, version, updated_at FROM assessment_states ORDER BY 1")
            ).all()
            audit_rows = conn.execute(text("SELECT count(*) FROM assessment_state_audit")).scalar()
        seen: list[tuple[str, int, int]] = []
        report = rotate_keys(rotated.runtime, batch_size=4, progress=lambda *p: seen.append(p))
    assert (report.key_id, report.assessments, report.complete) == ("k2", 18, True)
    assert report.audit_rows == 6  # the failures' reasons
    assert ("assessments", 18, 18) in seen and seen[-1] == ("audit rows", 6, 6)
    assert [done for phase, done, _ in seen if phase == "assessments"] == [4, 8, 12, 16, 18]
    assert key_ids_in_use(raw_engine) == {"k2"}
    assert not [
        s for s in (RESULT_SECRET, ERROR_SECRET, "serverFilter") if s in raw_values(raw_engine)
    ]
    with raw_engine.connect() as conn:
        # Not a change of any assessment: no version, no updated_at, no audit row.
        assert (
            conn.execute(
                text("SELECT assessment_id, version, updated_at FROM assessment_states ORDER BY 1")
            ).all()
            == versions
        )
        assert conn.execute(text("SELECT count(*) FROM assessment_state_audit")).scalar() == (
            audit_rows
        )
        assert audit_chain_problems(conn) == []
    with quiet_store(with_keys(settings, f"k2:{K2}")) as new_only:
        assert reads(new_only, ids) == expected
        again = rotate_keys(new_only.runtime)
    assert (again.assessments, again.audit_rows, again.complete) == (0, 0, True)


@pytest.mark.parametrize("ring", [f"k2:{K2}", f"k2:{K2},k1:{K3}"], ids=["missing", "wrong"])
def test_rotation_with_a_missing_or_wrong_key_writes_nothing(
    settings: Settings, raw_engine: Engine, ring: str
) -> None:
    with quiet_store(with_keys(settings, OLD)) as old:
        populate(old)
    before = raw_snapshot(raw_engine)
    with (
        quiet_store(with_keys(settings, ring)) as rotating,
        pytest.raises(DecryptionError) as refused,
    ):
        rotate_keys(rotating.runtime, batch_size=2)
    message = str(refused.value)
    assert "'k1'" in message and "nothing was changed" in message
    assert K1 not in message and K2 not in message and K3 not in message
    assert raw_snapshot(raw_engine) == before


def test_rotation_needs_encryption_on(store: AssessmentStore) -> None:
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS is not set"):
        rotate_keys(store.runtime)


class Updater(threading.Thread):
    """A worker-like process: changes rows over and over (progress, fail, retry,
    claim), each change guarded by the version it last saw, until stopped."""

    def __init__(self, store: AssessmentStore, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.last: dict[str, Assessment] = {}
        self.ids = ids
        self.changes = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            round_ = 0
            while not self.stop.is_set():
                round_ += 1
                for aid in self.ids:
                    self.step(aid, round_)
        except BaseException as exc:
            self.error = exc

    def step(self, aid: str, round_: int) -> None:
        store, current = self.store, self.last.get(aid) or self.store.get_state(aid)
        version = current.version
        if current.state.value == "processing":
            if round_ % 2:
                changed = store.update_progress(aid, round_ % 100, expected_version=version)
            else:
                changed = store.fail_assessment(
                    aid, f"{ERROR_SECRET}-{round_}", expected_version=version
                )
        elif current.state.value == "failed":
            changed = store.retry_assessment(aid, expected_version=version)
        else:
            changed = store.start_processing(aid, f"w-{round_}", expected_version=version)
        self.last[aid] = changed
        self.changes += 1


def test_rotation_while_a_worker_changes_rows_loses_no_transition(
    settings: Settings, raw_engine: Engine
) -> None:
    with quiet_store(with_keys(settings, OLD)) as old:
        ids = []
        for n in range(24):
            aid = old.create_assessment(request(options={"server_filter": [f"h{n}"]}))
            old.start_processing(aid, "w")
            old.fail_assessment(aid, f"{ERROR_SECRET}-{n}")
            ids.append(aid)
    with (
        quiet_store(with_keys(settings, ROTATED)) as worker,
        quiet_store(with_keys(settings, ROTATED)) as operator,
    ):
        updater = Updater(worker, ids)
        updater.start()
        wait_until(lambda: updater.changes >= 30, timeout=30, message="the updater is stuck")
        started = updater.changes
        report = rotate_keys(operator.runtime, batch_size=3)
        during = updater.changes - started
        updater.stop.set()
        updater.join(30)
        assert updater.error is None, repr(updater.error)
        assert during > 0, "nothing changed while the rotation ran"
        assert report.complete, report
        assert key_ids_in_use(raw_engine) == {"k2"}
        for aid in ids:
            assert worker.get_state(aid) == updater.last[aid]  # the last change is there
        with raw_engine.connect() as conn:
            assert audit_chain_problems(conn) == []
            counts: dict[str, int] = dict(
                conn.execute(
                    text("SELECT assessment_id, count(*) FROM assessment_state_audit GROUP BY 1")
                ).all()
            )
        assert all(counts[aid] == updater.last[aid].version for aid in ids)


# -- the command -----------------------------------------------------------------------


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("ASSESSMENT_STORE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ASSESSMENT_STORE_BROKER_URL", settings.redis_url.rsplit("/", 1)[0] + "/8")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def cli(
    capsys: pytest.CaptureFixture[str], env: pytest.MonkeyPatch, keys: str | None, *argv: str
) -> tuple[int, str, str]:
    if keys is None:
        env.delenv("ASSESSMENT_STORE_ENCRYPTION_KEYS", raising=False)
    else:
        env.setenv("ASSESSMENT_STORE_ENCRYPTION_KEYS", keys)
    get_settings.cache_clear()
    code = run(typer.main.get_command(app), list(argv))
    out, err = capsys.readouterr()
    for secret in (K1, K2, K3):
        assert secret not in out + err
    return code, out, err


def test_the_command_prints_progress_and_a_final_count(
    settings: Settings, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with quiet_store(with_keys(settings, OLD)) as old:
        populate(old, count=2)
    code, out, err = cli(capsys, env, ROTATED, "rotate-keys", "--batch-size", "2")
    assert code == 0, err
    assert "assessments: 6/6 re-encrypted" in err and "audit rows: 2/2 re-encrypted" in err
    assert out.strip() == "re-encrypted 6 assessment(s) and 2 audit row(s) under key 'k2'"
    code, out, _ = cli(capsys, env, f"k2:{K2}", "rotate-keys", "--json")
    assert code == 0
    assert '"assessments": 0' in out and '"complete": true' in out and '"keyId": "k2"' in out


def test_the_command_refuses_clearly(
    settings: Settings, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with quiet_store(with_keys(settings, OLD)) as old:
        populate(old, count=1)
    code, _, err = cli(capsys, env, None, "rotate-keys")
    assert code == 3 and "ENCRYPTION_KEYS is not set" in err
    code, _, err = cli(capsys, env, f"k2:{K2}", "rotate-keys")
    assert code == 3 and "'k1' (6 value(s)) that ASSESSMENT_STORE_ENCRYPTION_KEYS" in err
    assert "DECRYPTION_FAILED" in err and "Traceback" not in err
    code, _, err = cli(capsys, env, f"k2:{K2},{K1}", "rotate-keys")
    assert code == 3 and "entry 2 is not id:base64key" in err
    code, _, err = cli(capsys, env, ROTATED, "rotate-keys", "--batch-size", "0")
    assert code == 2 and "--batch-size" in err


def test_the_command_exits_1_while_a_row_stays_locked(
    settings: Settings,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raw_engine: Engine,
) -> None:
    with quiet_store(with_keys(settings, OLD)) as old:
        ids = populate(old, count=1)
    with raw_engine.connect() as holder:
        holder.execute(
            text("SELECT 1 FROM assessment_states WHERE assessment_id = :id FOR UPDATE"),
            {"id": ids[0]},
        )
        code, out, err = cli(capsys, env, ROTATED, "rotate-keys")
        holder.rollback()
    assert code == 1
    assert "re-encrypted 2 assessment(s)" in out and "1 assessment(s)" in err and "again" in err
    code, out, _ = cli(capsys, env, ROTATED, "rotate-keys")
    assert code == 0 and "re-encrypted 1 assessment(s)" in out
    with quiet_store(with_keys(settings, f"k2:{K2}")) as new_only:
        locked = new_only.get_state(ids[0])
    assert (locked.version, locked.request_data.options.server_filter) == (1, ["h0"])
