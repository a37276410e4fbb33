"""Long runs are safe: checkpoints every N iterations, and a resume that ends where an
uninterrupted run ends, across the scales of coarse-to-fine too."""

from __future__ import annotations

import io
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from estilo import cli, pipeline
from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.records import Checkpoint, Iterate, LossRecord
from estilo.core.stylize import stylize
from estilo.core.vgg import Weights
from estilo.errors import CheckpointError, ConfigError
from estilo.formats import checkpoint_path
from estilo.progress import Progress
from estilo.web import handlers
from estilo.web.jobs import JobQueue, Ticket
from estilo.web.limits import Limits

from .conftest import synthetic_content, synthetic_style

SMALL = {"log_every": 0, "device": "cpu", "precision": "float32"}
#: Two scales of three steps each: iteration 2 is in the first, 4 in the second.
PYRAMID = ["--scales", "2", "--iterations", "3", "--refine-iterations", "3"]
FAST = ["--size", "48", "--device", "cpu", "--precision", "float32", "-q", *PYRAMID]


def interrupted_at(
    inputs: RunInputs, config: object, weights: Weights, iteration: int
) -> Checkpoint:
    """Run until ``iteration``, take its checkpoint, and crash there."""
    saved: list[Checkpoint] = []

    def crash(step: Iterate) -> None:
        if step.iteration == iteration:
            assert step.checkpoint is not None
            saved.append(step.checkpoint())
            raise KeyboardInterrupt

    result = stylize(inputs, config, callback=crash, weights=weights)  # type: ignore[arg-type]
    assert result.status == "interrupted"
    # Through the file format, as after a reboot: plain tensors and numbers only.
    state = torch.load(_saved(saved[0].to_state()), weights_only=True)
    return Checkpoint.from_state(state)


def _saved(state: dict[str, object]) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    ("overrides", "iteration"),
    [
        ({"optimizer": "lbfgs"}, 2),  # in the first scale; L-BFGS keeps pixels x 255
        ({"optimizer": "lbfgs"}, 4),  # in the second
        ({"optimizer": "adam", "ema": 0.5, "style_loss": "sliced-wasserstein"}, 5),  # random
    ],
)
def test_a_resumed_run_ends_with_the_uninterrupted_runs_picture(
    content: torch.Tensor,
    style: torch.Tensor,
    weights: Weights,
    overrides: dict[str, object],
    iteration: int,
) -> None:
    config = resolve(scales=2, iterations=3, refine_iterations=3, size=64, **SMALL, **overrides)
    inputs = RunInputs.make(content[None], style[None])
    whole = stylize(inputs, config, weights=weights)
    checkpoint = interrupted_at(inputs, config, weights, iteration)
    assert checkpoint.scale == (1 if iteration <= 3 else 2)
    resumed = stylize(inputs, config, weights=weights, resume=checkpoint)
    assert [r.iteration for r in resumed.history] == list(range(1, 7))
    assert [r.loss for r in resumed.history] == [r.loss for r in whole.history]
    assert torch.equal(resumed.image, whole.image)
    assert resumed.best_iteration == whole.best_iteration


def test_a_run_resumed_in_a_held_scale_ends_with_the_uninterrupted_runs_picture(
    weights: Weights,
) -> None:
    # From 32 px the 96 px picture's scales above 64 px hold the picture painted so far: its
    # upsampled copy is in the checkpoint, since the resumed run never paints the scale before.
    config = resolve(scales=0, min_scale=32, iterations=2, refine_iterations=2, **SMALL)
    inputs = RunInputs.make(synthetic_content(72, 96)[None], synthetic_style(96, 96)[None])
    whole = stylize(inputs, config, weights=weights)
    checkpoint = interrupted_at(inputs, config, weights, len(whole.history) - 1)
    assert isinstance(checkpoint.loop.get("content"), torch.Tensor)
    resumed = stylize(inputs, config, weights=weights, resume=checkpoint)
    assert [r.loss for r in resumed.history] == [r.loss for r in whole.history]
    assert torch.equal(resumed.image, whole.image)


