"""DIMSE: C-ECHO, C-FIND, C-GET or C-MOVE (our own storage SCP), C-STORE transcoding what a peer does not take."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.pacs.query import (
    INSTANCE_KEYS,
    MAX_INSTANCES,
    SERIES_KEYS,
    STUDY_KEYS,
    Instance,
    Query,
    instance_file,
)
from claimed_airflow.pacs.servers import ATTEMPTS, DimseServer, backoff

log = logging.getLogger("claimed_airflow")


QR_LEVEL = {"study": "STUDY", "series": "SERIES", "instance": "IMAGE"}
# C-GET: the transfer syntaxes offered for each SOP class, so that the PACS sends files as stored


GET_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.1.99",  # Deflated
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)


@contextlib.contextmanager
def association(server: DimseServer, contexts: list, roles: list | None = None, handlers: list | None = None):
    """An association with ``server`` (tried ``ATTEMPTS`` times); released, or aborted on error."""
    from pynetdicom import AE

    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # at INFO it logs every identifier (patient data)
    ae = AE(ae_title=server.calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = server.timeout
    ae.connection_timeout = min(server.timeout, 10)
    for context in contexts:
        ae.add_requested_context(*context) if isinstance(context, tuple) else ae.add_requested_context(context)
    assoc = None
    for attempt in range(1, ATTEMPTS + 1):
        assoc = ae.associate(server.host, server.port, ae_title=server.ae_title, ext_neg=roles, evt_handlers=handlers)
        if assoc.is_established:
            break
        if assoc.is_rejected:
            raise ClaimedError(
                f"conn_id: DICOM peer {server.name} rejected the association from {server.calling_ae_title} "
                "(check the AE titles and that the PACS knows ours)"
            )
        if attempt < ATTEMPTS:
            backoff(server.name, "association", attempt, "no answer" if not assoc.is_aborted else "aborted")
    if assoc is None or not assoc.is_established:
        raise ClaimedError(f"conn_id: cannot reach DICOM peer {server.name} after {ATTEMPTS} tries")
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        assoc.release()


def echo(server: DimseServer) -> None:
    """C-ECHO: raises a clear error unless the peer answers with success."""
    from pynetdicom.sop_class import Verification

    with association(server, [Verification]) as assoc:
        status = assoc.send_c_echo()
        if status is None or int(status.get("Status", -1)) != 0:
            raise ClaimedError(f"{server.name}: C-ECHO failed")


def _identifier(level: str, filters: dict[str, str], keys: Iterable[str], **unique: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key in keys:
        setattr(ds, key, "")
    for key, value in {**filters, **unique}.items():
        if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
            from pydicom.datadict import dictionary_VR

            ds.add_new(int(key, 16), dictionary_VR(int(key, 16)), value)
        else:
            setattr(ds, key, value)
    return ds


def _find(assoc, server: DimseServer, identifier) -> list:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    found = []
    for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if status is None or "Status" not in status:
            raise ClaimedError(f"{server.name}: C-FIND got no answer (timeout or aborted association)")
        code = int(status.Status)
        if code in (0xFF00, 0xFF01) and answer is not None:
            found.append(answer)
        elif code != 0x0000:
            raise ClaimedError(f"{server.name}: C-FIND failed with status 0x{code:04X}")
    return found


def _unique(answers: Iterable, *keys: str) -> list:
    """The answers with distinct values of ``keys`` (a PACS may answer a study or series once per instance)."""
    seen: dict[tuple, object] = {}
    for answer in answers:
        seen.setdefault(tuple(str(answer.get(k, "")) for k in keys), answer)
    return list(seen.values())


def dimse_search(server: DimseServer, query: Query) -> list[Instance]:
    """C-FIND (Study Root): studies or series matching ``query``, then their instances, each once."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    with association(server, [StudyRootQueryRetrieveInformationModelFind]) as assoc:
        if query.level == "instance":
            answers = _find(assoc, server, _identifier("IMAGE", query.filters, INSTANCE_KEYS))
        else:
            keys = STUDY_KEYS if query.level == "study" else SERIES_KEYS
            answers = []
            parents = _find(assoc, server, _identifier(QR_LEVEL[query.level], query.filters, keys))
            for parent in _unique(parents, *keys):
                if query.level == "study":
                    found = _find(
                        assoc, server, _identifier("SERIES", {}, SERIES_KEYS, StudyInstanceUID=parent.StudyInstanceUID)
                    )
                    series = _unique(found, *SERIES_KEYS)
                else:
                    series = [parent]
                for item in series:
                    unique = {"StudyInstanceUID": item.StudyInstanceUID, "SeriesInstanceUID": item.SeriesInstanceUID}
                    answers += _find(assoc, server, _identifier("IMAGE", {}, INSTANCE_KEYS, **unique))
                    if query.limit and len(answers) >= query.limit:
                        break
                if query.limit and len(answers) >= query.limit:
                    break
    instances = [
        Instance(
            str(answer.get("StudyInstanceUID", "")),
            str(answer.get("SeriesInstanceUID", "")),
            str(answer.get("SOPInstanceUID", "")),
            str(answer.get("SOPClassUID", "")),
        )
        for answer in _unique(answers, "SOPInstanceUID")
    ]
    instances = [i for i in instances if i.sop]
    if not query.limit and len(instances) > MAX_INSTANCES:
        raise ClaimedError(f"source: more than {MAX_INSTANCES} instances match; narrow it or set max_instances")
    return instances[: query.limit] if query.limit else instances


