"""PACS pull: StableStudyTrigger against a real Orthanc (its /changes feed, and QIDO-RS), one event per study,
no duplicates after a restart from the stored cursor; the watch DAG turns events into one run id per study."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from claimed_airflow.pacs.listener import study_run_id
from claimed_airflow.triggers.studies import STATE_KEY, MemoryState, StableStudyTrigger
from tests import orthanc
from tests.arrival_studies import make_studies

pytest.importorskip("httpx")
if not orthanc.available():
    pytest.skip(f"Orthanc is not installed ({orthanc.INSTALL})", allow_module_level=True)

CONN = "arrival_pacs"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    with orthanc.Orthanc(tmp_path_factory.mktemp("orthanc"), StableAge=1) as server:
        yield server


@pytest.fixture
def conn(pacs, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", pacs.connection())


def trigger(state: MemoryState, **kwargs) -> StableStudyTrigger:
    """A trigger with ``state`` as its asset state store (as Airflow 3.3's triggerer gives a watcher's trigger)."""
    made = StableStudyTrigger(dicomweb_conn_id=CONN, interval=0.2, **kwargs)
    made.asset_state_store = state
    return made


async def collect(made: StableStudyTrigger, until: set[str], events: list[str]) -> None:
    """Run ``made`` until every study in ``until`` was announced; the announced UIDs go to ``events``."""
    generator = made.run()
    try:
        async for event in generator:
            assert event.payload["source"] == CONN
            events.append(event.payload["study_instance_uid"])
            if until and until <= set(events):
                return
    finally:
        await generator.aclose()


async def stable(pacs, studies: int, since: int, timeout: float = 120) -> None:
    """Wait until Orthanc's change feed holds ``studies`` StableStudy changes after change ``since``."""
    deadline = time.monotonic() + timeout
    while True:
        changes = json.loads(pacs.request("GET", f"/changes?since={since}&limit=10000"))["Changes"]
        if sum(change["ChangeType"] == "StableStudy" for change in changes) >= studies:
            return
        assert time.monotonic() < deadline, f"Orthanc found fewer than {studies} studies stable"
        await asyncio.sleep(0.2)


async def run_until_saved(made: StableStudyTrigger, state: MemoryState, check, timeout: float = 120) -> list[str]:
    """Run ``made`` in the background until ``check(state)`` holds (its cursor saved); what it announced."""
    events: list[str] = []
    task = asyncio.create_task(collect(made, set(), events))  # runs until cancelled (nothing to wait for)
    deadline = time.monotonic() + timeout
    while not check(state.values.get(STATE_KEY) or {}):
        assert not task.done(), task.exception()
        assert time.monotonic() < deadline, f"the cursor was not saved: {state.values}"
        await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return events


def test_orthanc_feed_one_event_per_study_and_none_again_after_a_restart(pacs, conn, tmp_path):
    async def scenario():
        state = MemoryState()
        first = make_studies(tmp_path / "first", 3, first=1, instances=2)
        last = json.loads(pacs.request("GET", "/changes?last"))["Last"]
        for files in first.values():
            pacs.upload(*files)
        # all three stable before the first poll, so that one poll announces them together (on a busy machine the
        # uploads spread over Orthanc's StableAge: a study stable a poll earlier has its cursor saved already)
        await stable(pacs, len(first), since=last)
        # a first start from the feed's beginning: each study once, when Orthanc finds it stable
        events: list[str] = []
        await asyncio.wait_for(collect(trigger(state, since=0, feed="orthanc"), set(first), events), 120)
        assert sorted(events) == sorted(first)
        # stopped right after the events, before the poll that saves the cursor: a restart announces them again
        # (at least once; the watch DAG's run ids make that harmless), then saves the cursor past them
        before = state.values[STATE_KEY]["orthanc_seq"]
        again = await run_until_saved(trigger(state, since=0), state, lambda c: c["orthanc_seq"] > before)
        assert sorted(again) == sorted(first)
        # restarted from the saved cursor: only the new study
        second = make_studies(tmp_path / "second", 1, first=4)
        pacs.upload(*next(iter(second.values())))
        events = []
        await asyncio.wait_for(collect(trigger(state, since=0), set(second), events), 120)
        assert events == list(second)

    asyncio.run(scenario())


