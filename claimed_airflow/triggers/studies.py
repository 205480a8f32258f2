"""``StableStudyTrigger``: an event trigger (Airflow 3 ``AssetWatcher``) that fires once per new stable study of a PACS.

Two feeds, one event per study ``{"study_instance_uid", "source" (the DICOMweb connection id), "feed"}``:

- ``orthanc``: Orthanc's change feed (``GET /changes``), its ``StableStudy`` changes (a study with no
  new instance for Orthanc's ``StableAge`` seconds). The cursor is the feed's sequence number.
- ``qido``: a QIDO-RS search for studies every ``interval`` seconds (optional ``filters`` and a
  StudyDate window of ``lookback_days``); a study is stable once its number of instances stayed the
  same for ``stable_seconds``. It remembers the studies it has announced (their hashes, with their
  StudyDate, forgotten when they leave the window).

``feed="auto"`` uses Orthanc's feed when the server answers Orthanc's ``/system`` next to its
DICOMweb root, else QIDO-RS.

Where the cursor lives: on Airflow 3.3+, the triggerer gives a watcher's trigger the watched asset's
state store (``asset_state_store``, rows in Airflow's metadata database), and the cursor is kept
there (key ``claimed_study_feed``): a triggerer restart goes on from it. It is saved one poll after
the events it covers were handed to the triggerer (which writes them to the database in that time),
so a crash re-announces at most the last poll's studies and misses none: the consumer must be
idempotent per study (``dags/dicom_inference_watch.py`` starts each run with the run id
``study__<hash of the study UID>``, which Airflow accepts once). Before 3.3 the cursor lives in the
trigger's memory and a restart starts again from ``since``.

HTTP is httpx's AsyncClient (nothing blocks the event loop); the connection is read in a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from claimed_airflow.version_compat import BaseSensorOperator

try:  # Airflow 3.0+: a trigger an AssetWatcher may run
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # Airflow 2.11: no event-driven scheduling; NewStudiesSensor runs the same feeds
    BaseEventTrigger = BaseTrigger

STATE_KEY = "claimed_study_feed"
FEEDS = ("auto", "orthanc", "qido")
PAGE = 500  # studies a QIDO-RS request, changes an Orthanc request (it caps at 10,000)
STUDY_UID, STUDY_DATE, INSTANCES = "0020000D", "00080020", "00201208"


class MemoryState:
    """The cursor in this process only (no asset state store: Airflow before 3.3, or a trigger run by hand)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


def _read_connection(conn_id: str):
    from claimed_airflow.hooks.dicomweb import DicomWebHook

    return DicomWebHook(conn_id).server()


