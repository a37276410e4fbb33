"""Run an experiment's jobs, resumably, locally or on a Ray cluster, and record the results.

Files in the output folder (everything a report needs; the report is rebuilt from them alone):

* ``experiment.json``: the experiment's cases and fingerprint (a folder holds one experiment);
* ``runs.jsonl``: one line per finished case, appended; a crash loses at most the job running;
* ``runs/<job>/``: ``history.csv``, ``iter_NNNNN.png`` snapshots at each case's iteration
  count, and ``checkpoint.pt`` while the job is unfinished, from which a rerun resumes.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..core.config import StyleConfig
from ..errors import EstiloError, show_notices
from ..files import atomic_write, open_regular, read_regular
from ..image.io import save_image
from ..pipeline import (
    Checkpoint,
    Iterate,
    Stylized,
    peak_resident,
    pick_device,
    read,
    resize,
    snapshot_path,
    stylize,
    working_size,
    write_history,
)
from ..quality import measure
from .spec import Case, Experiment, Job

log = logging.getLogger(__name__)

#: Seconds between checkpoints of a running job.
CHECKPOINT_SECONDS = 30.0
#: A checkpoint holds one image and the optimiser's state (L-BFGS: 100 image-sized vectors).
CHECKPOINT_BYTES = 4 * 2**30
#: experiment.json lists at most spec.MAX_CASES cases of a few hundred bytes each.
MANIFEST_BYTES = 64 * 2**20
#: runs.jsonl: a few KB per case.
RECORDS_BYTES = 256 * 2**20
#: Seconds to wait for a Ray cluster's address to accept a connection.
RAY_CONNECT_SECONDS = 10.0
#: prctl's option number for "signal me when my parent dies" (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: A case "stalled" when its last half of iterations lowered the loss by less than this.
STALL_FRACTION = 1e-3


def prepare(experiment: Experiment, folder: Path) -> set[str]:
    """Create or check the folder; return the ids of the cases already finished.

    Everything is checked before anything is written: the images are read first, so a spec
    that fails leaves no experiment.json behind to refuse its corrected version. A folder
    that already holds other files and no experiment is refused, never taken over."""
    for image in (experiment.content, *experiment.styles):
        read(image, experiment.cases[0].config, "image")  # fail now, not in the middle
    manifest = folder / "experiment.json"
    if manifest.exists():
        recorded = read_manifest(folder)
        if recorded["fingerprint"] != experiment.fingerprint:
            raise EstiloError(
                f"{str(folder)!r} holds a different experiment ({recorded['name']!r}); "
                "use another output folder"
            )
    elif folder.is_dir() and any(folder.iterdir()):
        raise EstiloError(
            f"{str(folder)!r} is not empty and holds no experiment; give a new or empty folder"
        )
    elif folder.exists() and not folder.is_dir():
        raise EstiloError(f"{str(folder)!r} is a file; give a folder for the experiment")
    folder.mkdir(parents=True, exist_ok=True)
    if not manifest.exists():
        text = json.dumps(experiment.describe(), indent=1).encode()
        atomic_write(manifest, lambda handle: handle.write(text))
    return {record["case_id"] for record in read_records(folder)}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's ``experiment.json``, checked: a corrupt or foreign file is a one-line
    error, not a traceback in the middle of a report."""
    path = folder / "experiment.json"
    label = f"{str(path)!r}"
    if not path.exists():
        raise EstiloError(f"{str(folder)!r} holds no experiment (no experiment.json)")
    data = read_regular(path, MANIFEST_BYTES, label)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EstiloError(f"{label} is damaged (not valid JSON)") from None
    shape = {"name": str, "fingerprint": str, "content": str, "styles": list, "axes": list}
    if not isinstance(manifest, dict) or any(
        not isinstance(manifest.get(key), kind) for key, kind in shape.items()
    ):
        raise EstiloError(f"{label} is not an estilo experiment manifest")
    cases = manifest.get("cases")
    if not isinstance(cases, list) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("label"), str)
        for c in cases
    ):
        raise EstiloError(f"{label} is not an estilo experiment manifest (bad cases)")
    return manifest


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The finished cases, one record per case (the last written wins).

    A crash mid-write leaves a torn line; if the next record was appended to it before
    append_records learnt to cut such tails, the record is recovered from the line's end."""
    path = folder / "runs.jsonl"
    records: dict[str, dict[str, Any]] = {}
    if path.exists():
        text = read_regular(path, RECORDS_BYTES, f"{str(path)!r}").decode("utf-8", "replace")
        for line in text.splitlines():
            record = _parse_record(line)
            if record is None:
                start = line.rfind('{"case_id"')
                record = _parse_record(line[start:]) if start > 0 else None
            if record is not None:
                records.pop(record["case_id"], None)
                records[record["case_id"]] = record
    return list(records.values())


