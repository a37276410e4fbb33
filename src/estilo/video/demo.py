"""The demo clip: a slow pan and zoom over the bundled Tübingen photo, made on the spot.

Nothing to download and nothing large in the package: the clip is cut from the photo that
``estilo demo`` already uses, as a camera would film it (a pan from left to right while
zooming in), so the flow has real parallax-free motion to follow and the edges of the frame
bring in new picture each frame.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..image.io import load_image
from ..image.samples import DEMO_CONTENT
from .io import rgb24

#: The clip: 24 frames at 12 per second (2 s), 16:9 frames cut from the 4:3 photo.
DEMO_FRAMES, DEMO_FPS, DEMO_SIZE = 24, 12, (180, 320)
#: What ``estilo video --demo`` changes from the default settings so that it finishes in
#: about a minute on a 2-core CPU (any flag given overrides them).
DEMO_SETTINGS = {"size": 128, "iterations": 40}


def demo_frames(count: int = DEMO_FRAMES, size: tuple[int, int] = DEMO_SIZE) -> list[torch.Tensor]:
    """(3, H, W) frames of the pan and zoom: a window of the photo whose width shrinks from
    80% to 70% of the photo's (a slow zoom in) while it slides from the left edge towards the
    right, sampled bilinearly."""
    photo = load_image(DEMO_CONTENT).rgb[None]
    height, width = size
    frames = []
    for index in range(count):
        progress = index / max(count - 1, 1)
        span = 0.8 - 0.1 * progress  # window width over the photo's, in [-1, 1] units x 2
        aspect = (height / width) * (photo.shape[-1] / photo.shape[-2])
        centre_x = -1 + span + (2 - 2 * span) * progress * 0.8
        ys = torch.linspace(-span * aspect, span * aspect, height)
        xs = torch.linspace(centre_x - span, centre_x + span, width)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
        frames.append(F.grid_sample(photo, grid, mode="bilinear", align_corners=True)[0])
    return frames


def write_demo_clip(
    path: Path, count: int = DEMO_FRAMES, size: tuple[int, int] = DEMO_SIZE
) -> Path:
    """Write the demo clip to ``path`` (.mov) as PNG frames: lossless, and the same bytes every
    time (H.264 was not, run to run), which a job's fingerprint needs to resume the demo."""
    import av

    with av.open(str(path), "w", format="mov") as out:
        video = out.add_stream("png", rate=DEMO_FPS)
        video.height, video.width = size
        video.pix_fmt = "rgb24"
        for index, image in enumerate(demo_frames(count, size)):
            frame = av.VideoFrame.from_ndarray(rgb24(image), format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path
