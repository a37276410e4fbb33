"""The frame loop: read, follow the motion, paint, keep each frame, write the video at the end.

Every finished frame is saved at once (a PNG, written atomically) in a folder beside the output,
``OUT.mp4.frames/``, or in the output folder itself for ``-o DIR/``. A rerun of the same job
finds them and paints on from the first missing frame: it needs only the previous stylised
frame, read back from its PNG. So that a resumed job equals an uninterrupted one, every frame
continues from its 8-bit PNG, never from the floats it was painted in. The folder remembers
what made its frames (input, styles, settings) and refuses to mix in frames of another job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..core.config import StyleConfig
from ..errors import ConfigError, VideoError
from ..files import atomic_write
from ..image.io import load_image, save_image
from ..pipeline import (
    ImageSource,
    Iterate,
    check_writable,
    configured,
    read,
    resize,
    style_list,
    working_size,
)
from .flow import motion
from .io import Timing, VideoInfo, check_audio, container_format, probe, read_frames, write_video
from .painter import OptimiserPainter, Painter

#: Written into a frame folder's manifest; a folder without it holds no frames of ours.
MANIFEST, MANIFEST_FORMAT = "estilo-video.json", "estilo-video-1"


@dataclass(frozen=True)
class PaintedFrame:
    """One finished frame: ``index`` counts from 1 to ``total`` (an estimate when the video
    does not say how many frames it has); ``image`` (3, H, W) is the frame as saved (8 bits);
    ``iterations`` and ``seconds`` are 0 for a frame found on disk (``resumed``)."""

    index: int
    total: int
    image: Tensor
    iterations: int
    seconds: float
    resumed: bool


def require_video() -> None:
    """A one-line error unless the ``video`` extra (PyAV, OpenCV) is installed."""
    try:
        import av  # noqa: F401
        import cv2  # noqa: F401
    except ModuleNotFoundError as exc:
        raise VideoError(
            f"video needs PyAV and OpenCV ({exc.name} is missing): pip install 'estilo[video]'"
        ) from None


def parse_frames(text: str) -> tuple[int, int | None]:
    """``A:B`` -> the frames A (from 0) up to B, not included; either side may be left out."""
    first, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        span = (int(first) if first.strip() else 0, int(stop) if stop.strip() else None)
    except ValueError:
        raise ConfigError(
            f"--frames {text!r} is not A:B (frame numbers from 0, B left out)"
        ) from None
    if span[0] < 0 or (span[1] is not None and span[1] <= span[0]):
        raise ConfigError(f"--frames {text!r}: need 0 <= A < B")
    return span


def frames_folder(output: str | Path) -> Path:
    """Where a job keeps its finished frames: the output folder itself for PNG frames, else
    ``OUT.frames`` beside the video file."""
    path = Path(output)
    if _is_folder(output):
        return path
    return path.with_name(path.name + ".frames")


def _is_folder(output: str | Path) -> bool:
    text = str(output)
    try:
        return text.endswith(("/", os.sep)) or Path(output).is_dir()
    except OSError:  # a name too long: not a folder (and refused as a file later)
        return False


class FrameStore:
    """The finished frames of one job, ``000001.png`` ..., shown upright (the input's rotation
    applied; undone when read back, so the pixels round-trip exactly)."""

    def __init__(self, folder: Path, identity: str, rotation: int) -> None:
        self.folder, self.identity = folder, identity
        self.turns = rotation // 90 % 4 if rotation % 90 == 0 else 0

    def check(self) -> None:
        """Fail unless the folder is absent, empty, or holds this same job's frames."""
        label = repr(str(self.folder))
        if not self.folder.exists():
            check_writable(self.folder, VideoError)
            return
        if not self.folder.is_dir():
            raise VideoError(f"{label} is in the way of the frames folder; move it")
        manifest = self.folder / MANIFEST
        if manifest.is_file():
            try:
                saved = json.loads(manifest.read_text())
            except (OSError, ValueError, UnicodeDecodeError):
                saved = None
            if saved != self._manifest():
                raise VideoError(
                    f"{label} holds frames of another job (other input, styles or settings); "
                    "delete it or choose another output"
                )
        elif any(self.folder.iterdir()):
            raise VideoError(f"{label} is not empty and holds no estilo frames; refusing to use it")
        check_writable(self.folder / MANIFEST, VideoError)

    def _manifest(self) -> dict[str, str]:
        return {"format": MANIFEST_FORMAT, "job": self.identity}

    def open(self) -> int:
        """Create the folder if needed; the number of frames already finished."""
        self.folder.mkdir(exist_ok=True)
        manifest = self.folder / MANIFEST
        if not manifest.is_file():
            text = json.dumps(self._manifest()) + "\n"
            atomic_write(manifest, lambda handle: handle.write(text.encode()), error=VideoError)
        done = 0
        while self.path(done + 1).is_file():
            done += 1
        return done

    def path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.png"

    def save(self, index: int, image: Tensor) -> Tensor:
        """Keep frame ``index``; returns it as it will be read back. A quick PNG: with a
        network painting the frames, the default level's compression took as long as the
        painting (0.075 s a 640x360 frame against 0.12)."""
        save_image(torch.rot90(image, self.turns, dims=(1, 2)), self.path(index), quick=True)
        return self.load(index)

    def load(self, index: int) -> Tensor:
        return torch.rot90(load_image(self.path(index)).rgb, -self.turns, dims=(1, 2))

    def remove(self, count: int) -> None:
        """Delete the frames and the manifest, and the folder if nothing else is in it."""
        for index in range(1, count + 1):
            self.path(index).unlink(missing_ok=True)
        (self.folder / MANIFEST).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # someone put something else in it: theirs to keep
            self.folder.rmdir()