def test_a_checkpoint_from_another_pyramid_is_refused(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    config = resolve(scales=2, iterations=3, refine_iterations=3, size=64, **SMALL)
    inputs = RunInputs.make(content[None], style[None])
    checkpoint = interrupted_at(inputs, config, weights, 4)
    with pytest.raises(ConfigError, match=r"at scale 2, which this run's 1 scale"):
        stylize(inputs, config.replace(scales=1), weights=weights, resume=checkpoint)


# --- the CLI: --checkpoint-every and --resume ---


def crash_at(monkeypatch: pytest.MonkeyPatch, iteration: int) -> None:
    """Make the CLI's progress callback raise Ctrl-C at ``iteration``."""
    real = Progress.__call__

    def call(self: Progress, step: Iterate) -> None:
        if step.iteration == iteration:
            raise KeyboardInterrupt
        real(self, step)

    monkeypatch.setattr(Progress, "__call__", call)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_the_cli_resumes_a_crashed_run_to_the_same_picture(
    tmp_path: Path, image_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = [*map(str, image_pair)]
    whole = tmp_path / "whole.png"
    assert cli.main(["stylize", *inputs, "-o", str(whole), *FAST]) == 0
    out = tmp_path / "out.png"
    saved = checkpoint_path(out)
    with monkeypatch.context() as patch:
        crash_at(patch, 5)  # in the second scale; the checkpoint of iteration 4 stays
        argv = ["stylize", *inputs, "-o", str(out), *FAST, "--checkpoint-every", "2"]
        assert cli.main(argv) == cli.EXIT_INTERRUPTED
    state = torch.load(saved, weights_only=True)
    assert (state["iteration"], state["scale"]) == (4, 2)
    # The resumed run may print more often and keeps no further checkpoints: still the same run.
    resume = ["stylize", *inputs, "-o", str(out), *FAST, "--resume", "--log-every", "1"]
    assert cli.main(resume) == 0
    assert np.array_equal(pixels(out), pixels(whole))
    assert not saved.exists()  # a finished run leaves no checkpoint


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--style-weight", "0.1"], "was made with style_weight = 0.04, not 0.1"),
        (["--scales", "1"], "was made with scales = 2, not 1"),
        ("content", "was made from another content image"),
    ],
)
def test_a_resume_with_other_inputs_or_settings_is_one_line(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: list[str] | str,
    message: str,
) -> None:
    out = tmp_path / "out.png"
    with monkeypatch.context() as patch:
        crash_at(patch, 3)
        argv = ["stylize", *map(str, image_pair), "-o", str(out), *FAST, "--checkpoint-every", "2"]
        assert cli.main(argv) == cli.EXIT_INTERRUPTED
    before = checkpoint_path(out).read_bytes()
    content, style = image_pair
    flags: list[str] = []
    if change == "content":
        Image.open(content).rotate(180).save(content)  # same name, other pixels
    else:
        flags = list(change)
    capsys.readouterr()
    code = cli.main(
        ["stylize", str(content), str(style), "-o", str(out), *FAST, "--resume", *flags]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert checkpoint_path(out).read_bytes() == before  # kept for the right command


def test_no_checkpoint_to_resume_and_an_unfinished_one_in_the_way(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    argv = ["stylize", *map(str, image_pair), "-o", str(out), *FAST]
    assert cli.main([*argv, "--resume"]) == 2
    assert "out.png.estilo-checkpoint': no such file" in capsys.readouterr().err
    checkpoint_path(out).write_bytes(b"an unfinished run")
    assert cli.main([*argv, "--checkpoint-every", "2"]) == 2
    err = capsys.readouterr().err
    assert "holds an unfinished run: resume it, or delete it" in err
    assert checkpoint_path(out).read_bytes() == b"an unfinished run" and not out.exists()


def _one_step_checkpoint(tmp_path: Path) -> tuple[Path, Path, Checkpoint]:
    """A photo, where its output's checkpoint goes, and a one-iteration checkpoint to put
    there under whatever identity a test gives it."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(photo)
    state = {"state": {}, "param_groups": []}
    checkpoint = Checkpoint(torch.zeros(1, 3, 8, 8), 1, state, [LossRecord(1, 0, 3, 1, 1, 1)])
    return photo, tmp_path / "out.png.estilo-checkpoint", checkpoint


def test_a_checkpoint_from_before_a_setting_existed_resumes_with_its_old_value(
    tmp_path: Path,
) -> None:
    # Checkpoints made before --refine-hold were painted without it (0): they resume with
    # --refine-hold 0 and are refused, naming that value, with another.
    photo, path, checkpoint = _one_step_checkpoint(tmp_path)
    then = pipeline.run_identity(resolve(refine_hold=0.0), {"content": photo})
    del then["settings"]["refine_hold"]
    pipeline.save_checkpoint(path, checkpoint, then)
    old = pipeline.run_identity(resolve(refine_hold=0.0), {"content": photo})
    assert pipeline.load_checkpoint(path, old).iteration == 1
    new = pipeline.run_identity(resolve(), {"content": photo})
    with pytest.raises(CheckpointError, match=r"was made with refine_hold = 0\.0, not 0\.5"):
        pipeline.load_checkpoint(path, new)


class _Payload:
    """Unpickling this calls open(marker, "w"): the code a crafted checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_runs_no_code(tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "out.png.estilo-checkpoint"
    torch.save({"format": "estilo-checkpoint-1", "x": _Payload(marker)}, path)
    path.with_suffix(".pickle").write_bytes(pickle.dumps(_Payload(marker)))
    for candidate in (path, path.with_suffix(".pickle")):
        with pytest.raises(CheckpointError, match="damaged or not a checkpoint"):
            pipeline.load_checkpoint(candidate, {"settings": {}, "inputs": {}})
    assert not marker.exists()


def test_resume_without_an_output_name_finds_the_unfinished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("a-b.png", "a-b-2.png", "a-b-2.png.estilo-checkpoint", "a-b-3.png"):
        Path(name).write_bytes(b"")
    assert cli.unused_name("a-b", resume=True) == Path("a-b-2.png")
    assert cli.unused_name("a-b") == Path("a-b-4.png")
    Path("a-b-4.png.estilo-checkpoint").write_bytes(b"")  # crashed before its first save
    assert cli.unused_name("a-b", resume=True) == Path("a-b-4.png")
    assert cli.unused_name("a-b") == Path("a-b-5.png")


# --- the web UI: a cancelled or cut-off run is resumed by the same request ---


def web_request(image_pair: tuple[Path, Path], workdir: Path) -> handlers.RunRequest:
    options = dict(zip(handlers.OPTIONS, handlers.preset_values("default"), strict=True))
    options.update(size=48, iterations=6, lr=0)
    content, style = map(str, image_pair)
    chosen = [options[name] for name in handlers.OPTIONS]
    return handlers.make_request(content, [style], "default", chosen, Limits(), workdir)


def test_a_web_run_stopped_midway_is_resumed_by_the_same_request(
    tmp_path: Path, image_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "CHECKPOINT_SECONDS", -1.0)  # a checkpoint every iteration
    workdir = tmp_path / "server"
    workdir.mkdir()
    first = Ticket(web_request(image_pair, workdir), "s", 1)
    real = first.report
    monkeypatch.setattr(first, "report", lambda step: real(step) or step.iteration == 3)
    handlers.run_ticket(first)
    assert first.status == "stopped" and first.iteration == 3
    (saved,) = (workdir / handlers.CHECKPOINTS).iterdir()
    # Another session sends the same uploads and options (after a restart, say).
    second = Ticket(web_request(image_pair, workdir), "t", 2)
    seen: list[int] = []
    real_second = second.report
    monkeypatch.setattr(
        second, "report", lambda step: seen.append(step.iteration) or real_second(step)
    )
    handlers.run_ticket(second)
    assert second.status == "completed" and seen == [4, 5, 6]
    assert any("continued from iteration 3" in note for note in second.notes)
    assert not saved.exists()  # a finished run keeps no checkpoint


def test_the_web_sweep_ages_out_checkpoints(tmp_path: Path) -> None:
    folder = tmp_path / handlers.CHECKPOINTS
    folder.mkdir()
    old, new = folder / "a.estilo-checkpoint", folder / "b.estilo-checkpoint"
    old.write_bytes(b"x" * 4096)
    new.write_bytes(b"y" * 4096)
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    queue = JobQueue(lambda ticket: None)
    handlers.sweep(queue, Limits(keep_minutes=30), tmp_path)
    assert not old.exists() and new.exists()
    handlers.sweep(queue, Limits(max_disk_mb=0.001), tmp_path)  # over budget: oldest first
    assert not new.exists()
    queue.close()


def test_a_checkpoint_resumes_only_in_the_arithmetic_it_was_painted_in(tmp_path: Path) -> None:
    # --precision auto is float32 on one machine and bfloat16 on another: the identity holds
    # what it resolved to, so a float32 run is not continued in bfloat16, while naming the
    # same arithmetic another way resumes, and a checkpoint from before it was recorded too.
    photo, path, checkpoint = _one_step_checkpoint(tmp_path)
    made = pipeline.run_identity(resolve(precision="float32", device="cpu"), {"content": photo})
    assert made["settings"]["arithmetic"] == "float32"
    pipeline.save_checkpoint(path, checkpoint, made)
    bf16 = pipeline.run_identity(resolve(precision="bfloat16", device="cpu"), {"content": photo})
    with pytest.raises(CheckpointError, match="was made with arithmetic = float32, not bfloat16"):
        pipeline.load_checkpoint(path, bf16)
    auto = pipeline.run_identity(resolve(precision="auto", device="cpu"), {"content": photo})
    if pipeline.compute_dtype("auto", torch.device("cpu")) is None:  # a CPU without bfloat16
        assert pipeline.load_checkpoint(path, auto).iteration == 1
    else:
        with pytest.raises(CheckpointError, match="arithmetic = float32, not bfloat16"):
            pipeline.load_checkpoint(path, auto)
    del made["settings"]["arithmetic"]
    pipeline.save_checkpoint(path, checkpoint, made)
    assert pipeline.load_checkpoint(path, bf16).iteration == 1
