"""Experiments: specs, grid expansion, run sharing, resume, reports, Ray, the paper command."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import pytest
import torch

from estilo import cli
from estilo.errors import ConfigError, EstiloError
from estilo.experiments import report, runner, spec
from estilo.image.io import to_pil

from .conftest import synthetic_content, synthetic_style

# Keep a local Ray instance on loopback (read when Ray starts).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
TINY = {"size": 32, "log_every": 0, "device": "cpu", "scales": 1}


@pytest.fixture
def images(tmp_path: Path) -> tuple[str, str]:
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    to_pil(synthetic_content()).save(content)
    to_pil(synthetic_style()).save(style)
    return str(content), str(style)


def write_spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(body)
    return path


def test_grid_is_a_cartesian_product_plus_cases(tmp_path: Path, images: tuple[str, str]) -> None:
    path = write_spec(
        tmp_path,
        f"""
content = "{images[0]}"
style = "{images[1]}"
[base]
size = 32
[grid]
optimizer = ["adam", "sgd"]
lr = [0.01, 0.1, 1.0]
[[cases]]
name = "lbfgs"
optimizer = "lbfgs"
""",
    )
    study = spec.load_spec(path)
    assert len(study.cases) == 7
    assert {c.config.optimizer for c in study.cases} == {"adam", "sgd", "lbfgs"}
    assert study.axes == ("optimizer", "lr")
    assert study.cases[0].label == "optimizer=adam, lr=0.01" and study.cases[-1].label == "lbfgs"


def test_cases_differing_only_in_iterations_share_a_run() -> None:
    study = spec.paper(size=32)
    assert len(study.cases) == 11
    jobs = {(j.config.optimizer, j.config.lr): j for j in study.jobs}
    assert len(jobs) == 6
    adam = jobs[("adam", 0.01)]
    assert adam.config.iterations == 10000
    assert [c.config.iterations for c in adam.cases] == [500, 4000, 10000]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[base]\nsise = 3\n", "unknown field 'sise'"),
        ("[grid]\nlr = []\n", "grid axis 'lr' must be a non-empty list"),
        ("[grid]\n", "empty grid and no cases"),
        ("colour = 1\n", "unknown key 'colour'"),
        ("[base]\nlr = -1\n[[cases]]\nname = 'x'\n", "lr must be a positive number"),
    ],
)
def test_bad_specs(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec.load_spec(write_spec(tmp_path, body))


def tiny_study(images: tuple[str, str], iterations: tuple[int, ...] = (2, 4)) -> spec.Experiment:
    cases = [{"name": f"adam {n}", "optimizer": "adam", "iterations": n} for n in iterations]
    cases.append({"name": "sgd", "optimizer": "sgd", "lr": 1e-8, "iterations": 2})
    return spec.build("tiny", images[0], [images[1]], dict(TINY), {}, cases)


def test_local_run_records_report_and_rerun_skips(tmp_path: Path, images: tuple[str, str]) -> None:
    study = tiny_study(images)
    folder = tmp_path / "out"
    records = runner.run(study, folder)
    assert len(records) == 3 and len(study.jobs) == 2
    record = next(r for r in records if r["label"] == "adam 4")
    for key in (
        "seconds",
        "seconds_per_iteration",
        "peak_rss_mib",
        "device",
        "status",
        "content_distance",
        "gram_distance",
        "coarse_ssim",
        "grain",
        "colour_distance",
        "loss",
    ):
        assert key in record, key
    assert 0 < record["coarse_ssim"] <= 1 and record["gram_distance"] > 0
    assert (folder / record["image"]).exists()
    shared = {r["job"] for r in records if r["label"].startswith("adam")}
    assert len(shared) == 1  # 2 and 4 iterations: one run

    lines: list[str] = []
    runner.run(study, folder, report=lines.append)
    assert "3 already finished" not in lines[0] and "2 already finished, 0 to run" in lines[0]
    assert len(runner.read_records(folder)) == 3

    md, html = report.build_report(folder)
    text = md.read_text()
    assert "## Findings" in text and "Lowest final loss" in text and "| adam 4 |" in text
    page = html.read_text()
    assert page.count("data:image/") >= 2 and "<table>" in page


def test_report_rebuilds_from_files_alone(tmp_path: Path, images: tuple[str, str]) -> None:
    folder = tmp_path / "out"
    runner.run(tiny_study(images, (3,)), folder)
    (folder / "report.md").unlink(missing_ok=True)
    assert cli.main(["experiment", "report", str(folder)]) == 0
    assert "adam 3" in (folder / "report.md").read_text()


def test_a_folder_holds_one_experiment(tmp_path: Path, images: tuple[str, str]) -> None:
    folder = tmp_path / "out"
    runner.prepare(tiny_study(images, (3,)), folder)
    with pytest.raises(EstiloError, match="holds a different experiment"):
        runner.prepare(tiny_study(images, (5,)), folder)


def test_missing_image_fails_before_running(tmp_path: Path, images: tuple[str, str]) -> None:
    study = tiny_study((str(tmp_path / "nope.png"), images[1]))
    with pytest.raises(EstiloError, match="no such file"):
        runner.run(study, tmp_path / "out")
    assert not (tmp_path / "out" / "runs.jsonl").exists()


def test_crash_resumes_from_checkpoint(
    tmp_path: Path, images: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = spec.build(
        "crash",
        images[0],
        [images[1]],
        dict(TINY),
        {},
        [{"name": "adam 6", "optimizer": "adam", "iterations": 6}],
    )
    job = study.jobs[0]
    folder = tmp_path / "out"
    runner.prepare(study, folder)
    monkeypatch.setattr(runner, "CHECKPOINT_SECONDS", -1.0)  # checkpoint every iteration

    calls = {"n": 0}
    real_save = runner._save_checkpoint

    def save_then_maybe_crash(path: Path, checkpoint: object) -> None:
        real_save(path, checkpoint)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(runner, "_save_checkpoint", save_then_maybe_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        runner.execute_job(job, study, str(folder))
    saved = torch.load(folder / "runs" / job.id / "checkpoint.pt", weights_only=True)
    assert saved["iteration"] == 4

    # Say the first attempt had run 1000 s: the resumed job's time must carry on from there.
    checkpoint = folder / "runs" / job.id / "checkpoint.pt"
    torch.save({**saved, "seconds": 1000.0}, checkpoint)
    records = runner.execute_job(job, study, str(folder))  # resumes at iteration 5
    history = (folder / records[0]["history"]).read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert float(history[5].split(",")[1]) >= 1000 and records[0]["seconds"] >= 1000
    assert not (folder / "runs" / job.id / "checkpoint.pt").exists()


def test_paper_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "paper"
    code = cli.main(
        ["experiment", "paper", "-o", str(folder), "--size", "32", "--iterations-scale", "0.001"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "11 cases in 6 runs" in out
    records = runner.read_records(folder)
    assert len(records) == 11
    assert {r["config"]["optimizer"] for r in records} == {"adam", "adamax", "adadelta", "sgd"}
    assert (folder / "report.html").exists()
    manifest = json.loads((folder / "experiment.json").read_text())
    assert manifest["axes"] == ["iterations", "optimizer", "lr"]


def test_cli_experiment_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["experiment", "run", str(tmp_path / "none.toml"), "-o", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["experiment", "report", str(tmp_path)]) == 2
    assert "holds no experiment" in capsys.readouterr().err


def test_ray_executor_on_a_local_instance(tmp_path: Path, images: tuple[str, str]) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        study = tiny_study(images)
        lines: list[str] = []
        records = runner.run(study, tmp_path / "ray", executor="ray", report=lines.append)
        assert len(records) == 3
        assert any("(ray)" in line for line in lines)
        assert report.build_report(tmp_path / "ray")[1].exists()
    finally:
        ray.shutdown()


def test_missing_matplotlib_names_the_extra_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    code = cli.main(["experiment", "paper", "-o", str(tmp_path / "p"), "--size", "32"])
    assert code == 2
    assert "pip install 'estilo[experiments]'" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


class _Planter:
    """Unpickling this calls open(marker, "w"): the code a crafted checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def one_job_study(images: tuple[str, str], iterations: int = 3) -> spec.Experiment:
    case = {"name": f"adam {iterations}", "optimizer": "adam", "iterations": iterations}
    return spec.build("one", images[0], [images[1]], dict(TINY), {}, [case])


