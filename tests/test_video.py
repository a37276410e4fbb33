"""``estilo video``: timing, rotation and audio kept, temporal consistency, resume, bad input.

Every clip is made here: a bright disc moving across the bundled photo, 64x48, six frames at
12 per second, with a sine tone as AAC audio. Runs use a handful of iterations per frame.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from estilo import StyleConfig, cli, resolve
from estilo.core import network
from estilo.core.config import TrainConfig
from estilo.core.transformer import TransformerNet
from estilo.errors import VideoError
from estilo.fast.model import FastModel, StyleSource, save_model
from estilo.image.io import load_image, save_image
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import PixelTerm, resize
from estilo.video import OptimiserPainter, paint_video, stylize_video
from estilo.video.flow import warping_error
from estilo.video.io import probe, read_frames

from .conftest import synthetic_style

av = pytest.importorskip("av")
pytest.importorskip("cv2")

FRAMES, FPS, SIZE = 6, 12, (48, 64)
FAST = ["--size", "64", "--iterations", "2", "--keyframe-iterations", "2", "-q"]


def clip_frames(count: int = FRAMES) -> list[torch.Tensor]:
    """A disc moving 4 px a frame to the right, and the photo panning 1 px a frame."""
    photo = resize(load_image(DEMO_CONTENT).rgb, (SIZE[0], SIZE[1] + count))
    y = torch.arange(SIZE[0]).view(-1, 1).float()
    x = torch.arange(SIZE[1]).view(1, -1).float()
    frames = []
    for index in range(count):
        frame = photo[:, :, index : index + SIZE[1]].clone()
        disc = ((x - 12 - 4 * index) ** 2 + (y - 24) ** 2) < 64
        frame[:, disc] = torch.tensor([1.0, 0.9, 0.2]).view(3, 1)
        frames.append(frame)
    return frames


def make_clip(path: Path, *, audio: bool = True, rotation: int = 0, count: int = FRAMES) -> Path:
    """The test clip as H.264 (and AAC) in ``path``."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.height, video.width = SIZE
        video.pix_fmt = "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        tone = out.add_stream("aac", rate=16000) if audio else None
        for index, image in enumerate(clip_frames(count)):
            pixels = image.mul(255).round().byte().permute(1, 2, 0).numpy()
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if tone is not None:
            seconds = torch.arange(16000 * count // FPS) / 16000
            wave = (0.3 * torch.sin(2 * torch.pi * 440 * seconds)).numpy()[None]
            sound = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 16000, 0
            out.mux(tone.encode(sound))
            out.mux(tone.encode(None))
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "clip.mp4")