def _receiver(folder: Path, wanted: set[str]) -> Callable:
    """The C-STORE handler of a retrieval: each instance asked for written as received (not decoded)."""
    from pydicom.filewriter import write_file_meta_info

    def store(event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID or "")
        if uid not in wanted:
            return 0xC211  # not asked for: refused
        target = folder / instance_file(uid)
        staging = folder / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            with open(staging, "wb") as out:
                out.write(b"\0" * 128 + b"DICM")
                write_file_meta_info(out, event.file_meta, enforce_standard=True)
                out.write(event.request.DataSet.getvalue())
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return 0x0000

    return store


RETRIEVE_OK = (0x0000, 0xFF00, 0xFF01)


RETRIEVE_HINTS = {
    0xA801: "the PACS does not know the move destination (add our move AE title, host and port to its configuration)",
    0xB000: "some sub-operations failed (an instance the PACS could not send in a transfer syntax we accept)",
}


def dimse_fetch(
    server: DimseServer,
    instances: list[Instance],
    folder: Path,
    on_error: Callable[[Instance, str], None] | None = None,
) -> Iterator[tuple[Instance, Path]]:
    """C-GET or C-MOVE (``server.retrieve``) of the instances not yet in ``folder``, series by series.

    Each SOP class C-FIND reported is offered once per transfer syntax (a context accepts one), so
    the PACS sends the files as stored, without transcoding; the files are written as received.
    C-MOVE runs our own storage SCP (``server.move_ae_title`` on ``server.move_port``, accepting
    only the PACS's AE title and only the instances asked for) for one association per series. An
    instance the PACS did not send goes to ``on_error`` with the PACS's status; the others go on.
    """
    wanted = {i.sop for i in instances}
    missing = [i for i in instances if not (folder / i.file).exists()]
    by_series: dict[tuple[str, str], list[Instance]] = {}
    for item in missing:
        by_series.setdefault((item.study, item.series), []).append(item)
    handler = _receiver(folder, wanted)
    with contextlib.ExitStack() as stack:
        if server.retrieve == "move" and by_series:
            stack.enter_context(_storage_scp(server, handler, {i.sop_class for i in missing if i.sop_class}))
        for (study, series), items in by_series.items():
            identifier = _identifier(
                "IMAGE", {}, (), StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=[i.sop for i in items]
            )
            problem = _retrieve_series(server, items, identifier, handler, folder)
            for item in items:
                if not (folder / item.file).exists() and on_error is not None:
                    on_error(item, f"{server.name} did not send it ({problem})")
    for instance in instances:
        path = folder / instance.file
        if path.exists():
            yield instance, path


# C-GET of instances whose SOP class the PACS's C-FIND did not say (dcmqrscp does not): the classes
# proposed, most common first, a group per association until every instance came


COMMON_CLASSES = (
    "CTImageStorage MRImageStorage ComputedRadiographyImageStorage DigitalXRayImageStorageForPresentation "
    "SecondaryCaptureImageStorage UltrasoundImageStorage NuclearMedicineImageStorage EnhancedMRImageStorage "
    "EnhancedCTImageStorage DigitalMammographyXRayImageStorageForPresentation XRayAngiographicImageStorage "
    "PositronEmissionTomographyImageStorage DigitalXRayImageStorageForProcessing UltrasoundMultiFrameImageStorage "
    "XRayRadiofluoroscopicImageStorage ComprehensiveSRStorage BasicTextSRStorage EnhancedSRStorage "
    "KeyObjectSelectionDocumentStorage DigitalMammographyXRayImageStorageForProcessing "
    "MultiFrameTrueColorSecondaryCaptureImageStorage MultiFrameGrayscaleByteSecondaryCaptureImageStorage "
    "MultiFrameGrayscaleWordSecondaryCaptureImageStorage EncapsulatedPDFStorage SegmentationStorage "
    "GrayscaleSoftcopyPresentationStateStorage RTImageStorage RTStructureSetStorage RTDoseStorage "
    "VLPhotographicImageStorage BreastTomosynthesisImageStorage EnhancedXAImageStorage"
).split()


