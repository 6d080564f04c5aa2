"""The console bot as a member uses it: a subprocess fed through stdin, on the sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

BIN = Path(sys.executable).parent / "samsar-bot"


def run_console(tmp_path: Path, script: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "CONSOLE_IMAGE_DIR": str(tmp_path / "images"),
        "CONSOLE_USER": "tester",
        "SANDBOX_START_CREDITS": "50",
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
    assert "usage: /buy <credits>" in out
    assert "Unknown command /nonsense" in out
    assert "Instructions from the admins of this workspace:\nBe brief." in out
    assert "Sandbox reply" in out and "Bye." in out


def test_without_sandbox_or_key_it_names_the_setting(tmp_path: Path) -> None:
    result = run_console(tmp_path, "")
    assert result.returncode == 2
    assert "SAMSAR_API_KEY" in result.stderr
