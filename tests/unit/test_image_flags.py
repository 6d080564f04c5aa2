"""Inline image flags as members write them in Slack and the console."""

from __future__ import annotations

import pytest

from bots.image_flags import split_image_flags
from core.models import ImageChoice


@pytest.mark.parametrize(
    ("text", "choice", "prompt"),
    [
        ("a red fox", ImageChoice(), "a red fox"),
        ("size=512x384 quality=LOW a fox", ImageChoice("512x384", "low"), "a fox"),
        ("--size 640x480 --format webp a fox", ImageChoice("640x480", format="webp"), "a fox"),
        ("a fox size=512x512", ImageChoice(), "a fox size=512x512"),
        ("--size", ImageChoice(), "--size"),
        ("colour=red a fox", ImageChoice(), "colour=red a fox"),
    ],
)
def test_split_image_flags(text: str, choice: ImageChoice, prompt: str) -> None:
    assert split_image_flags(text) == (choice, prompt)