def _get_passes(items: list[Instance]) -> Iterator[list[tuple[str, list[str]]]]:
    """The storage contexts of each C-GET association: every class in every syntax, then one syntax at a time.

    A PACS that picks the context matching the stored file's syntax (Orthanc) sends everything in
    the first association(s). One that takes the first context of the SOP class, whatever its syntax
    (dcmqrscp), sends its uncompressed files there and each compressed one in the pass offering only
    that file's syntax. Only what is still missing is asked for again.
    """
    from pydicom.uid import UID
    from pynetdicom import sop_class

    classes = sorted({i.sop_class for i in items if i.sop_class})
    if any(not i.sop_class for i in items):
        classes += [str(getattr(sop_class, n)) for n in COMMON_CLASSES if str(getattr(sop_class, n)) not in classes]
    classes = [str(UID(c)) for c in classes]
    step = 127 // len(GET_SYNTAXES)
    for n in range(0, len(classes), step):
        yield [(c, [ts]) for c in classes[n : n + step] for ts in GET_SYNTAXES]
    for ts in GET_SYNTAXES[len(UNCOMPRESSED) :]:
        for n in range(0, len(classes), 127):
            yield [(c, [ts]) for c in classes[n : n + 127]]


def _retrieve_series(server: DimseServer, items: list[Instance], identifier, handler, folder: Path) -> str:
    """C-GET or C-MOVE of one series; "" when every instance came, else what the PACS answered."""
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import (
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    )

    verb = f"C-{server.retrieve.upper()}"
    if server.retrieve == "move":
        passes = [([StudyRootQueryRetrieveInformationModelMove], None, None)]
    else:
        passes = (
            (
                [StudyRootQueryRetrieveInformationModelGet, *group],
                [build_role(c, scp_role=True) for c in dict.fromkeys(c for c, _ in group)],
                [(evt.EVT_C_STORE, handler)],
            )
            for group in _get_passes(items)
        )
    problem = ""
    for contexts, roles, handlers in passes:
        left = [i.sop for i in items if not (folder / i.file).exists()]
        if not left:
            return ""
        identifier.SOPInstanceUID = left
        try:
            with association(server, contexts, roles, handlers) as assoc:
                if server.retrieve == "move":
                    model = StudyRootQueryRetrieveInformationModelMove
                    answers = assoc.send_c_move(identifier, server.move_ae_title, model)
                else:
                    answers = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
                for status, _ in answers:
                    if status is None or "Status" not in status:
                        problem = f"{verb} got no answer (timeout or aborted association)"
                        break
                    code = int(status.Status)
                    if code not in RETRIEVE_OK:
                        hint = RETRIEVE_HINTS.get(code, "")
                        problem = f"{verb} status 0x{code:04X}" + (f": {hint}" if hint else "")
        except ClaimedError as exc:
            problem = str(exc)
    if all((folder / i.file).exists() for i in items):
        return ""
    log.warning("%s: %s", server.name, problem or f"{verb} reported success but did not send every instance")
    return problem or f"{verb} reported success without sending it"


@contextlib.contextmanager
def _storage_scp(server: DimseServer, handler: Callable, classes: set[str]):
    """Our storage SCP for C-MOVE: any storage SOP class in any transfer syntax, from the PACS's AE title only."""
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt

    ae = AE(ae_title=server.move_ae_title)
    ae.require_calling_aet = [server.ae_title]
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = server.timeout
    for cls in sorted({c.abstract_syntax for c in StoragePresentationContexts} | classes):
        ae.add_supported_context(cls, ALL_TRANSFER_SYNTAXES)
    try:
        scp = ae.start_server(
            (server.move_bind, server.move_port), block=False, evt_handlers=[(evt.EVT_C_STORE, handler)]
        )
    except OSError as exc:
        raise ClaimedError(
            f"conn_id: cannot listen for C-MOVE on {server.move_bind or '*'}:{server.move_port} ({exc.strerror})"
        ) from None
    try:
        yield scp
    finally:
        scp.shutdown()


UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")  # every SCP accepts these


