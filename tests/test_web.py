"""The web UI without a browser: the run queue, the request checks, the runner and the views.

The browser itself is exercised by test_browser.py; these need neither Gradio nor Chromium.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from estilo import cli
from estilo.core.config import resolve
from estilo.core.records import Iterate
from estilo.errors import ConfigError, EstiloError, ImageError
from estilo.image.io import to_pil
from estilo.pipeline import supersampled
from estilo.web.handlers import (
    OPTIONS,
    loss_curve,
    make_request,
    preset_values,
    run_ticket,
    start,
    status_text,
)
from estilo.web.jobs import Busy, JobQueue, Snapshot, Ticket
from estilo.web.limits import Limits

from .conftest import default_sigint, synthetic_content, synthetic_style


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        event.wait(0.02)
    return bool(condition())


class Gate:
    """A fake runner: each run holds until released, and records the order of runs."""

    def __init__(self) -> None:
        self.ran: list[Any] = []
        self.release = threading.Event()

    def __call__(self, ticket: Ticket) -> None:
        self.ran.append(ticket.payload)
        while not self.release.wait(0.01):
            if ticket.cancelled.is_set():
                ticket.status = "stopped"
                return


@pytest.fixture
def gate() -> Iterator[Gate]:
    yield (runner := Gate())
    runner.release.set()


def test_queue_runs_one_at_a_time_in_order_and_reports_places(gate: Gate) -> None:
    queue = JobQueue(gate, max_waiting=3)
    first, second, third = (queue.submit(name, f"s{name}") for name in "abc")
    assert wait_until(lambda: gate.ran == ["a"])
    assert [queue.position(t) for t in (first, second, third)] == [0, 1, 2]
    assert queue.snapshot(third).state == "waiting" and not queue.idle
    gate.release.set()
    assert all(t.finished.wait(5) for t in (first, second, third))
    assert gate.ran == ["a", "b", "c"] and queue.idle
    assert [t.status for t in (first, second, third)] == ["completed"] * 3
    queue.close()


def test_a_full_line_is_told_busy(gate: Gate) -> None:
    queue = JobQueue(gate, max_waiting=1)
    queue.submit("running", "a")
    assert wait_until(lambda: gate.ran == ["running"])
    queue.submit("waiting", "b")
    with pytest.raises(Busy, match="1 runs are already waiting"):
        queue.submit("refused", "c")
    queue.close()
    assert "refused" not in gate.ran


def test_cancelling_a_session_stops_its_run_and_takes_its_waiting_runs_out(gate: Gate) -> None:
    queue = JobQueue(gate, max_waiting=3)
    running = queue.submit("a", "left")
    assert wait_until(lambda: gate.ran == ["a"])
    waiting = queue.submit("b", "left")
    other = queue.submit("c", "stays")
    assert queue.cancel_session("left") == 2
    assert running.finished.wait(5) and waiting.finished.wait(5)
    assert running.status == "stopped" and waiting.status == "stopped"
    assert wait_until(lambda: gate.ran == ["a", "c"])  # b never ran; c moved up
    assert queue.position(other) == 0 and not other.cancelled.is_set()
    queue.close()


def test_a_failing_run_is_reported_and_the_queue_carries_on() -> None:
    def runner(ticket: Ticket) -> None:
        if ticket.payload == "bad":
            raise RuntimeError("boom")

    queue = JobQueue(runner)
    bad, good = queue.submit("bad", "a"), queue.submit("good", "b")
    assert bad.finished.wait(5) and good.finished.wait(5)
    # The exception's text stays in the server's log: it can name server paths.
    assert bad.status == "failed" and bad.error == "the run failed (the server's log has details)"
    assert good.status == "completed" and good.error is None
    assert "boom" not in status_text(queue.snapshot(bad))
    queue.close()


def test_ticket_report_asks_to_stop_once_cancelled() -> None:
    ticket = Ticket(None, "s", 1)
    step = Iterate(3, 1.5, 2.0, 1.0, 1.0, 0.0, total=10, image=torch.zeros(1, 3, 4, 4))
    ticket.started = 1.0
    assert ticket.report(step) is False
    assert ticket.iteration == 3 and ticket.total == 10 and ticket.losses == [(3, 2.0)]
    assert ticket.image is not None and ticket.image.shape == (1, 3, 4, 4)
    ticket.cancel()
    assert ticket.report(step) is True


@pytest.fixture
def uploads(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.png" for name in ("content", "style", "broken", "big")}
    to_pil(synthetic_content()).save(paths["content"])
    to_pil(synthetic_style()).save(paths["style"])
    paths["broken"].write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    to_pil(torch.rand(3, 300, 400)).save(paths["big"])  # 120,000 pixels
    return paths


def values(**changes: Any) -> list[Any]:
    defaults = dict(zip(OPTIONS, preset_values("default"), strict=True))
    defaults.update(size=64, iterations=3, lr=0)
    defaults.update(changes)
    return [defaults[name] for name in OPTIONS]


def test_options_on_the_page_are_config_fields_with_preset_values() -> None:
    paper = dict(zip(OPTIONS, preset_values("paper"), strict=True))
    assert paper["size"] == 1024 and paper["optimizer"] == "adam" and paper["lr"] == 0.01
    assert set(OPTIONS) <= set(resolve().to_dict())


def test_a_good_request_gets_the_servers_pixel_limit_and_default_lr(
    uploads: dict[str, Path], tmp_path: Path
) -> None:
    limits = Limits(max_pixels=200_000)
    request = make_request(
        str(uploads["content"]), [str(uploads["style"])], "default", values(), limits, tmp_path
    )
    assert request.config.max_pixels == 200_000 and request.config.lr is None
    assert request.config.size == 64 and request.folder.parent == tmp_path
    assert request.styles == (uploads["style"],)


@pytest.mark.parametrize(
    ("size", "limit", "painted"), [(300, 384, 300), (256, 256, 256), (300, 512, 512)]
)
def test_a_server_limited_under_twice_min_scale_does_not_supersample_past_it(
    uploads: dict[str, Path], tmp_path: Path, size: int, limit: int, painted: int
) -> None:
    request = make_request(
        str(uploads["content"]),
        [str(uploads["style"])],
        "default",
        values(size=size),
        Limits(max_size=limit),
        tmp_path,
    )
    assert request.config.size == size and supersampled(request.config).size == painted


@pytest.mark.parametrize(
    ("which", "change", "limits", "error", "message"),
    [
        ("nothing", {}, Limits(), ImageError, "upload a content image"),
        ("no-style", {}, Limits(), ImageError, "upload at least one style image"),
        ("broken", {}, Limits(), ImageError, "content image"),
        ("big", {}, Limits(max_pixels=100_000), ImageError, "pixels"),
        ("big", {}, Limits(max_upload_mb=0.001), ImageError, "larger than 0.001 MB"),
        ("content", {"size": 2048}, Limits(max_size=1024), ConfigError, "limited to 1024 px"),
        ("content", {"iterations": 5000}, Limits(), ConfigError, "limited to 2000"),
        ("content", {"iterations": 0}, Limits(), ConfigError, "iterations must be between"),
        ("content", {"style_weight": -1}, Limits(), ConfigError, "style_weight"),
        ("content", {"seed": None}, Limits(), ConfigError, "seed is empty"),
    ],
)
def test_bad_requests_are_refused_with_a_message(
    uploads: dict[str, Path],
    tmp_path: Path,
    which: str,
    change: dict[str, Any],
    limits: Limits,
    error: type[EstiloError],
    message: str,
) -> None:
    content = None if which == "nothing" else str(uploads.get(which, uploads["content"]))
    styles = None if which == "no-style" else [str(uploads["style"])]
    with pytest.raises(error, match=message):
        make_request(content, styles, "default", values(**change), limits, tmp_path)
    assert not list(tmp_path.glob("run-*"))  # nothing was created for a refused request


def test_a_real_run_saves_the_image_and_a_config_the_cli_reads(
    uploads: dict[str, Path], tmp_path: Path
) -> None:
    request = make_request(
        str(uploads["content"]), [str(uploads["style"])], "default", values(), Limits(), tmp_path
    )
    queue = JobQueue(run_ticket)
    ticket = queue.submit(request, "s")
    assert ticket.finished.wait(120)
    queue.close()
    assert ticket.error is None and ticket.status == "completed"
    image, settings = map(Path, ticket.outputs)
    assert image.name == "estilo.png" and image.stat().st_size > 0
    # Private to the server's account: 0600 files in a 0700 folder.
    assert image.stat().st_mode & 0o777 == 0o600 and settings.stat().st_mode & 0o777 == 0o600
    assert image.parent.stat().st_mode & 0o777 == 0o700
    assert resolve(file=settings) == request.config == resolve(file=image)
    snap = queue.snapshot(ticket)
    assert snap.iteration == 3 and len(snap.losses) == 3
    assert status_text(snap).startswith("Done in")


def test_cancel_keeps_the_best_image_so_far(uploads: dict[str, Path], tmp_path: Path) -> None:
    request = make_request(
        str(uploads["content"]),
        [str(uploads["style"])],
        "default",
        values(iterations=2000),
        Limits(),
        tmp_path,
    )
    queue = JobQueue(run_ticket)
    ticket = queue.submit(request, "s")
    assert wait_until(lambda: ticket.iteration >= 2, timeout=60)
    ticket.cancel()
    assert ticket.finished.wait(60)
    queue.close()
    assert ticket.status == "stopped" and len(ticket.outputs) == 2
    assert Path(ticket.outputs[0]).is_file()
    assert status_text(queue.snapshot(ticket)).startswith("Cancelled at iteration")


def test_start_answers_bad_input_and_a_full_line_in_the_page(
    uploads: dict[str, Path], tmp_path: Path, gate: Gate
) -> None:
    queue = JobQueue(gate, max_waiting=0)
    args = (str(uploads["content"]), [str(uploads["style"])], "default")
    broken = list(start(queue, Limits(), tmp_path, "a", None, args[1], "default", values()))
    assert len(broken) == 1 and broken[0][0].startswith("Error: upload a content image")
    queue.submit("running", "other")
    assert wait_until(lambda: gate.ran == ["running"])
    busy = list(start(queue, Limits(), tmp_path, "b", *args, values()))
    assert "busy" in busy[0][0] and "try again later" in busy[0][0]
    queue.close()


def test_a_closed_page_cancels_its_run(uploads: dict[str, Path], tmp_path: Path) -> None:
    gate = Gate()
    queue = JobQueue(gate)
    args = (str(uploads["content"]), [str(uploads["style"])], "default", values())
    views = start(queue, Limits(), tmp_path, "tab", *args)
    first = next(views)  # queued and running; the page polls
    assert first[0].startswith(("Starting", "Iteration", "Waiting"))
    views.close()  # what Gradio does when the page goes away
    assert wait_until(lambda: queue.idle)
    assert gate.ran and queue.idle
    queue.close()


def test_status_lines_and_loss_curve() -> None:
    base = Snapshot("running", 0, 10, 100, 5.0, [(i, 10.0 / i) for i in range(1, 11)],
                    None, None, [], [], "")  # fmt: skip
    assert status_text(base) == "Iteration 10 of 100, loss 1, about 45 s left."
    waiting = Snapshot("waiting", 3, 0, 0, 0.0, [], None, None, [], [], "")
    assert status_text(waiting) == "Waiting in line: position 3 (2 runs ahead of you)."
    svg = loss_curve(base.losses)
    assert svg.startswith("<svg") and svg.count(",") == 10 and "10 → 1 (log scale)" in svg
    assert "after two iterations" in loss_curve([(1, 5.0)])


def test_serve_without_gradio_names_the_extra() -> None:
    # In a fresh process: hiding Gradio here would break the browser test's server threads.
    code = "import sys; sys.modules['gradio'] = None; from estilo import cli; " + (
        "sys.exit(cli.main(['serve', '--port', '0']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == cli.EXIT_BAD_INPUT
    assert (
        done.stderr.strip() == "estilo: error: the web UI needs Gradio: pip install 'estilo[web]'"
    )


def test_serve_refuses_non_positive_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--max-size", "0"]) == cli.EXIT_BAD_INPUT
    assert "must be positive" in capsys.readouterr().err


SERVE_WITH_A_RUN = """
import sys, threading, time
from pathlib import Path
from estilo import cli
from estilo.web import page
from estilo.web.handlers import make_request, preset_values
from estilo.web.limits import Limits

