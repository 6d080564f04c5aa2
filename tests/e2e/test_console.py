"""The console bot as a member uses it: a subprocess fed through stdin, on the sandbox."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

BIN = Path(sys.executable).parent / "samsar-bot"


def run_console(
    tmp_path: Path, script: str, *extra: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "CONSOLE_IMAGE_DIR": str(tmp_path / "images"),
        "CONSOLE_USER": "tester",
        "SANDBOX_START_CREDITS": "50",
        **(env_extra or {}),
    }
    return subprocess.run(
        [str(BIN), "console", *extra],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_chat_imagine_and_credits_through_stdin(tmp_path: Path) -> None:
    result = run_console(
        tmp_path, "hello there\n/imagine --size 512x384 a red fox\n/credits\n/quit\n", "--sandbox"
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "hello there" in out and "Sandbox reply" in out

    paths = re.findall(r"^\[image\] (\S+)", out, re.M)
    assert len(paths) == 1
    image_path = Path(paths[0])
    assert image_path.parent == (tmp_path / "images").resolve()
    with Image.open(image_path) as image:
        assert image.format == "PNG"
        assert image.size == (512, 384)

    used = [float(n) for n in re.findall(r"\(([\d.]+) credits? used", out)]
    left = [float(n) for n in re.findall(r"· ([\d.]+) left\)", out)]
    assert len(used) == 2 and all(n > 0 for n in used)
    assert left[-1] == 50 - sum(used)
    assert f"You have {left[-1]:,.0f} credits." in out
    assert (tmp_path / "data").is_dir()  # the embedded SQLite default


def test_errors_are_messages_and_the_session_goes_on(tmp_path: Path) -> None:
    result = run_console(
        tmp_path,
        "/imagine --size 5x5 tiny\n/buy lots\n/nonsense\n/prompt set workspace Be brief.\n"
        "/prompt show\nstill here?\n",
        "--sandbox",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "! That value is not valid: size must be" in out
    assert "\n! Usage: /buy <credits>\n" in out
    assert "Unknown command /nonsense" in out
    assert "Instructions from the admins of this workspace:\nBe brief." in out
    assert "Sandbox reply" in out and "Bye." in out


def test_without_sandbox_or_key_it_names_the_setting(tmp_path: Path) -> None:
    result = run_console(tmp_path, "")
    assert result.returncode == 2
    assert "SAMSAR_API_KEY" in result.stderr


def console_process(tmp_path: Path) -> subprocess.Popen[str]:
    """`samsar-bot console --sandbox` with its stdin kept open, as a member's terminal."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "CONSOLE_IMAGE_DIR": str(tmp_path / "images"),
    }
    return subprocess.Popen(
        [str(BIN), "console", "--sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def running_turns(database: Path) -> int:
    """Turns the console's ledger has running now (0 before the file exists)."""
    if not database.exists():
        return 0
    with sqlite3.connect(database) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM turns WHERE status = 'running'").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0
        return int(row[0])


def test_sigterm_during_an_answer_still_shows_it_then_ends(tmp_path: Path) -> None:
    console = console_process(tmp_path)
    assert console.stdin is not None
    console.stdin.write("a slow one #slow=1.5\n")
    console.stdin.flush()
    deadline = time.monotonic() + 60
    while not running_turns(tmp_path / "data" / "samsar-bots.db"):
        assert time.monotonic() < deadline and console.poll() is None, "the turn never started"
        time.sleep(0.02)  # polling the ledger under the deadline
    console.send_signal(signal.SIGTERM)
    out, err = console.communicate(timeout=60)
    assert console.returncode == 0, err
    assert "Stopping: the answer in progress is still coming" in out
    assert out.index("Stopping") < out.index("Sandbox reply") < out.index("Bye.")


def test_ctrl_c_at_the_idle_prompt_ends_the_console_at_once(tmp_path: Path) -> None:
    console = console_process(tmp_path)
    assert console.stdout is not None
    while "Samsar console" not in console.stdout.readline():  # up, waiting for a line
        assert console.poll() is None, "the console ended"
    console.send_signal(signal.SIGINT)
    out, err = console.communicate(timeout=30)  # no Enter needed
    assert console.returncode == 0, err
    assert "Bye." in out and "Traceback" not in err


def test_an_image_that_cannot_be_saved_is_said_and_the_console_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "images"
    blocked.write_text("a file, not a folder")  # as unwritable as a read-only mount, as root too
    result = run_console(tmp_path, "/imagine a red fox\nhello after\n/quit\n", "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "could not be saved in" in result.stdout and "Traceback" not in result.stderr
    assert "hello after" in result.stdout and result.stdout.rstrip().endswith("Bye.")


def test_log_lines_stay_out_of_the_chat_and_go_to_the_log_file(tmp_path: Path) -> None:
    result = run_console(tmp_path, "hello\n/quit\n", "--sandbox", env_extra={"LOG_LEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    for line in (result.stdout + result.stderr).splitlines():
        assert not re.search(r" (DEBUG|INFO|WARNING) [\w.]+ ", line), line
    logged = (tmp_path / "data" / "console.log").read_text()
    assert " INFO " in logged and "store open" in logged