STORED_WITH_WARNING = (0xB000, 0xB006, 0xB007)


NO_ANSWER = "failed (no answer: timeout or aborted association)"


def _store_batches(heads: list, limit: int = 128) -> Iterator[tuple[list[int], list]]:
    """Files in groups whose presentation contexts fit one association (at most ``limit``).

    Each SOP class is proposed in the file's own transfer syntax and, in a context of its own, in the
    uncompressed ones, so a peer that accepts only uncompressed data still gets a context to use.
    """
    batch: list[int] = []
    contexts: dict[tuple[str, tuple[str, ...]], None] = {}
    for n, ds in enumerate(heads):
        cls, ts = str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)
        wanted = [(cls, UNCOMPRESSED)] + ([] if ts in UNCOMPRESSED else [(cls, (ts,))])
        new = [c for c in wanted if c not in contexts]
        if batch and len(contexts) + len(new) > limit:
            yield batch, [(c, list(t)) for c, t in contexts]
            batch, contexts = [], {}
            new = wanted
        batch.append(n)
        contexts.update(dict.fromkeys(new))
    if batch:
        yield batch, [(c, list(t)) for c, t in contexts]


def _accepted(assoc) -> set[tuple[str, str]]:
    return {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}


def as_uncompressed(path: Path):
    """The dataset of ``path`` in Explicit VR Little Endian: compressed pixel data decoded with pydicom's
    handlers (pylibjpeg, openjpeg, RLE, JPEG-LS), deflated data inflated."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        ds.decompress(generate_instance_uid=False)  # the same instance: Explicit VR Little Endian, decoded
    elif str(ds.file_meta.TransferSyntaxUID) not in UNCOMPRESSED:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _even(ds):
    """``ds`` with odd-length Pixel Data padded to an even length (PS3.5 7.1.1), as a strict peer needs it."""
    if "PixelData" in ds and len(ds.PixelData) % 2:
        ds.PixelData = ds.PixelData + b"\0"
    return ds


def _send(assoc, server: DimseServer, path: Path, ds) -> str:
    """C-STORE of one file: as it is when the peer accepted its syntax, else decompressed; the outcome."""
    import pydicom
    from pydicom.uid import UID

    cls, ts = str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)
    accepted = _accepted(assoc)
    try:
        if (cls, ts) in accepted and not path.stat().st_size % 2:
            payload = path  # streamed from the file
        elif (cls, ts) in accepted:
            payload = _even(pydicom.dcmread(path))  # an odd length (not conformant): a peer may abort on it
        elif any((cls, u) in accepted for u in UNCOMPRESSED):
            payload = _even(as_uncompressed(path))
        else:
            return f"failed (the peer accepted no presentation context for {UID(cls).name} in {UID(ts).name})"
    except Exception as exc:  # noqa: BLE001 - this file cannot be decoded here; the others go on
        return f"failed (the peer does not take {UID(ts).name} and it cannot be decompressed: {type(exc).__name__})"
    try:
        status = assoc.send_c_store(payload)
    except (ValueError, AttributeError) as exc:  # no context after all, or not encodable
        return f"failed ({type(exc).__name__}: {exc})"
    if status is None or "Status" not in status:
        return NO_ANSWER
    code = int(status.Status)
    return "stored" if code == 0 or code in STORED_WITH_WARNING else f"failed (status 0x{code:04X})"


def dimse_store(server: DimseServer, files: list[Path]) -> dict[str, str]:
    """C-STORE of ``files``; SOPInstanceUID -> "stored" or why not.

    Each file goes as it is where the peer accepted its transfer syntax, else decompressed to an
    uncompressed one it accepted; a file neither way is reported and the rest goes on. An association
    lost midway is made again for the files not yet sent.
    """
    import pydicom

    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    outcome: dict[str, str] = {}
    for batch, contexts in _store_batches(heads):
        todo = list(batch)
        for _ in range(ATTEMPTS):
            try:
                with association(server, contexts) as assoc:
                    while todo and assoc.is_established:
                        n = todo.pop(0)
                        outcome[str(heads[n].SOPInstanceUID)] = result = _send(assoc, server, files[n], heads[n])
                        if result == NO_ANSWER:
                            break  # the peer dropped this file and the association: a new one for the rest
            except ClaimedError as exc:
                if not outcome:
                    raise  # the peer is not there at all: a clear error, nothing was stored
                log.warning("%s", exc)
            if not todo:
                break
        for n in todo:
            outcome[str(heads[n].SOPInstanceUID)] = "failed (not sent: the association was lost)"
    return outcome