class StableStudyTrigger(BaseEventTrigger):
    """Fires one ``TriggerEvent`` per new stable study of a DICOMweb PACS (see the module's text).

    :param dicomweb_conn_id: Airflow connection (type ``dicomweb``) of the PACS; also the events' ``source``.
    :param feed: ``auto``, ``orthanc`` (its ``/changes`` feed) or ``qido`` (a QIDO-RS poll).
    :param interval: Seconds between polls.
    :param since: Where a first start begins: an Orthanc change sequence number (0: every study it holds);
        None: the newest change (only studies that become stable from now on). QIDO-RS: None announces
        nothing already there at the first poll, 0 everything in the window.
    :param filters: QIDO-RS: more study-level filters (DICOM keyword -> value, e.g. ``ModalitiesInStudy``).
    :param stable_seconds: QIDO-RS: seconds a study's instance count must stay the same.
    :param lookback_days: QIDO-RS: the StudyDate window (0: no window; then what was seen is never forgotten).
    """

    def __init__(
        self,
        dicomweb_conn_id: str = "dicomweb_default",
        feed: str = "auto",
        interval: float = 10.0,
        since: int | None = None,
        filters: dict[str, str] | None = None,
        stable_seconds: float = 60.0,
        lookback_days: int = 2,
    ) -> None:
        super().__init__()
        if feed not in FEEDS:
            raise ValueError(f"feed: {feed!r} is not one of {', '.join(FEEDS)}")
        self.dicomweb_conn_id = dicomweb_conn_id
        self.feed = feed
        self.interval = float(interval)
        self.since = since
        self.filters = dict(filters or {})
        self.stable_seconds = float(stable_seconds)
        self.lookback_days = int(lookback_days)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "dicomweb_conn_id": self.dicomweb_conn_id,
            "feed": self.feed,
            "interval": self.interval,
            "since": self.since,
            "filters": self.filters,
            "stable_seconds": self.stable_seconds,
            "lookback_days": self.lookback_days,
        }

    def _state(self):
        store = getattr(self, "asset_state_store", None)
        if store is None:
            self.log.warning(
                "no asset state store (Airflow before 3.3, or not run by an AssetWatcher): the feed's cursor "
                "lives in this process; a restart starts again from since=%s",
                self.since,
            )
            store = self.asset_state_store = MemoryState()
        return store

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        from claimed_airflow.pacs.servers import web_server

        server = await asyncio.to_thread(web_server, self.dicomweb_conn_id, None, read=_read_connection)
        state = self._state()
        async with httpx.AsyncClient(
            auth=server.auth, headers=server.headers, verify=server.verify, timeout=server.timeout
        ) as client:
            root = server.url.rsplit("/", 1)[0]
            feed = self.feed
            if feed == "auto":
                feed = "orthanc" if await self._is_orthanc(client, root) else "qido"
            self.log.info("watching %s for new stable studies (%s feed)", server.url, feed)
            events = self._orthanc(client, root, state) if feed == "orthanc" else self._qido(client, server.url, state)
            async for event in events:
                yield event

    async def _is_orthanc(self, client, root: str) -> bool:
        try:
            answer = await client.get(f"{root}/system")
            return answer.status_code == 200 and "DicomAet" in answer.json()
        except Exception:  # noqa: BLE001 - anything but Orthanc's JSON: not Orthanc
            return False

    def _event(self, uid: str, feed: str) -> TriggerEvent:
        return TriggerEvent({"study_instance_uid": uid, "source": self.dicomweb_conn_id, "feed": feed})

    async def _orthanc(self, client, root: str, state) -> AsyncIterator[TriggerEvent]:
        cursor = (await state.aget(STATE_KEY)) or {}
        seq = cursor.get("orthanc_seq")
        while seq is None:
            try:
                seq = self.since if self.since is not None else (await _json(client, f"{root}/changes?last"))["Last"]
            except Exception as exc:  # noqa: BLE001 - the PACS is down at the first start: try again
                self._poll_failed(exc)
                await asyncio.sleep(self.interval)
                continue
            await state.aset(STATE_KEY, {"orthanc_seq": seq})
            self.log.info("first start: studies that become stable after change %d are announced", seq)
        saved = seq
        while True:
            done = False
            while not done:  # every page of changes after seq
                try:
                    page = await _json(client, f"{root}/changes", params={"since": seq, "limit": PAGE})
                    stable = [c for c in page.get("Changes", []) if c.get("ChangeType") == "StableStudy"]
                    uids = [await self._orthanc_study(client, root, change["ID"]) for change in stable]
                except Exception as exc:  # noqa: BLE001 - a failed poll is tried again (the cursor has not moved)
                    self._poll_failed(exc)
                    break
                for uid in uids:
                    if uid:
                        yield self._event(uid, "orthanc")
                seq = max(seq, int(page.get("Last", seq)))
                done = page.get("Done", True)
            await asyncio.sleep(self.interval)
            if seq != saved:  # the events up to seq were handed over a poll ago: move the cursor past them
                await state.aset(STATE_KEY, {"orthanc_seq": seq})
                saved = seq

    async def _orthanc_study(self, client, root: str, orthanc_id: str) -> str | None:
        answer = await client.get(f"{root}/studies/{orthanc_id}")
        if answer.status_code == 404:  # deleted since
            return None
        answer.raise_for_status()
        return answer.json().get("MainDicomTags", {}).get("StudyInstanceUID")

    def _poll_failed(self, exc: Exception) -> None:
        import httpx

        why = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        self.log.warning("polling %s failed (%s); trying again in %g s", self.dicomweb_conn_id, why, self.interval)

    async def _qido(self, client, url: str, state) -> AsyncIterator[TriggerEvent]:
        from claimed_airflow.pacs.listener import study_key

        cursor = (await state.aget(STATE_KEY)) or {}
        seen: dict[str, str] = dict(cursor.get("qido_seen") or {})  # study key -> StudyDate
        first = cursor.get("qido_seen") is None and self.since is None
        counts: dict[str, tuple[Any, float]] = {}  # study key -> (instances, since when)
        changed = False
        while True:
            window = ""
            if self.lookback_days > 0:
                start = (datetime.now(UTC) - timedelta(days=self.lookback_days)).strftime("%Y%m%d")
                window = start
                seen = {key: date for key, date in seen.items() if not date or date >= start}
            try:
                studies = await self._search(client, url, window)
            except Exception as exc:  # noqa: BLE001 - a failed poll is tried again
                self._poll_failed(exc)
                await asyncio.sleep(self.interval)
                continue
            now = time.monotonic()
            for item in studies:
                uid = _value(item, STUDY_UID)
                if not uid:
                    continue
                key = study_key(uid)
                if key in seen:
                    continue
                if first:  # since=None: what is there at the first start is not new
                    seen[key], changed = _value(item, STUDY_DATE) or "", True
                    continue
                count = _value(item, INSTANCES)
                before = counts.get(key)
                if before is None or before[0] != count:
                    counts[key] = (count, now)
                elif now - before[1] >= self.stable_seconds:
                    del counts[key]
                    seen[key], changed = _value(item, STUDY_DATE) or "", True
                    yield self._event(uid, "qido")
            first = False
            await asyncio.sleep(self.interval)
            if changed:
                await state.aset(STATE_KEY, {"qido_seen": seen})
                changed = False

    async def _search(self, client, url: str, start: str) -> list[dict]:
        params = {**self.filters, "includefield": f"{INSTANCES},{STUDY_DATE}"}
        if start:
            params["StudyDate"] = f"{start}-"
        found, offset = [], 0
        while True:
            page = await _json(client, f"{url}/studies", params={**params, "limit": PAGE, "offset": offset})
            found += page or []
            if len(page or []) < PAGE:
                return found
            offset += PAGE


