"""Video, ``estilo video`` (extra ``estilo[video]``: PyAV and OpenCV).

Each frame is painted from the previous one warped by the optical flow of the input frames and
held to it where the flow can be followed (Ruder et al. 2016), so the style does not flicker.
PyAV and OpenCV are imported only when a video is read or a flow computed; without them
:func:`stylize_video` stops with a one-line error naming the extra. :func:`paint_video` is the
same frame loop for any :class:`Painter`.
"""

from .painter import OptimiserPainter, Painter
from .run import (
    PaintedFrame,
    frames_folder,
    paint_video,
    parse_frames,
    require_video,
    stylize_video,
)

__all__ = [
    "OptimiserPainter",
    "PaintedFrame",
    "Painter",
    "frames_folder",
    "paint_video",
    "parse_frames",
    "require_video",
    "stylize_video",
]