def _parse_record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    ok = isinstance(record, dict) and isinstance(record.get("case_id"), str)
    return record if ok else None


def append_records(folder: Path, records: list[dict[str, Any]]) -> None:
    """Append records in one write, after cutting a torn last line a crash left behind (else
    the first new record would be glued to it and lost)."""
    path = folder / "runs.jsonl"
    with path.open("a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(max(0, size - 65536))
            tail = handle.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                handle.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)
        handle.seek(0, os.SEEK_END)
        handle.write("".join(json.dumps(record) + "\n" for record in records).encode())
        handle.flush()
        os.fsync(handle.fileno())


def execute_job(job: Job, experiment: Experiment, folder: str) -> list[dict[str, Any]]:
    """Run one job (in a worker process) and return a record per case. Resumes from the job's
    checkpoint if one exists; on Ctrl-C it checkpoints and returns nothing."""
    root = Path(folder)
    workdir = root / "runs" / job.id
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = workdir / "checkpoint.pt"
    config = job.config.replace(scales=1)
    resume = load_checkpoint(checkpoint_path, job, experiment, config)
    wanted = {case.config.iterations for case in job.cases}
    last_save = [time.monotonic()]

    def on_iterate(step: Iterate) -> None:
        if step.iteration in wanted:
            save_image(step.image, snapshot_path(workdir / "iter.png", step.iteration))
        if step.checkpoint and time.monotonic() - last_save[0] > CHECKPOINT_SECONDS:
            _save_checkpoint(checkpoint_path, step.checkpoint())
            last_save[0] = time.monotonic()

    result = stylize(experiment.content, list(experiment.styles), config, on_iterate, resume=resume)
    if result.status == "interrupted":
        return []
    write_history(workdir / "history.csv", result.history)
    checkpoint_path.unlink(missing_ok=True)
    # The content and style images are the same for every case of the job: read them once.
    content = read(experiment.content, config, "content").rgb
    content = resize(content, working_size(content.shape[-2], content.shape[-1], config))
    style = read(experiment.styles[0], config, "style").rgb
    return [_record(case, job, result, root, workdir, content, style) for case in job.cases]


def _save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    atomic_write(path, lambda handle: torch.save(checkpoint.to_state(), handle))


