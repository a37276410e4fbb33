"""Fast mode: training lowers the loss, model files round-trip and are checked, apply keeps the
picture's size, the ONNX export agrees with torch, and the CLI's bad inputs are one line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import estilo
from estilo import cli
from estilo.core import device
from estilo.core.config import TRAIN_FIELDS, TRAINING_DEFAULTS
from estilo.core.transformer import TransformerNet, paint_tiled
from estilo.fast import Trained
from estilo.fast.model import BUNDLED, MODEL_FORMAT, ModelError, read_state, source_hash
from estilo.image.io import to_pil
from estilo.image.samples import DEMO_STYLE

from .conftest import synthetic_content, synthetic_style

#: Tiny settings: a few seconds of training on two cores.
TINY = {"steps": 6, "crop": 32, "batch_size": 2, "width": 4, "train_lr": 1e-2}


def tiny_flags(**changes: object) -> list[str]:
    options = {**TINY, "checkpoint_every": 3, **changes}
    return [part for k, v in options.items() for part in (f"--{k.replace('_', '-')}", str(v))]


def make_photos(folder: Path) -> Path:
    """Three small photos, one in a subfolder, and a file that is no picture."""
    (folder / "trip").mkdir(parents=True)
    to_pil(synthetic_content(48, 64)).save(folder / "a.png")
    to_pil(synthetic_content(40, 40).flip(-1)).save(folder / "b.jpg", quality=95)
    to_pil(synthetic_content(60, 45)).save(folder / "trip" / "c.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trained]:
    root = tmp_path_factory.mktemp("fast")
    photos = make_photos(root / "photos")
    style = root / "style.png"
    to_pil(synthetic_style()).save(style)
    model = root / "model.pt"
    result = estilo.train(style, photos, model, checkpoint_every=3, **TINY)
    return model, result


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_few_training_steps_lower_the_loss(trained: tuple[Path, Trained]) -> None:
    model, result = trained
    losses = [record.loss for record in result.history]
    assert result.status == "completed" and len(losses) == TINY["steps"]
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses
    assert model.is_file() and model.with_name("model.pt.ckpt").is_file()


def test_a_model_file_round_trips(trained: tuple[Path, Trained]) -> None:
    path, result = trained
    loaded = estilo.load_model(path)
    assert loaded.styles == result.model.styles and loaded.styles[0].name == "style.png"
    assert loaded.config == result.model.config and loaded.training == result.model.training
    assert loaded.steps == TINY["steps"] and loaded.version == estilo.__version__
    image = synthetic_content(40, 52)[None]
    assert torch.allclose(loaded(image), result.model(image), atol=1e-6)
    state = read_state(path)
    assert state["format"] == MODEL_FORMAT and "optimizer" not in state  # no training state


@pytest.mark.parametrize(("height", "width"), [(37, 23), (7, 10), (64, 96)])
def test_apply_keeps_the_size_and_the_alpha(
    trained: tuple[Path, Trained], height: int, width: int
) -> None:
    model, _ = trained
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = synthetic_content(height, width).mul(255).permute(1, 2, 0).byte().numpy()
    rgba[..., 3] = 200
    painted = estilo.apply(model, rgba, device="cpu")
    assert painted.size == (width, height) and painted.mode == "RGBA"
    assert np.asarray(painted)[..., 3].min() == 200


def test_bfloat16_paints_the_float32_picture_within_a_few_levels(
    trained: tuple[Path, Trained],
) -> None:
    _, result = trained
    image = synthetic_content(40, 52)[None]
    before = result.model(image, precision="float32")
    half = result.model(image, precision="bfloat16")
    after = result.model(image, precision="float32")  # a bfloat16 pass leaves the weights be
    assert half.dtype == torch.float32 and half.shape == image.shape
    assert 0 < (half - before).abs().max() < 0.05 and (half - before).abs().mean() < 0.01
    assert torch.equal(after, before)
    tiled = [result.model(image, tile=32, precision=p) for p in ("float32", "bfloat16")]
    assert 0 < (tiled[1] - tiled[0]).abs().mean() < 0.01  # tiles blend in float32 either way


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_paints_in_bfloat16_where_the_cpu_has_it(
    trained: tuple[Path, Trained], monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    # Fast mode's auto differs from the optimiser's: bfloat16 on a CPU with native bfloat16
    # (a forward pass has no gradients to amplify the rounding), float32 where it is emulated.
    _, result = trained
    monkeypatch.setattr(device, "native_cpu_bfloat16", lambda: native)
    image = synthetic_content(40, 52)[None]
    expected = result.model(image, precision="bfloat16" if native else "float32")
    assert torch.equal(result.model(image), expected)
    assert device.compute_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else None)


def test_the_network_shipped_with_estilo_paints_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = estilo.load_model("starry-night")
    assert BUNDLED["starry-night"].stat().st_size < 2 * 2**20  # the fast-mode issue's bound
    assert shipped.styles[0].sha256 == source_hash(DEMO_STYLE.read_bytes())
    photo = tmp_path / "photo.png"
    to_pil(synthetic_content(48, 64)).save(photo)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "starry-night").mkdir()  # e.g. an earlier run's output folder: not a model
    code, out, err = run_cli(capsys, "apply", "starry-night", str(photo))
    assert code == 0 and "photo-starry-night.png" in out, err
    with Image.open(tmp_path / "photo-starry-night.png") as painted:
        assert painted.size == (64, 48)
        change = np.abs(np.asarray(painted, np.float32) - np.asarray(Image.open(photo)))
    assert change.mean() > 10  # painted, not passed through


def test_tiles_cover_the_picture_and_their_blend_weights_sum_to_one() -> None:
    torch.manual_seed(0)
    net = TransformerNet(4).eval()
    image = synthetic_content(96, 80)[None]
    with torch.no_grad():
        assert torch.equal(paint_tiled(net, image, 96), net(image))  # fits: no tiles
        tiled = paint_tiled(net, image, 48)
        # Every tile of a flat picture sees the same statistics, so only a blend whose weights
        # do not sum to one (or a pixel no tile covers) could tell the tiles from the whole.
        flat = torch.full((1, 3, 96, 80), 0.3)
        flat_tiled, flat_whole = paint_tiled(net, flat, 48), net(flat)
    assert tiled.shape == image.shape and torch.isfinite(tiled).all()
    assert torch.allclose(flat_tiled, flat_whole, atol=1e-5)


def test_onnx_export_agrees_with_torch(
    trained: tuple[Path, Trained], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model, result = trained
    onnx_file = tmp_path / "model.onnx"
    code, out, err = run_cli(capsys, "export", str(model), "-o", str(onnx_file))
    assert code == 0, err
    assert str(onnx_file) in out
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    for height, width in ((48, 64), (32, 80)):  # the height and width are free
        image = synthetic_content(height, width)[None]
        (painted,) = session.run(None, {"image": image.numpy()})
        expected = result.model(image, precision="float32").numpy()
        assert painted.shape == expected.shape
        assert np.abs(painted - expected).max() < 1e-4


def test_cli_trains_resumes_and_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = make_photos(tmp_path / "photos")
    style = tmp_path / "style.png"
    to_pil(synthetic_style()).save(style)
    model = tmp_path / "m.pt"
    train = ["train", str(style), "--photos", str(photos), "-o", str(model)]
    code, out, err = run_cli(capsys, *train, *tiny_flags(steps=3))
    assert code == 0, err
    assert "skipped 1 unreadable photos" in err and "after 3 steps" in out
    # Starting afresh would lose the checkpoint; with other options it cannot resume.
    code, _, err = run_cli(capsys, *train, *tiny_flags(steps=5))
    assert code == 2 and "earlier training" in err
    code, _, err = run_cli(capsys, *train, *tiny_flags(steps=5), "--resume", "--style-weight", "1")
    # The model records training's own default style weight, not the optimiser's.
    weight = re.escape(str(TRAINING_DEFAULTS["style_weight"]))
    assert code == 2 and re.fullmatch(
        rf"estilo: error: .*style_weight = {weight}, not 1\.0\n", err
    ), err
    code, out, err = run_cli(capsys, *train, *tiny_flags(steps=5), "--resume")
    assert code == 0 and "after 5 steps" in out, err
    assert estilo.load_model(model).steps == 5

    monkeypatch.chdir(tmp_path)
    single = tmp_path / "one.jpg"
    code, _, err = run_cli(capsys, "apply", str(model), str(photos / "a.png"), "-o", str(single))
    assert code == 0, err
    assert Image.open(single).size == (64, 48)
    Image.open(single).close()
    (photos / "broken.jpg").unlink()
    for precision in ("float32", "bfloat16"):  # the second numbers its outputs, not replacing
        apply = ["apply", str(model), str(photos), "-o", "painted", "--precision", precision]
        code, out, err = run_cli(capsys, *apply)
        assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "painted").iterdir())
    assert names == ["a-m-2.png", "a-m.png", "b-m-2.png", "b-m.png"]


def test_bad_model_files_are_one_line_exit_2(
    trained: tuple[Path, Trained], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = trained
    photo = tmp_path / "photo.png"
    to_pil(synthetic_content()).save(photo)
    state = read_state(model)
    wrong_width = {**state, "training": {**state["training"], "width": 8}}
    newer = {**state, "format": MODEL_FORMAT + 1}
    bad_option = {**state, "config": {**state["config"], "style_loss": "nonsense"}}
    cases = {
        "missing.pt": None,
        "garbage.pt": b"\x00not a model at all",
        "width.pt": wrong_width,
        "newer.pt": newer,
        "option.pt": bad_option,
        "foreign.pt": {"weights": torch.zeros(2)},
        "code.pt": Path,  # a pickled class: weights_only refuses to load it
    }
    expected = {
        "missing.pt": "no such file",
        "garbage.pt": "cannot be read as a model",
        "width.pt": "do not fit a network of width 8",
        "newer.pt": f"has format {MODEL_FORMAT + 1}",
        "option.pt": "nonsense",
        "foreign.pt": "is not an estilo fast-mode model",
        "code.pt": "cannot be read as a model",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            torch.save(content, path)
        out = tmp_path / f"{name}.png"
        code, _, err = run_cli(capsys, "apply", str(path), str(photo), "-o", str(out))
        assert code == 2, name
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert expected[name] in err, err
        assert not out.exists()
    with pytest.raises(ModelError, match=r"must end in \.onnx"):
        estilo.export(model, tmp_path / "model.bin")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "has no JPEG or PNG files"),
        ("unreadable", "none of the 1 photos could be read"),
        ("missing", "does not exist or is not a folder"),
    ],
)
def test_an_empty_or_unreadable_photo_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    photos = tmp_path / "photos"
    if setup != "missing":
        photos.mkdir()
    if setup == "unreadable":
        (photos / "x.png").write_bytes(b"png? no")
    style = tmp_path / "style.png"
    to_pil(synthetic_style()).save(style)
    model = tmp_path / "m.pt"
    code, _, err = run_cli(
        capsys, "train", str(style), "--photos", str(photos), "-o", str(model), *tiny_flags()
    )
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not model.exists() and not model.with_name("m.pt.ckpt").exists()


def test_options_that_do_not_apply_to_a_network_are_refused(tmp_path: Path) -> None:
    with pytest.raises(estilo.ConfigError, match="histogram"):
        estilo.train(tmp_path / "s.png", tmp_path, tmp_path / "m.pt", preserve_colors="histogram")
    with pytest.raises(estilo.ConfigError, match="style loss nnst holds each position"):
        estilo.train(tmp_path / "s.png", tmp_path, tmp_path / "m.pt", style_loss="nnst")
    with pytest.raises(estilo.ConfigError, match="'iterations' does not apply to training"):
        estilo.train(tmp_path / "s.png", tmp_path, tmp_path / "m.pt", iterations=3)
    with pytest.raises(estilo.ConfigError, match="crop must be between"):
        estilo.train(tmp_path / "s.png", tmp_path, tmp_path / "m.pt", crop=8)


def test_readme_documents_every_training_option() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in TRAIN_FIELDS:
        assert f"`--{name.replace('_', '-')}" in readme, name


def test_the_web_pages_instant_mode_paints_with_a_saved_model(
    trained: tuple[Path, Trained], tmp_path: Path
) -> None:
    from estilo.web.handlers import list_models, paint_instant
    from estilo.web.limits import Limits

    model, _ = trained
    models = tmp_path / "models"
    models.mkdir()
    (models / "starry.pt").write_bytes(model.read_bytes())
    (models / "notes.txt").write_text("not a model")
    photo = tmp_path / "photo.png"
    to_pil(synthetic_content(60, 90)).save(photo)
    limits = Limits(max_size=45)
    # The shipped network is offered with or without a folder of the user's own.
    assert list_models(models) == ["starry-night", "starry.pt"]
    assert list_models(None) == ["starry-night"]
    painted = paint_instant(models, "starry.pt", str(photo), limits)
    assert painted.size == (45, 30)  # the server's size limit, the photo's aspect
    shipped = paint_instant(None, "starry-night", str(photo), limits)
    assert shipped.size == (45, 30) and shipped.tobytes() != painted.tobytes()
    for name in ("../model.pt", "notes.txt", ""):  # only what the menu lists is opened
        with pytest.raises(estilo.ConfigError, match="choose one of the saved models"):
            paint_instant(models, name, str(photo), limits)
    with pytest.raises(estilo.ImageError, match="upload a photo"):
        paint_instant(models, "starry.pt", None, limits)

    pytest.importorskip("gradio")
    from estilo.web import page

    for folder in (models, None):  # without --models, the shipped network alone
        blocks = page.build(page.JobQueue(page.run_ticket, 1, 1), Limits(), tmp_path, folder)
        by_id = {getattr(block, "elem_id", None): block for block in blocks.blocks.values()}
        assert {"instant-model", "instant-photo", "instant-paint", "start"} <= set(by_id)
        assert by_id["instant-model"].value == "starry-night"  # chosen until changed
        blocks.close()
    # --no-instant: the page without it.
    blocks = page.build(page.JobQueue(page.run_ticket, 1, 1), Limits(), tmp_path, None, False)
    ids = {getattr(block, "elem_id", None) for block in blocks.blocks.values()}
    assert "start" in ids and "instant-model" not in ids
    blocks.close()


def test_export_without_onnx_names_the_extra(
    trained: tuple[Path, Trained], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(estilo.EstiloError, match=r"pip install 'estilo\[onnx\]'"):
        estilo.export(trained[0], tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_a_config_made_for_the_optimiser_gets_a_notice_when_training() -> None:
    from estilo.fast.training import optimiser_balance

    notices = optimiser_balance(estilo.resolve(), {})
    assert len(notices) == len(TRAINING_DEFAULTS), notices
    assert all("training_objective()" in notice for notice in notices), notices
    # Training's own config, or the fields given on purpose: nothing to say.
    assert optimiser_balance(estilo.training_objective(), {}) == []
    assert optimiser_balance(estilo.resolve(), dict.fromkeys(TRAINING_DEFAULTS)) == []
    chosen = estilo.resolve(style_weight=0.01, style_loss="wasserstein", layout_weight=1e7)
    assert optimiser_balance(chosen, {}) == []
