"""The sandbox's pictures follow the prompt, and its edits follow the instruction."""

from __future__ import annotations

import io

from PIL import Image

from sandbox.drawing import COLOURS, draw, drawable, scene_of


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def brightness(image: Image.Image) -> int:
    grey = image.convert("L").resize((1, 1)).getpixel((0, 0))
    assert isinstance(grey, int)
    return grey


def test_colours_and_shapes_named_are_drawn() -> None:
    image = picture(draw("a red circle on a blue background", "512x512"))
    assert image.getpixel((8, 8)) == COLOURS["blue"]  # the background it names
    assert image.getpixel((256, int(512 * 0.3))) == COLOURS["red"]  # the red circle's centre
    other = picture(draw("a green triangle and a yellow star", "512x512"))
    assert scene_of("a green triangle and a yellow star").shapes == (
        ("triangle", COLOURS["green"]),
        ("star", COLOURS["yellow"]),
    )
    assert other.getpixel((128, int(512 * 0.3) + 20)) == COLOURS["green"]


def test_an_edit_applies_its_instruction_to_the_earlier_picture() -> None:
    sunny = draw("a yellow sun on a blue sky", "256x256")
    night = picture(draw("make it night", "256x256", base=sunny))
    assert brightness(night) < brightness(picture(sunny)) * 0.6
    redder = picture(draw("make it red", "256x256", base=sunny))
    r, _, b = redder.getpixel((4, 4))  # the sky, tinted towards red
    assert r > COLOURS["blue"][0] + 60 and b < COLOURS["blue"][2] - 60


def test_any_text_is_drawn_cleanly_and_the_same_every_time() -> None:
    prompt = "שלום עולם 👋🏽 مرحبا — 日本"
    assert drawable(prompt) == "שלום עולם مرحبا — 日本"  # emoji beyond the basic plane left out
    assert draw(prompt, "256x256") == draw(prompt, "256x256")
    assert draw("a quiet lake", "256x256") != draw("a noisy lake", "256x256")