def test_qido_feed_announces_a_study_once_it_is_stable_and_remembers_it(pacs, conn, tmp_path):
    async def scenario():
        state = MemoryState()
        for files in make_studies(tmp_path / "old", 1, first=10).values():
            pacs.upload(*files)
        existing = _studies(pacs)
        # since=None: what the PACS holds at the first start is not announced, only what comes after
        seen_all = await run_until_saved(
            trigger(state, feed="qido", stable_seconds=0.5, lookback_days=0),
            state,
            lambda c: len(c.get("qido_seen", {})) >= len(existing),
        )
        assert seen_all == []
        new = make_studies(tmp_path / "new", 2, first=11)
        for files in new.values():
            pacs.upload(*files)
        made = trigger(state, feed="qido", stable_seconds=0.5, lookback_days=0)
        events = await run_until_saved(made, state, lambda c: len(c["qido_seen"]) >= len(existing) + 2)
        assert sorted(events) == sorted(new)
        # restarted with what it remembers: only the next new study
        last = make_studies(tmp_path / "last", 1, first=13)
        pacs.upload(*next(iter(last.values())))
        events = []
        made = trigger(state, feed="qido", stable_seconds=0.5, lookback_days=0)
        await asyncio.wait_for(collect(made, set(last), events), 120)
        assert events == list(last)

    asyncio.run(scenario())


def _studies(pacs) -> list[str]:
    import json

    return json.loads(pacs.request("GET", "/studies"))


def test_trigger_serializes_to_what_the_triggerer_rebuilds_it_from():
    made = StableStudyTrigger(dicomweb_conn_id=CONN, feed="qido", filters={"ModalitiesInStudy": "CR"})
    path, kwargs = made.serialize()
    assert path == "claimed_airflow.triggers.studies.StableStudyTrigger"
    assert StableStudyTrigger(**kwargs).serialize() == (path, kwargs)
    with pytest.raises(ValueError, match="feed: 'rss' is not one of"):
        StableStudyTrigger(feed="rss")


def test_run_ids_are_one_per_study():
    assert study_run_id("1.2.3") == study_run_id("1.2.3") != study_run_id("1.2.4")
    assert study_run_id("1.2.3").startswith("study__") and "1.2.3" not in study_run_id("1.2.3")


def test_the_watch_dag_starts_one_dicom_inference_run_per_announced_study():
    from types import SimpleNamespace

    from claimed_airflow.version_compat import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags" / "dicom_inference_watch.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["dicom_inference_watch"]
    (asset,) = dag.timetable.asset_condition.objects
    (watcher,) = asset.watchers
    assert watcher.trigger.serialize()[0] == "claimed_airflow.triggers.studies.StableStudyTrigger"
    at = [datetime(2026, 12, 6, 17, 19, 17, n * 1000, tzinfo=UTC) for n in range(6)]
    events = [
        {"study_instance_uid": "1.2.3", "source": "pacs"},
        {"study_instance_uid": "1.2.4", "source": "pacs"},
        {"study_instance_uid": "1.2.3", "source": "pacs"},  # announced twice (a triggerer restart)
        {"study_instance_uid": "../etc", "source": "pacs"},  # not a UID: ignored
        {"study_instance_uid": "1.2.5", "source": "pacs"},  # registered after the run was made: consumed by none
        {"study_instance_uid": "1.2.6", "source": "pacs"},
    ]
    pairs = zip(events, at, strict=True)
    made = [SimpleNamespace(extra={"from_trigger": True, "payload": e}, timestamp=t) for e, t in pairs]

    class Events(list):  # what Airflow 3.3 gives as inlet_events[asset]
        def after(self, when):
            return [event for event in self if event.timestamp >= when]

    runs = dag.get_task("studies_of").python_callable(
        triggering_asset_events={asset.name: made[:4]}, inlet_events={asset: Events(made)}
    )
    assert runs == [
        {"trigger_run_id": study_run_id(uid), "conf": {"study_instance_uid": uid, "source": "pacs"}}
        for uid in ("1.2.3", "1.2.4", "1.2.5", "1.2.6")
    ]
    start = dag.get_task("start_inference")
    assert (
        start.partial_kwargs["skip_when_already_exists"] and start.partial_kwargs["trigger_dag_id"] == "dicom_inference"
    )
