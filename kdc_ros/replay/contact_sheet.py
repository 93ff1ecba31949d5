"""A contact sheet of a replay: evenly spaced overlay frames from its output bag in one PNG."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kdc_model.inference.drawing import image_grid

from ..bags.image_bag import ImageBag
from ..node.image_io import image_to_rgb
from .outputs import OVERLAY_TOPIC


def write_contact_sheet(replay_bag: str | Path, png: str | Path, tiles: int = 12, columns: int = 4,
                        tile_height: int = 240) -> Path:
    """Write `tiles` overlays spread over the replay (first to last) as a grid to `png`."""
    with ImageBag(replay_bag, OVERLAY_TOPIC) as bag:
        wanted = set(np.linspace(0, bag.count - 1, min(tiles, bag.count)).round().astype(int).tolist())
        images = [image_to_rgb(frame.msg) for frame in bag.frames() if frame.index in wanted]
    grid = image_grid(images, columns=columns, tile_height=tile_height)
    png = Path(png)
    if not cv2.imwrite(str(png), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{png}: cannot write the contact sheet")
    return png