@pytest.mark.parametrize("how", ["pickle", "torch.save", "garbage", "foreign-dict"])
def test_a_crafted_or_corrupt_checkpoint_runs_no_code_and_the_job_reruns(
    tmp_path: Path,
    images: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    study = one_job_study(images)
    job, folder, marker = study.jobs[0], tmp_path / "out", tmp_path / "pwned"
    runner.prepare(study, folder)
    checkpoint = folder / "runs" / job.id / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    payload = {"image": _Planter(marker), "iteration": 1}
    if how == "pickle":
        checkpoint.write_bytes(pickle.dumps(payload))
    elif how == "torch.save":
        torch.save(payload, checkpoint)
    elif how == "garbage":
        checkpoint.write_bytes(b"PK\x03\x04 not a zip at all")
    else:
        torch.save({"image": torch.zeros(3), "iteration": "two"}, checkpoint)
    records = runner.execute_job(job, study, str(folder))
    assert not marker.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "from the start" in warnings[0], warnings
    history = (folder / records[0]["history"]).read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3"]  # rerun from scratch


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "is damaged"),
        (b"\xff\xfe\x00", "is damaged"),
        (b"[1, 2]", "not an estilo experiment"),
        (b'{"name": "x", "fingerprint": 3}', "not an estilo experiment"),
        (b"[" * 100_000 + b"]" * 100_000, "is damaged"),
    ],
)
def test_a_corrupt_or_foreign_experiment_json_is_one_line_exit_2(
    tmp_path: Path,
    images: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    body: bytes,
    message: str,
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "experiment.json").write_bytes(body)
    assert cli.main(["experiment", "report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    with pytest.raises(EstiloError, match=message):
        runner.run(one_job_study(images), folder)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and that run multiprocessing's spawned worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_kill_9_of_an_experiment_takes_its_worker_with_it(
    tmp_path: Path, images: tuple[str, str]
) -> None:
    import signal
    import subprocess
    import sys

    folder = tmp_path / "out"
    script = (
        "import sys; from estilo.experiments import runner, spec\n"
        "case = {'name': 'long', 'optimizer': 'adam', 'iterations': 1000000}\n"
        f"study = spec.build('long', sys.argv[1], [sys.argv[2]], {TINY!r}, {{}}, [case])\n"
        "runner.run(study, __import__('pathlib').Path(sys.argv[3]))\n"
    )
    with subprocess.Popen([sys.executable, "-c", script, *images, str(folder)]) as parent:
        workers: list[int] = []
        event = __import__("threading").Event()
        for _ in range(1200):  # the worker appears once the pool has spawned it
            if (workers := _children(parent.pid)) and list(folder.glob("runs/*")):
                break
            event.wait(0.1)
        assert workers, "no worker appeared"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(600):
            if not any(map(_alive, workers)):
                break
            event.wait(0.1)
        leftover = [pid for pid in workers if _alive(pid)]
        for pid in leftover:  # do not leave it running if the test fails
            os.kill(pid, signal.SIGKILL)
    assert not leftover


def test_a_torn_line_loses_no_record_and_a_rerun_writes_no_duplicate(
    tmp_path: Path, images: tuple[str, str]
) -> None:
    folder = tmp_path / "out"
    runner.run(tiny_study(images), folder)
    path = folder / "runs.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    # A crash cut the last record short; the job of that case reruns and writes its cases.
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    assert len(runner.read_records(folder)) == 2
    records = runner.run(tiny_study(images), folder)
    assert sorted(r["case_id"] for r in records) == sorted(json.loads(x)["case_id"] for x in lines)
    kept = path.read_text().splitlines()
    ids = [json.loads(line)["case_id"] for line in kept if line.startswith('{"case_id"')]
    assert len(ids) == len(set(ids)) == 3  # the job's other case was not written again
    # A record glued to a torn line by an older estilo is still found.
    path.write_text(lines[0] + "\n" + lines[1][:30] + lines[2] + "\n")
    assert {r["case_id"] for r in runner.read_records(folder)} == {
        json.loads(lines[0])["case_id"],
        json.loads(lines[2])["case_id"],
    }


def test_an_ordinary_non_empty_folder_is_not_taken_over(
    tmp_path: Path, images: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.md").write_text("my notes")
    with pytest.raises(EstiloError, match="not empty and holds no experiment"):
        runner.run(tiny_study(images), folder)
    assert (folder / "report.md").read_text() == "my notes"
    assert sorted(p.name for p in folder.iterdir()) == ["report.md"]


def test_a_failed_spec_leaves_nothing_so_the_corrected_one_runs(
    tmp_path: Path, images: tuple[str, str]
) -> None:
    folder = tmp_path / "out"
    with pytest.raises(EstiloError, match="no such file"):
        runner.prepare(tiny_study((str(tmp_path / "typo.png"), images[1])), folder)
    assert not (folder / "experiment.json").exists()
    assert runner.prepare(tiny_study(images), folder) == set()


def test_a_huge_grid_is_refused_with_its_count(tmp_path: Path) -> None:
    axes = "\n".join(f"{name} = [{', '.join(str(v) for v in range(1, 11))}]"
                     for name in ("iterations", "seed", "log_every", "save_every", "tv_weight",
                                  "style_weight"))  # fmt: skip
    with pytest.raises(ConfigError, match="1,000,000 cases"):
        spec.load_spec(write_spec(tmp_path, f"[grid]\n{axes}\n"))


def test_an_unreachable_ray_address_is_refused_quickly(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EstiloError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        runner.check_ray_address(f"127.0.0.1:{port}", timeout=2.0)
    with pytest.raises(EstiloError, match="is not HOST:PORT"):
        runner.check_ray_address("nowhere")