@pytest.fixture
def style_file(tmp_path: Path) -> Path:
    return save_image(synthetic_style(), tmp_path / "style.png")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["video", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def describe(path: Path) -> dict[str, object]:
    """Frame count, rate, duration, rotation and the audio packets' bytes of a video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        info: dict[str, object] = {
            "frames": len(frames),
            "rate": stream.average_rate,
            "duration": float(stream.duration * stream.time_base),
            "rotation": frames[0].rotation,
            "size": (frames[0].height, frames[0].width),
        }
    with av.open(str(path)) as container:
        audio = container.streams.audio
        info["audio"] = [bytes(p) for p in container.demux(audio[0]) if p.size] if audio else None
    return info


def test_the_output_keeps_frames_rate_duration_rotation_and_audio(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_clip(tmp_path / "phone.mp4", rotation=90)
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(capsys, str(source), str(style_file), "-o", str(out), *FAST)
    assert code == 0, err
    given, made = describe(source), describe(out)
    assert made["frames"] == given["frames"] == FRAMES
    assert made["rate"] == given["rate"] == FPS
    assert made["duration"] == pytest.approx(given["duration"], abs=1e-3)
    assert made["rotation"] == given["rotation"] == 90
    assert made["size"] == given["size"]
    assert made["audio"] and made["audio"] == given["audio"]  # copied packet for packet
    assert not (tmp_path / "out.mp4.frames").exists()  # the kept frames go once it is written


@pytest.mark.parametrize(
    ("flags", "frames", "rate"), [(["--frames", "2:5"], 3, FPS), (["--fps", "6"], 3, 6)]
)
def test_frames_and_fps_choose_the_frames_and_keep_the_clock(
    clip: Path,
    style_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    frames: int,
    rate: int,
) -> None:
    out = tmp_path / "cut.mp4"
    code, _, err = run_cli(capsys, str(clip), str(style_file), "-o", str(out), *FAST, *flags)
    assert code == 0, err
    made = describe(out)
    assert made["frames"] == frames
    assert made["rate"] == rate
    assert made["duration"] == pytest.approx(frames / rate, abs=1e-3)
    assert made["audio"]


def test_png_frames_out_are_upright(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_clip(tmp_path / "phone.mp4", rotation=90, audio=False)
    code, out, err = run_cli(
        capsys,
        str(source),
        str(style_file),
        "-o",
        f"{tmp_path}/pngs/",
        *FAST[:-1],
        "--frames",
        ":2",
    )
    assert code == 0, err
    assert out.count("frame ") == 2
    pngs = sorted((tmp_path / "pngs").glob("*.png"))
    assert [p.name for p in pngs] == ["000001.png", "000002.png"]
    assert tuple(load_image(pngs[0]).rgb.shape[-2:]) == (SIZE[1], SIZE[0])  # turned by 90°


def test_the_temporal_loss_lowers_the_warping_error(clip: Path) -> None:
    inputs = [resize(frame, SIZE) for frame, _ in read_frames(probe(clip, 10**6))][:4]
    errors = {}
    for weight in (0.0, StyleConfig().temporal_weight):
        painted = stylize_video(
            clip,
            DEMO_STYLE,  # a painting: the stripes of synthetic_style are far from converged here
            size=64,
            iterations=10,
            tolerance=0,
            log_every=0,
            temporal_weight=weight,
            frames=(0, 4),
        )
        errors[weight] = warping_error([frame.image for frame in painted], inputs)
    assert errors[StyleConfig().temporal_weight] < 0.5 * errors[0.0], errors


def test_a_rerun_after_an_interrupt_equals_an_uninterrupted_run(
    style_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", count=4, audio=False)
    args = [str(clip), str(style_file), *FAST]
    code, _, err = run_cli(capsys, *args, "-o", f"{tmp_path}/whole/")
    assert code == 0, err
    paint = OptimiserPainter.paint
    painted: list[int] = []

    def interrupted(self: OptimiserPainter, *rest: object) -> torch.Tensor:
        if len(painted) == 2:
            raise KeyboardInterrupt
        painted.append(1)
        return paint(self, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(OptimiserPainter, "paint", interrupted)
    code, _, err = run_cli(capsys, *args, "-o", f"{tmp_path}/parts/")
    assert code == 130
    assert "the 2 finished frames are kept" in err and "run the same command again" in err
    assert len(list((tmp_path / "parts").glob("*.png"))) == 2
    monkeypatch.setattr(OptimiserPainter, "paint", paint)
    code, out, err = run_cli(capsys, *args[:-1], "-o", f"{tmp_path}/parts/")
    assert code == 0, err
    assert out.count("kept from an earlier run") == 2
    for index in range(1, 5):
        name = f"{index:06d}.png"
        whole, parts = (load_image(tmp_path / d / name).rgb for d in ("whole", "parts"))
        assert torch.equal(whole, parts), name


def test_frames_of_another_job_are_not_mixed_in(
    clip: Path, style_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, one = f"{tmp_path}/frames/", ["--frames", ":1"]
    assert run_cli(capsys, str(clip), str(style_file), "-o", out, *FAST, *one)[0] == 0
    code, _, err = run_cli(
        capsys, str(clip), str(style_file), "-o", out, *FAST, *one, "--seed", "1"
    )
    assert code == 2
    assert "holds frames of another job" in err
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, str(clip), str(style_file), "-o", f"{theirs}/", *FAST)
    assert code == 2 and "holds no estilo frames" in err
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        tone = out.add_stream("aac", rate=16000)
        sound = av.AudioFrame.from_ndarray(
            torch.zeros(1, 1024).numpy(), format="fltp", layout="mono"
        )
        sound.sample_rate, sound.pts = 16000, 0
        out.mux(tone.encode(sound))
        out.mux(tone.encode(None))
    return path


def no_frames(path: Path) -> Path:
    """A video stream that has no packets (only the audio's are copied)."""
    source = make_clip(path.with_name("source.mp4"))
    with av.open(str(source)) as given, av.open(str(path), "w", format="matroska") as out:
        out.add_stream_from_template(given.streams.video[0])
        audio = out.add_stream_from_template(given.streams.audio[0])
        for packet in given.demux(given.streams.audio[0]):
            if packet.size:
                packet.stream = audio
                out.mux(packet)
    source.unlink()
    return path


def damaged(path: Path) -> Path:
    """The clip with its fourth video packet overwritten by garbage."""
    make_clip(path, audio=False)
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    position, size = packets[3]
    data[position : position + size] = bytes(range(7, 7 + size)) if size < 249 else b"\x07" * size
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        (lambda p: p.write_text("not a video") and p, [], "is not a video FFmpeg can read"),
        (audio_only, [], "has no video stream"),
        (no_frames, [], "has no frames"),
        (lambda p: make_clip(p), ["--max-pixels", "1000"], "over the limit of 1,000"),
        (lambda p: make_clip(p), ["-o", "missing/out.mp4"], "does not exist"),
        (lambda p: make_clip(p), ["-o", "out.gif"], "unknown video extension '.gif'"),
        (lambda p: make_clip(p), ["-o", "x" * 300 + ".mp4"], "cannot write"),  # even for root
        (lambda p: make_clip(p), ["-o", "clip.mp4"], "is the input video"),
        (lambda p: make_clip(p), ["--frames", "4:2"], "need 0 <= A < B"),
        (lambda p: make_clip(p), ["--frames", "6:"], "the video has 6 frames"),
        (lambda p: make_clip(p), ["--fps", "0"], "fps must be above 0"),
        (lambda p: make_clip(p), ["--dpi", "300"], "--dpi applies to still pictures"),
        (lambda p: make_clip(p), ["--save-every", "5"], "--save-every applies to still pictures"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path,
    style_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[Path], Path],
    flags: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    source = make(tmp_path / "clip.mp4")
    before = sorted(tmp_path.iterdir())
    output = [] if "-o" in flags else ["-o", "out.mp4"]
    code, _, err = run_cli(capsys, str(source), str(style_file), *output, *FAST, *flags)
    assert code == 2
    assert err.startswith("estilo: error:") and err.count("\n") == 1, err
    assert message in err
    assert sorted(tmp_path.iterdir()) == before


def test_a_stream_damaged_midway_keeps_the_finished_frames_and_names_the_frame(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = damaged(tmp_path / "clip.mp4")
    code, _, err = run_cli(
        capsys, str(source), str(style_file), "-o", str(tmp_path / "out.mp4"), *FAST
    )
    assert code == 2 and err.count("\n") == 1
    kept = len(list((tmp_path / "out.mp4.frames").glob("*.png")))
    assert 0 < kept < FRAMES  # decoding reorders frames: the damage shows at or before the 4th
    assert f"is damaged at frame {kept + 1}" in err
    assert f"the {kept} finished frames are in" in err
    assert not (tmp_path / "out.mp4").exists()


def test_without_the_extra_one_line_names_it(
    clip: Path,
    style_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    code, _, err = run_cli(capsys, str(clip), str(style_file), "-o", str(tmp_path / "o.mp4"))
    assert code == 2
    assert "pip install 'estilo[video]'" in err and err.count("\n") == 1


def test_the_demo_pans_over_the_bundled_photo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo.mp4"
    flags = ["--frames", "0:3", "--size", "48", *FAST[2:6]]  # 2 iterations a frame
    code, stdout, err = run_cli(capsys, "--demo", "-o", str(out), *flags)
    assert code == 0, err
    assert "frame 3/3" in stdout
    made = describe(out)
    assert made["frames"] == 3 and made["rate"] == 12 and made["audio"] is None


def test_the_pixel_term_counts_only_where_the_mask_is() -> None:
    target = torch.rand(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    term = PixelTerm(target, mask, 2.0)
    image = target.clone()
    assert float(term(image)) == 0
    image[..., 4:] += 0.5  # where the mask is 0
    assert float(term(image)) == 0
    image[..., :4] += 0.5
    assert float(term(image)) == pytest.approx(2.0 * 0.25 * 0.5)  # half the pixels differ
    half = term.scaled((4, 4))
    assert half.target.shape[-2:] == (4, 4) and float(half.mask.mean()) == 0.5


def test_the_network_is_built_once_a_video(
    clip: Path, style_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real = network.build_network

    def counted(*args: Any, **kwargs: Any) -> network.Network:
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(network, "build_network", counted)
    painted = list(
        stylize_video(clip, style_file, size=48, iterations=2, frames=(0, 3), log_every=0)
    )
    assert len(painted) == 3 and [f.iterations for f in painted] == [2, 2, 2]
    assert len(built) == 1  # the first frame's 2 keyframe iterations and later frames' share it


class Negative:
    """A painter with no optimiser, as a feed-forward network would be: the input's negative.
    It records what the loop hands it."""

    iterations = 0

    def __init__(self, name: str = "negative") -> None:
        self.name = name
        self.given: list[tuple[bool, bool]] = []

    def identity(self) -> list[Any]:
        return [self.name]

    def paint(
        self, frame: torch.Tensor, previous: torch.Tensor | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        self.given.append((previous is not None, mask is not None))
        if previous is not None and mask is not None:
            assert previous.shape == frame.shape and mask.shape == (1, *frame.shape[-2:])
        return 1 - frame


def test_any_painter_goes_through_the_same_loop_resume_and_writer(
    clip: Path, tmp_path: Path
) -> None:
    inputs = [resize(frame, SIZE) for frame, _ in read_frames(probe(clip, 10**6))]
    folder = tmp_path / "negative"
    painter = Negative()
    config = resolve(size=64)
    done = list(paint_video(clip, painter, f"{folder}/", config, frames=(0, 3)))
    assert painter.given == [(False, False), (True, True), (True, True)]
    assert [f.iterations for f in done] == [0, 0, 0]
    for frame, given in zip(done, inputs, strict=False):
        assert torch.allclose(frame.image, 1 - given, atol=1 / 255)
    again = Negative()
    resumed = list(paint_video(clip, again, f"{folder}/", config, frames=(0, 3)))
    assert all(f.resumed for f in resumed) and again.given == []
    with pytest.raises(VideoError, match="holds frames of another job"):
        list(paint_video(clip, Negative("another"), f"{folder}/", config, frames=(0, 3)))
    out = tmp_path / "negative.mp4"
    list(paint_video(clip, Negative(), out, config))
    assert describe(out)["frames"] == FRAMES and not (tmp_path / "negative.mp4.frames").exists()


def test_a_trained_network_paints_a_video_and_its_blend_lowers_the_warping_error(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    net = TransformerNet(8)
    source = StyleSource("stripes", "0" * 64, 1.0)
    model = tmp_path / "net.pt"
    save_model(FastModel(net, (source,), StyleConfig(), TrainConfig(width=8), 0), model)
    inputs = [resize(frame, SIZE) for frame, _ in read_frames(probe(clip, 10**6))]
    errors = {}
    for weight in ("0", "1"):  # --temporal-weight 0: no blending along the flow
        out = tmp_path / f"out{weight}"
        code, _, err = run_cli(
            capsys, str(clip), "--model", str(model), "-o", f"{out}/", "--size", "64", "-q",
            "--temporal-weight", weight,
        )  # fmt: skip
        assert code == 0, err
        frames = [load_image(path).rgb for path in sorted(out.glob("*.png"))]
        assert len(frames) == len(inputs)
        errors[weight] = warping_error(frames, inputs)
    assert errors["1"] < 0.75 * errors["0"], errors
    code, _, err = run_cli(capsys, str(clip), "style.png", "--model", str(model), "-o", "x/")
    assert code == 2 and "with --model give the video alone" in err
