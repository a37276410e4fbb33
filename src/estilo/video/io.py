"""Video in and out with PyAV (FFmpeg in its wheels): frames, timing, rotation, audio.

Reading gives the frames as (3, H, W) float tensors in [0, 1] with their timestamps, as stored
(the rotation is metadata, kept apart). Writing encodes H.264 (yuv420p, CRF 18) with the input's
timestamps, rotation and audio: the audio packets are copied, never decoded or re-encoded. The
file is written beside its name and renamed over it at the end, so it is complete or absent.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor

from ..errors import VideoError

if TYPE_CHECKING:
    from av.video.stream import VideoStream

#: Output extensions and the FFmpeg muxer for each; any other output is a folder of PNGs.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
CODEC, CODEC_OPTIONS = "libx264", {"crf": "18", "preset": "medium"}


@dataclass(frozen=True)
class VideoInfo:
    """What the frame loop and the writer need to know about an input video.

    ``frames`` is the count the container declares (0: it does not say); ``rate`` the average
    frame rate; ``time_base`` the unit of the frames' timestamps; ``start`` the first frame's
    timestamp; ``rotation`` the display rotation in degrees, counter-clockwise."""

    path: Path
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    start: int
    frames: int
    duration: float
    rotation: int
    audio: str | None  # the audio codec's name, or None


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    import av

    label = repr(str(path))
    if not path.exists():
        raise VideoError(f"video {label}: no such file")
    if not path.is_file():
        raise VideoError(f"video {label} is not a regular file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"video {label} is not a video FFmpeg can read ({_reason(exc)})") from None
    try:
        yield container
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def probe(path: Path, max_pixels: int) -> VideoInfo:
    """Open ``path`` and describe its first video stream.

    Raises:
        VideoError: missing, not a video, no video stream, no frames, or frames over
            ``max_pixels``.
    """
    label = repr(str(path))
    with _opened(path) as container:
        if not container.streams.video:
            raise VideoError(f"video {label} has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise VideoError(
                f"video {label} is {width}x{height} = {width * height:,} pixels a frame, over "
                f"the limit of {max_pixels:,} (raise it with --max-pixels)"
            )
        first = _first_frame(container, stream, label)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        time_base = stream.time_base or Fraction(1, int(rate) or 25)
        duration = (
            float(stream.duration * time_base)
            if stream.duration
            else (container.duration or 0) / 1e6
        )
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(
            path,
            width,
            height,
            Fraction(rate),
            Fraction(time_base),
            first.pts or 0,
            stream.frames,
            duration,
            int(first.rotation or 0),
            audio,
        )


def _first_frame(container: Any, stream: Any, label: str) -> Any:
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise VideoError(f"video {label} is damaged at frame 1 ({_reason(exc)})") from None
    raise VideoError(f"video {label} has no frames")


def read_frames(info: VideoInfo) -> Iterator[tuple[Tensor, int]]:
    """Every frame of the first video stream as ((3, H, W) RGB in [0, 1], timestamp).

    Raises:
        VideoError: the stream is damaged; the message names the frame (1-based).
    """
    import av

    with _opened(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = 0
        try:
            for frame in container.decode(stream):
                count += 1
                rgb = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                yield rgb.permute(2, 0, 1).float().div(255), frame.pts or 0
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"video {str(info.path)!r} is damaged at frame {count + 1} ({_reason(exc)})"
            ) from None


def container_format(path: Path) -> str:
    """The FFmpeg muxer for an output file, from its extension."""
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        raise VideoError(
            f"output {str(path)!r}: unknown video extension {suffix or '(none)'!r}; use one of "
            f"{', '.join(CONTAINERS)}, or a folder (a name ending in '/') for PNG frames"
        )
    return CONTAINERS[suffix]


def check_audio(path: Path, info: VideoInfo) -> None:
    """Fail before any compute if the output's container cannot hold the input's audio as it
    is (it is copied, not re-encoded): write the header of such a file into memory."""
    if info.audio is None:
        return
    import av

    with _opened(info.path) as source:
        try:
            with av.open(io.BytesIO(), "w", format=container_format(path)) as trial:
                trial.add_stream_from_template(source.streams.audio[0])
                trial.start_encoding()
        except av.error.FFmpegError:
            raise VideoError(
                f"output {str(path)!r}: its container cannot hold the input's {info.audio} "
                "audio unchanged; try .mkv"
            ) from None


@dataclass(frozen=True)
class Timing:
    """The output's clock: frame timestamps in ``time_base`` units, frames per second, the
    input's time span (seconds) whose audio goes with them, and how far (seconds) the output's
    clock is behind the input's (a clip cut from the middle starts at 0)."""

    pts: list[int]
    time_base: Fraction
    rate: Fraction
    audio_from: float
    audio_to: float
    offset: Fraction


def write_video(
    path: Path, frames: Iterable[Tensor], size: tuple[int, int], timing: Timing, info: VideoInfo
) -> None:
    """Encode ``frames`` ((3, H, W) in [0, 1], ``size`` (H, W), one per ``timing.pts``) as
    H.264 into ``path`` with the input's rotation and audio, atomically.

    Raises:
        VideoError: the file cannot be written.
    """
    import av

    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise VideoError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with av.open(tmp, "w", format=container_format(path)) as out:
            video = cast(
                "VideoStream",
                out.add_stream(CODEC, rate=timing.rate, options=dict(CODEC_OPTIONS)),
            )
            # yuv420p halves the chroma planes: H.264 wants even sides, so an odd side loses
            # its last row or column here (the kept PNG frames stay whole).
            height, width = size[0] - size[0] % 2, size[1] - size[1] % 2
            video.height, video.width = height, width
            video.pix_fmt = "yuv420p"
            video.codec_context.time_base = timing.time_base
            if info.rotation:
                video.set_display_rotation(info.rotation)
            with _opened(info.path) as source:
                audio = (
                    out.add_stream_from_template(source.streams.audio[0]) if info.audio else None
                )
                last = round(1 / timing.rate / timing.time_base)  # the last frame's duration
                ends = [*timing.pts[1:], timing.pts[-1] + last]
                for image, pts, end in zip(frames, timing.pts, ends, strict=True):
                    pixels = rgb24(image[:, :height, :width])
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    frame.pts, frame.duration, frame.time_base = pts, end - pts, timing.time_base
                    out.mux(video.encode(frame))
                out.mux(video.encode(None))
                if audio is not None:
                    _copy_audio(source, audio, out, timing)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, (OSError, av.error.FFmpegError)):
            raise VideoError(f"cannot write {str(path)!r}: {_reason(exc)}") from None
        raise


def _copy_audio(source: Any, audio: Any, out: Any, timing: Timing) -> None:
    """Remux the audio packets that fall in the frames' span, shifted to start with them."""
    stream = source.streams.audio[0]
    shift = round(timing.offset / stream.time_base)
    for packet in source.demux(stream):
        if packet.pts is None:  # the demuxer's final empty packet
            continue
        seconds = float(packet.pts * stream.time_base)
        if not timing.audio_from <= seconds < timing.audio_to:
            continue
        packet.pts -= shift
        packet.dts = None if packet.dts is None else packet.dts - shift
        packet.stream = audio
        out.mux(packet)


def rgb24(image: Tensor) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8, what PyAV encodes."""
    return image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()