def load_checkpoint(
    path: Path, job: Job, experiment: Experiment, config: StyleConfig
) -> Checkpoint | None:
    """The job's checkpoint, or None (start afresh) if there is none or it cannot be trusted.

    An experiment folder may come from someone else: the file is read with
    ``weights_only=True``, so a crafted pickle cannot run code, and a corrupt or foreign file
    costs a warning and a rerun of the job, never the experiment."""
    if not path.exists():
        return None
    try:
        with open_regular(path, CHECKPOINT_BYTES, f"checkpoint {str(path)!r}") as handle:
            state = torch.load(handle, map_location="cpu", weights_only=True)
        checkpoint = Checkpoint.from_state(state)
        content = read(experiment.content, config, "content").rgb
        size = working_size(content.shape[-2], content.shape[-1], config)
        if tuple(checkpoint.image.shape[-2:]) != size:
            raise ValueError(f"its image is not {size[1]}x{size[0]}")
        if checkpoint.iteration > job.config.iterations:
            raise ValueError("it is past the job's last iteration")
    except EstiloError as exc:
        reason = str(exc)
    except Exception as exc:  # anything torch.load or the checks raise: distrust the file
        reason = f"{str(path)!r} is not a usable checkpoint ({_first_line(exc)})"
    else:
        return checkpoint
    log.warning("%s; running job %s from the start", reason, job.id)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _record(
    case: Case,
    job: Job,
    result: Stylized,
    root: Path,
    workdir: Path,
    content: torch.Tensor,
    style: torch.Tensor,
) -> dict[str, Any]:
    iterations = case.config.iterations
    history = [r for r in result.history if r.iteration <= iterations]
    finite = [r for r in history if math.isfinite(r.loss)]
    # Diverged: the loss became NaN/inf, or the run ended worse than it started.
    diverged = len(finite) < len(history) or (bool(finite) and finite[-1].loss > finite[0].loss)
    image_path = snapshot_path(workdir / "iter.png", iterations)
    if not image_path.exists():  # diverged before this count: the best finite image stands in
        save_image(result.image, image_path)
    image = read(image_path, case.config, "image").rgb
    half = finite[len(finite) // 2].loss if finite else math.nan
    end = finite[-1] if finite else None
    stalled = end is not None and not diverged and (half - end.loss) < STALL_FRACTION * half
    seconds = history[-1].seconds if history else 0.0
    return {
        "case_id": case.id,
        "label": case.label,
        "job": job.id,
        "config": case.config.to_dict(),
        "iterations": iterations,
        "status": "diverged" if diverged else "stalled" if stalled else "converging",
        "seconds": seconds,
        "seconds_per_iteration": seconds / max(1, len(history)),
        "peak_rss_mib": peak_resident() / 2**20,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
        "device": str(pick_device(case.config.device)),
        "loss": end.loss if end else math.nan,
        "content": end.content if end else math.nan,
        "style": end.style if end else math.nan,
        **measure(
            image,
            content,
            style,
            preserve_colours=case.config.preserve_colors != "none",
            weights=case.config.weights,
        ),
        "image": str(image_path.relative_to(root)),
        "history": str((workdir / "history.csv").relative_to(root)),
    }


def _local_job(args: tuple[Job, Experiment, str]) -> list[dict[str, Any]]:
    show_notices()  # a spawned worker starts without the CLI's logging set-up
    return execute_job(*args)


def die_with_parent(parent: int) -> None:
    """Run first in a worker process: end it when ``parent`` dies, even by ``kill -9`` (which
    gives the parent no chance to stop its workers). Linux: the kernel sends SIGKILL
    (prctl PR_SET_PDEATHSIG); elsewhere a thread watches for the parent to change."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # it died before the request took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass  # no usable libc: fall back to the watcher
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def run(
    experiment: Experiment,
    folder: Path,
    executor: str = "local",
    address: str | None = None,
    report: Callable[[str], None] = lambda line: None,
) -> list[dict[str, Any]]:
    """Run every unfinished job; append records as jobs finish; return all records."""
    done = prepare(experiment, folder)
    pending = [job for job in experiment.jobs if any(c.id not in done for c in job.cases)]
    skipped = len(experiment.jobs) - len(pending)
    report(
        f"{len(experiment.cases)} cases in {len(experiment.jobs)} runs; "
        f"{skipped} already finished, {len(pending)} to run ({executor})"
    )
    if executor == "ray":
        _run_ray(experiment, folder, pending, address, report)
    else:
        context = multiprocessing.get_context("spawn")  # a fresh process: its own peak memory
        for number, job in enumerate(pending, start=1):
            started = time.perf_counter()
            with context.Pool(1, die_with_parent, (os.getpid(),), maxtasksperchild=1) as pool:
                records = pool.apply(_local_job, ((job, experiment, str(folder)),))
            if not records:
                raise KeyboardInterrupt
            append_records(folder, _new(folder, records))
            report(
                f"[{number}/{len(pending)}] {records[-1]['label']}: "
                f"{time.perf_counter() - started:.0f} s"
            )
    return read_records(folder)


def check_ray_address(address: str, timeout: float | None = None) -> None:
    """Refuse a Ray address that does not answer: ray.init would wait minutes on it."""
    timeout = RAY_CONNECT_SECONDS if timeout is None else timeout
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EstiloError(f"--address {address!r} is not HOST:PORT (or ray://HOST:PORT)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise EstiloError(
            f"cannot reach the Ray cluster at {address}: {reason} (waited up to {timeout:g} s)"
        ) from None


def _new(folder: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of cases not yet in runs.jsonl: a job rerun because a crash cut its records
    short must not write the ones that made it a second time."""
    done = {record["case_id"] for record in read_records(folder)}
    return [record for record in records if record["case_id"] not in done]


def _run_ray(
    experiment: Experiment,
    folder: Path,
    pending: list[Job],
    address: str | None,
    report: Callable[[str], None],
) -> None:
    try:
        import ray
    except ModuleNotFoundError:
        raise EstiloError("--executor ray needs Ray: pip install 'estilo[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here and address not in (None, "auto", "local"):
        check_ray_address(address)
    if started_here:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)  # type: ignore[no-untyped-call]
        # One GPU per run where the cluster has GPUs, else one CPU; a fresh worker per run
        # (max_calls=1) so that each run's peak memory is its own.
        task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_calls=1)(
            execute_job
        )
        futures = {task.remote(job, experiment, str(folder)): job for job in pending}
        finished = 0
        while futures:
            ready, _ = ray.wait(list(futures), num_returns=1)
            job = futures.pop(ready[0])
            records = ray.get(ready[0])
            finished += 1
            append_records(folder, _new(folder, records))
            report(f"[{finished}/{len(pending)}] {job.cases[-1].label} (ray)")
    finally:
        if started_here:
            ray.shutdown()