def _quantised(image: Tensor) -> Tensor:
    """The frame as an 8-bit PNG would give it back."""
    return image.clamp(0, 1).mul(255).round().div(255)


def _digest(parts: Sequence[Any]) -> str:
    """A fingerprint of everything that decides a job's frames."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as handle:
                while chunk := handle.read(2**20):
                    digest.update(chunk)
        elif isinstance(part, Tensor):
            digest.update(part.detach().float().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()


class Clock:
    """Picks the frames of ``--frames A:B`` (and ``--fps``) and gives them output timestamps
    (in the input's time base) and the span of audio that goes with them.

    Without ``fps`` the chosen frames keep their own timestamps, shifted so that a clip cut
    from the middle starts at 0. With ``fps`` the output has a frame every 1/fps seconds over
    the same span, each the latest input frame shown at that moment (dropped or repeated)."""

    def __init__(self, info: VideoInfo, first: int, stop: int | None, fps: Fraction | None) -> None:
        self.info, self.first, self.stop, self.fps = info, first, stop, fps
        self.pts: list[int] = []
        self.offset = Fraction(0)
        self.end = Fraction(0)

    def total(self) -> int:
        """How many frames the output will have, as far as the container tells."""
        count = self.info.frames or round(self.info.duration * self.info.rate)
        count = max(0, min(count, self.stop or count) - self.first)
        if self.fps is None:
            return count
        return max(1, round(count / self.info.rate * self.fps))

    def frames(self) -> Iterator[Tensor]:
        """The output's frames in order, recording their timestamps in ``pts``."""
        base = self.info.time_base
        held: tuple[Tensor, Fraction] | None = None
        moment = Fraction(0)
        for index, (frame, pts) in enumerate(read_frames(self.info)):
            if index < self.first:
                continue
            if self.stop is not None and index >= self.stop:
                break
            shown = pts * base
            if held is None:
                self.offset = shown if self.first else Fraction(0)
                moment = shown
            if self.fps is None:
                self._stamp(shown)
                yield frame
            else:
                while held is not None and moment < shown:
                    self._stamp(moment)
                    yield held[0]
                    moment += 1 / self.fps
            held = (frame, shown)
        if held is None:
            raise VideoError(f"frames from {self.first}: the video has fewer frames")
        self.end = held[1] + 1 / self.info.rate
        while self.fps is not None and moment < self.end:
            self._stamp(moment)
            yield held[0]
            moment += 1 / self.fps

    def _stamp(self, moment: Fraction) -> None:
        self.pts.append(round((moment - self.offset) / self.info.time_base))

    def timing(self) -> Timing:
        """The output's clock, once every frame has been read."""
        whole = self.stop is None
        return Timing(
            self.pts,
            self.info.time_base,
            self.fps or self.info.rate,
            float(self.offset) if self.first else -float("inf"),
            float("inf") if whole else float(self.end),
            self.offset,
        )


def stylize_video(
    video: str | Path,
    style: ImageSource | Sequence[ImageSource],
    output: str | Path | None = None,
    config: StyleConfig | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    frames: tuple[int, int | None] = (0, None),
    fps: float | None = None,
    keyframe_iterations: int | None = None,
    callback: Callable[[Iterate], bool | None] | None = None,
    notify: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Iterator[PaintedFrame]:
    """Stylize a video frame by frame, each held to the previous one (Ruder et al. 2016).

    A generator: it yields each :class:`PaintedFrame` as it is finished. With ``output`` the
    frames are kept on disk as they finish and the video is written when the last one is
    (``out.mp4``, ``.mov``, ``.m4v``, ``.mkv``: H.264 with the input's timing, rotation and
    audio), or they are the output (a folder: ``out/`` or an existing directory). Rerunning
    an interrupted job with the same arguments carries on from the first missing frame.

    Args:
        video: the input video file.
        style: one image source, or a list of them to blend.
        output: a video file, a folder for PNG frames, or None (frames only yielded).
        config: a StyleConfig (default: the ``default`` preset); ``config.iterations`` is
            each frame's after the first, ``config.temporal_weight`` the temporal loss's.
        style_weights: one weight per style (normalised to sum 1).
        frames: (A, B): the frames from A (counting from 0) up to B, not included.
        fps: output frame rate (frames dropped or repeated); default the input's.
        keyframe_iterations: the first frame's iterations (default ``config.iterations``).
        callback: gets every optimiser :class:`Iterate`; True stops that frame early.
        notify: receives one-line notices (memory fallback).
        **overrides: any StyleConfig field; ``preset="paper"`` too.

    Raises:
        VideoError: as :func:`paint_video`.
        ConfigError, ImageError: bad settings or an unreadable style image.
    """
    require_video()
    config = configured(config, overrides)
    if keyframe_iterations is not None and keyframe_iterations < 1:
        raise ConfigError("keyframe_iterations must be at least 1")
    painter = OptimiserPainter(
        [read(source, config, "style image").rgb for source in style_list(style)],
        config,
        style_weights=style_weights,
        keyframe_iterations=keyframe_iterations,
        callback=callback,
        notify=notify,
    )
    yield from paint_video(video, painter, output, config, frames=frames, fps=fps)


def paint_video(
    video: str | Path,
    painter: Painter,
    output: str | Path | None = None,
    config: StyleConfig | None = None,
    *,
    frames: tuple[int, int | None] = (0, None),
    fps: float | None = None,
) -> Iterator[PaintedFrame]:
    """The frame loop, for any :class:`Painter`: read each frame at the working size, follow
    the motion from the last one, have ``painter`` paint it, keep it, and write the video at
    the end; as :func:`stylize_video` says, which calls it with an :class:`OptimiserPainter`.

    ``config`` gives the working size (``size``, ``square``) and ``max_pixels``; what the
    painter does with the rest is its own business.

    Raises:
        VideoError: the extra is missing, the input is not a readable video, the output
            cannot be written (checked before any frame is painted), or the stream is
            damaged midway (the finished frames are kept; the message names the frame).
        ConfigError: ``frames`` or ``fps`` out of range.
    """
    require_video()
    config = config or StyleConfig()
    first, stop = frames
    if fps is not None and not 0 < fps <= 1000:
        raise ConfigError("fps must be above 0 and at most 1000")
    info = probe(Path(video), config.max_pixels)
    if info.frames and first >= info.frames:
        raise ConfigError(
            f"frames from {first}: the video has {info.frames} frames (0 to {info.frames - 1})"
        )
    height, width = working_size(info.height, info.width, config)
    file = None if output is None or _is_folder(output) else Path(output)
    store = None
    if output is not None:
        if file is not None:
            _check_output(file, info)
        job = _digest(
            [
                info.path,
                [first, stop, fps, height, width],
                type(painter).__qualname__,
                *painter.identity(),
            ]
        )
        store = FrameStore(frames_folder(output), job, info.rotation)
        store.check()
    clock = Clock(info, first, stop, None if fps is None else Fraction(str(fps)))
    total = clock.total()
    done = store.open() if store is not None else 0
    previous: tuple[Tensor, Tensor] | None = None  # the last input frame and its painting
    count = 0
    try:
        for count, frame in enumerate(clock.frames(), start=1):
            frame = resize(frame, (height, width))
            total = max(total, count)
            if count <= done and store is not None:
                image = store.load(count)
                yield PaintedFrame(count, total, image, 0, 0.0, True)
                previous = (frame, image)
                continue
            began = time.perf_counter()
            if previous is None:
                painted = painter.paint(frame, None, None)
            else:
                step = motion(previous[0], frame)
                painted = painter.paint(frame, step.warp(previous[1]), step.mask)
            image = _quantised(painted) if store is None else store.save(count, painted)
            seconds = time.perf_counter() - began
            yield PaintedFrame(count, total, image, painter.iterations, seconds, False)
            previous = (frame, image)
    except VideoError as exc:
        if store is None or count == 0:
            if store is not None and done == 0:
                store.remove(0)  # nothing was painted: leave nothing behind
            raise
        raise VideoError(
            f"{exc}; the {count} finished frames are in {str(store.folder)!r}"
        ) from None
    if file is not None and store is not None:
        write_video(
            file,
            (store.load(i) for i in range(1, count + 1)),
            (height, width),
            clock.timing(),
            info,
        )
        store.remove(count)


def _check_output(path: Path, info: VideoInfo) -> None:
    """Fail before any compute if the video file cannot be written or is the input."""
    label = repr(str(path))
    container_format(path)
    try:
        same = path.resolve() == info.path.resolve()
    except (OSError, RuntimeError):
        same = False
    if same:
        raise VideoError(f"output {label} is the input video; refusing to overwrite it")
    check_writable(path, VideoError)
    check_audio(path, info)