async def _json(client, url: str, params: dict | None = None) -> Any:
    answer = await client.get(url, params=params, headers={"Accept": "application/dicom+json, application/json"})
    if answer.status_code == 204:  # QIDO-RS: no match
        return []
    answer.raise_for_status()
    return answer.json()


def _value(item: dict, tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or [None]
    return values[0]


class _PollState(MemoryState):
    """A cursor handed in and out; ``saved`` is set each time the feed moves it (the end of a poll)."""

    def __init__(self, cursor: dict | None) -> None:
        super().__init__()
        if cursor:
            self.values[STATE_KEY] = cursor
        self.saved = asyncio.Event()

    async def aset(self, key: str, value: Any) -> None:
        await super().aset(key, value)
        self.saved.set()


class NewStudiesTrigger(BaseTrigger):
    """Fires once, with every new stable study of the first poll that finds any and the cursor after them.

    The deferrable half of :class:`NewStudiesSensor` (any Airflow from 2.11): the feeds of
    :class:`StableStudyTrigger`, started from ``cursor`` (the one a previous event returned; None: a first
    start, see ``since``). Event: ``{"studies": [{"study_instance_uid", "source", "feed"}, ...], "cursor": {...}}``.
    """

    def __init__(self, cursor: dict | None = None, **feed: Any) -> None:
        super().__init__()
        self.cursor = cursor
        self.feed = StableStudyTrigger(**feed)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"cursor": self.cursor, **self.feed.serialize()[1]}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = self.feed.asset_state_store = _PollState(self.cursor)
        studies: list[dict] = []

        async def consume() -> None:
            async for event in self.feed.run():
                studies.append(event.payload)

        polling = asyncio.create_task(consume())
        try:
            while True:  # a feed moves its cursor one poll after the studies it covers: then they are all here
                waiting = asyncio.create_task(state.saved.wait())
                await asyncio.wait({polling, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if polling.done():
                    waiting.cancel()
                    polling.result()  # raises what stopped the feed
                    raise RuntimeError(f"the feed of {self.feed.dicomweb_conn_id} stopped")
                state.saved.clear()
                if studies:
                    break
        finally:
            polling.cancel()
        yield TriggerEvent({"studies": studies, "cursor": state.values.get(STATE_KEY)})


class NewStudiesSensor(BaseSensorOperator):
    """Waits (deferred, in the triggerer) for new stable studies of a DICOMweb PACS; returns one
    ``{"trigger_run_id", "conf"}`` per study, for ``TriggerDagRunOperator.partial(...).expand_kwargs``.

    Pull without event-driven scheduling (Airflow 2.11, or by choice): a DAG on a short schedule with
    ``max_active_runs=1`` whose first task is this sensor. The feed's cursor lives in the Airflow Variable
    ``cursor_variable``; the sensor only reads it and returns the new cursor in its XCom ``cursor``: a task after
    the runs are started stores it (:func:`save_cursor`), so a run that fails before that announces the same
    studies again next time, and their run ids (``study__<key>``, which Airflow accepts once) start each once.

    :param dicomweb_conn_id: Airflow connection (type ``dicomweb``) of the PACS; also the runs' ``source``.
    :param feed: ``auto``, ``orthanc`` (its change feed) or ``qido`` (a QIDO-RS poll).
    :param interval: Seconds between polls.
    :param since: A first start (no cursor yet): see :class:`StableStudyTrigger`.
    :param filters: QIDO-RS: more study-level filters.
    :param stable_seconds: QIDO-RS: seconds a study's instance count must stay the same.
    :param lookback_days: QIDO-RS: the StudyDate window.
    :param cursor_variable: The Variable holding the cursor; default ``claimed_study_feed__<dicomweb_conn_id>``.
    :param conf: More conf for each run (e.g. the model).
    """

    template_fields = ("dicomweb_conn_id", "cursor_variable", "conf")

    def __init__(
        self,
        *,
        dicomweb_conn_id: str = "dicomweb_default",
        feed: str = "auto",
        interval: float = 10.0,
        since: int | None = None,
        filters: dict[str, str] | None = None,
        stable_seconds: float = 60.0,
        lookback_days: int = 2,
        cursor_variable: str | None = None,
        conf: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dicomweb_conn_id, self.feed, self.interval, self.since = dicomweb_conn_id, feed, interval, since
        self.filters, self.stable_seconds, self.lookback_days = filters, stable_seconds, lookback_days
        self.cursor_variable = cursor_variable
        self.conf = conf

    def _variable(self) -> str:
        return self.cursor_variable or f"{STATE_KEY}__{self.dicomweb_conn_id}"

    def execute(self, context: Any) -> None:
        from claimed_airflow.version_compat import Variable

        cursor = Variable.get(self._variable(), None, deserialize_json=True)  # default_var (2.11) / default (3.x)
        trigger = NewStudiesTrigger(
            cursor=cursor,
            dicomweb_conn_id=self.dicomweb_conn_id,
            feed=self.feed,
            interval=self.interval,
            since=self.since,
            filters=self.filters,
            stable_seconds=self.stable_seconds,
            lookback_days=self.lookback_days,
        )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Any, event: dict | None = None) -> list[dict]:
        from claimed_airflow.pacs.listener import study_run_id
        from claimed_airflow.pacs.query import _UID

        event = event or {}
        context["ti"].xcom_push(key="cursor", value=event.get("cursor"))
        found: dict[str, str] = {}
        for study in event.get("studies") or []:
            uid = str(study.get("study_instance_uid") or "")
            if _UID.fullmatch(uid):
                found[uid] = study.get("source") or self.dicomweb_conn_id
        self.log.info("%d new stable studies", len(found))
        return [
            {
                "trigger_run_id": study_run_id(uid),
                "conf": {**(self.conf or {}), "study_instance_uid": uid, "source": src},
            }
            for uid, src in found.items()
        ]


def save_cursor(variable: str, cursor: dict | None) -> None:
    """Store a feed's cursor in the Airflow Variable ``variable`` (after the runs of its studies were started)."""
    from claimed_airflow.version_compat import Variable

    if cursor is not None:
        Variable.set(variable, cursor, serialize_json=True)
