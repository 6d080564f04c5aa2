"""Inline image options: known ones with their values are taken, anything else dashed is a
usage error, never part of the billed prompt."""

from __future__ import annotations

import pytest

from bots import texts
from bots.image_flags import split_image_flags
from core.errors import InputRejected
from core.models import ImageChoice

USAGE = "Usage: /imagine [--size WxH] <prompt>"


@pytest.mark.parametrize(
    ("typed", "choice", "prompt"),
    [
        ("--size 512x512 a cat", ImageChoice(size="512x512"), "a cat"),
        ("size=512x512 quality=low a cat", ImageChoice(size="512x512", quality="low"), "a cat"),
        ("--format=webp a cat --size", ImageChoice(format="webp"), "a cat --size"),
        ("a cat", ImageChoice(), "a cat"),
        ("size=512x384 quality=LOW a fox", ImageChoice("512x384", "low"), "a fox"),
        ("--size 640x480 --format webp a fox", ImageChoice("640x480", format="webp"), "a fox"),
        ("a fox size=512x512", ImageChoice(), "a fox size=512x512"),  # not leading: prompt
        ("colour=red a fox", ImageChoice(), "colour=red a fox"),  # undashed and unknown: prompt
    ],
)
def test_known_options_are_taken(typed: str, choice: ImageChoice, prompt: str) -> None:
    assert split_image_flags(typed, USAGE) == (choice, prompt)


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("--size", "--size needs a value. Usage: /imagine [--size WxH] <prompt>"),
        ("--quality= a cat", "--quality needs a value."),
        ("--sizes 512x512 cat", "Unknown option --sizes (there are --size, --quality, --format)."),
    ],
)
def test_a_bad_option_is_a_usage_error_read_as_usage(typed: str, said: str) -> None:
    with pytest.raises(InputRejected) as caught:
        split_image_flags(typed, USAGE)
    assert caught.value.reason == InputRejected.USAGE
    assert texts.describe(caught.value).startswith(said)
    assert texts.describe(caught.value).endswith(USAGE)
