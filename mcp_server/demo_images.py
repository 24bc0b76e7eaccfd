"""A reproducible demo dataset: real images of varied sizes and formats, some broken."""

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

FORMATS = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp"))


@dataclass(frozen=True, slots=True)
class DemoSet:
    """How many files of each kind were written."""

    images: int
    truncated: int
    not_images: int


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def _picture(rng: random.Random) -> Image.Image:
    width, height = rng.randint(64, 400), rng.randint(48, 300)
    image = Image.new("RGB", (width, height), _colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 6)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, rng.randint(x0, width), rng.randint(y0, height))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=_colour(rng))
        else:
            draw.rectangle(box, fill=_colour(rng))
    return image


def write_demo_images(
    directory: Path,
    *,
    count: int,
    corrupt: float,
    seed: int = 42,
    on_file: Callable[[int], None] | None = None,
) -> DemoSet:
    """Write `count` files; a `corrupt` share is truncated images or text with image names."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    truncated = not_images = 0
    for index in range(count):
        image_format, suffix = FORMATS[index % len(FORMATS)]
        path = directory / f"img_{index:06d}.{suffix}"
        broken = rng.random() < corrupt
        if broken and rng.random() < 0.5:
            path.write_text("this is not an image\n" * rng.randint(1, 20))
            not_images += 1
        else:
            buffer = io.BytesIO()
            _picture(rng).save(buffer, image_format)
            data = buffer.getvalue()
            if broken:
                data = data[: max(16, len(data) // 3)]
                truncated += 1
            path.write_bytes(data)
        if on_file is not None:
            on_file(index + 1)
    return DemoSet(
        images=count - truncated - not_images, truncated=truncated, not_images=not_images
    )