queues = []
class Recording(page.JobQueue):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        queues.append(self)
page.JobQueue = Recording
content, style, workdir, port = sys.argv[1:5]
tickets = []

def submit():
    while not queues:
        time.sleep(0.05)
    values = preset_values("default")
    values[0], values[1] = 64, 2000  # size, iterations
    request = make_request(content, [style], "default", values, Limits(), Path(workdir))
    tickets.append(queues[0].submit(request, "s"))
    while tickets[0].iteration < 1:
        time.sleep(0.05)
    print("running", flush=True)

def submit_or_stop():
    try:
        submit()
    except BaseException as exc:
        print("failed:", exc, flush=True)

threading.Thread(target=submit_or_stop, daemon=True).start()
code = cli.main(["serve", "--port", port])
print("told:", tickets[0].error, tickets[0].finished.is_set(), flush=True)
sys.exit(code)
"""


# SIGTERM is what `docker stop` and service managers send.
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_on_serve_stops_the_run_tells_the_page_and_exits_0(
    uploads: dict[str, Path], tmp_path: Path, signum: str
) -> None:
    import signal
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-c", SERVE_WITH_A_RUN, str(uploads["content"]),
            str(uploads["style"]), str(tmp_path), str(port)]  # fmt: skip
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,
    ) as process:
        assert process.stdout is not None
        watchdog = threading.Timer(300, process.kill)  # a hang fails the test, never blocks it
        watchdog.start()
        lines = []
        while (line := process.stdout.readline()) and not line.startswith(("running", "failed")):
            lines.append(line)
        process.send_signal(getattr(signal, signum))
        out, err = process.communicate(timeout=120)
        watchdog.cancel()
    assert line.startswith("running"), [*lines, line, err]
    assert process.returncode == 0, err
    assert "terminate called" not in err and "Traceback" not in err, err
    assert "told: the server is shutting down; your run was stopped True" in out


def test_another_client_cannot_cancel_a_run_by_its_session_id(gate: Gate) -> None:
    queue = JobQueue(gate)
    mine = queue.submit("mine", "victim-session", "host:10.0.0.1")
    assert wait_until(lambda: gate.ran == ["mine"])
    # The other client knows the session id and presents it, or a guessed secret: nothing.
    with queue.watching(mine):  # the victim's page still follows its run
        assert queue.cancel_session("victim-session") == 0
        assert queue.cancel("victim-session") is False and queue.cancel("") is False
        assert not mine.cancelled.is_set()
        assert queue.cancel(mine.secret) is True  # the page that submitted it can
    assert mine.finished.wait(5) and mine.status == "stopped"
    queue.close()


def test_one_client_cannot_fill_the_whole_line(gate: Gate) -> None:
    queue = JobQueue(gate, max_waiting=4, max_per_client=2)
    queue.submit("a1", "s1", "host:A")
    queue.submit("a2", "s2", "host:A")
    with pytest.raises(Busy, match="already have 2 runs"):
        queue.submit("a3", "s3", "host:A")  # a new session id does not help
    assert queue.submit("b1", "s4", "host:B").client == "host:B"  # the others still get in
    queue.close()


def test_start_sends_the_secret_only_to_its_own_page(
    uploads: dict[str, Path], tmp_path: Path, gate: Gate
) -> None:
    queue = JobQueue(gate)
    args = (str(uploads["content"]), [str(uploads["style"])], "default", values())
    views = start(queue, Limits(), tmp_path, "tab", *args, client="host:A")
    first = next(views)
    (ticket,) = queue.tickets()
    assert first[-1] == ticket.secret and len(ticket.secret) >= 24
    assert queue.cancel(first[-1]) and ticket.cancelled.is_set()
    views.close()
    queue.close()


def test_errors_name_the_users_file_never_the_servers_path(
    uploads: dict[str, Path], tmp_path: Path
) -> None:
    hidden = tmp_path / "gradio" / "0123456789abcdef"
    hidden.mkdir(parents=True)
    broken = hidden / "holiday.png"
    broken.write_bytes(uploads["broken"].read_bytes())
    with pytest.raises(ImageError) as refused:
        make_request(str(broken), [str(uploads["style"])], "default", values(), Limits(),
                     tmp_path)  # fmt: skip
    assert "'holiday.png'" in str(refused.value) and str(hidden) not in str(refused.value)


def test_style_count_is_capped_and_big_images_decode_small(
    uploads: dict[str, Path], tmp_path: Path
) -> None:
    styles = [str(uploads["style"])] * 5
    with pytest.raises(ImageError, match="blends at most 4"):
        make_request(str(uploads["content"]), styles, "default", values(), Limits(), tmp_path)
    from estilo.image.io import load_image

    photo = tmp_path / "photo.jpg"
    to_pil(torch.rand(3, 600, 800)).save(photo, quality=90)
    full = load_image(photo).rgb
    small = load_image(photo, max_side=64).rgb
    assert tuple(full.shape) == (3, 600, 800)
    assert max(small.shape[1:]) < 800 and max(small.shape[1:]) >= 128  # at least 2x 64
    assert min(small.shape[1:]) >= 64


def test_disk_is_bounded_busy_answers_leave_nothing_and_closed_pages_are_cleaned(
    uploads: dict[str, Path], tmp_path: Path, gate: Gate
) -> None:
    import os as os_
    import time

    from estilo.web.handlers import forget_session, sweep

    queue = JobQueue(gate, max_waiting=0)
    args = (str(uploads["content"]), [str(uploads["style"])], "default", values())
    running = make_request(*args, Limits(), tmp_path, "a")
    queue.submit(running, "a", "host:A")
    assert wait_until(lambda: gate.ran == [running])
    busy = list(start(queue, Limits(), tmp_path, "b", *args, client="host:B"))
    assert "busy" in busy[0][0]
    assert [p.name for p in tmp_path.glob("run-*")] == [running.folder.name]  # b left nothing

    old = make_request(*args, Limits(), tmp_path, "c")  # a finished run of an hour ago
    (old.folder / "estilo.png").write_bytes(b"x" * 10_000)
    stale = time.time() - 2 * 3600
    os_.utime(old.folder, (stale, stale))
    closed = make_request(*args, Limits(), tmp_path, "d")  # a finished run, page closed
    sweep(queue, Limits(keep_minutes=60), tmp_path)
    assert not old.folder.exists() and running.folder.exists() and closed.folder.exists()
    assert forget_session(queue, tmp_path, "d") == 1 and not closed.folder.exists()
    assert forget_session(queue, tmp_path, "a") == 0 and running.folder.exists()  # active
    # Over the budget, finished runs go oldest first; the running one stays.
    big = make_request(*args, Limits(), tmp_path, "e")
    (big.folder / "estilo.png").write_bytes(b"x" * 3 * 2**20)
    assert sweep(queue, Limits(max_disk_mb=1), tmp_path) < 2**20
    assert not big.folder.exists() and running.folder.exists()
    queue.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--host", "0.0.0.0"], "give --auth USER:PASS"),
        (["serve", "--host", "192.168.1.5", "--port", "0"], "give --auth USER:PASS"),
        (["serve", "--auth", "nopassword"], "--auth must be USER:PASS"),
        (["serve", "--max-styles", "0"], "must be positive"),
        (["serve", "--models", "no-such-folder"], "is not a folder"),
        (["serve", "--models", ".", "--no-instant"], "which --no-instant removes"),
    ],
)
def test_serve_refuses_an_exposed_host_without_auth(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1 and "serving on" not in out


def test_serve_help_shows_the_limits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in ("--max-styles", "--max-per-client", "--max-disk-mb", "--keep-minutes",
                 "--auth", "--insecure"):  # fmt: skip
        assert flag in text
