# A small image folder: 3 classes x 200 PNGs, 64 px; the class sets the colour of a 12-px
# square at a random place on a noisy background.
import numpy as np
from PIL import Image
from pathlib import Path

rng = np.random.default_rng(0)
colours = {"red": (230, 25, 75), "green": (60, 180, 75), "blue": (0, 130, 200)}
for name, c in colours.items():
    d = Path("imgs600") / name
    d.mkdir(parents=True, exist_ok=True)
    for i in range(200):
        x = rng.integers(0, 120, (64, 64, 3), dtype=np.uint8)
        y0, x0 = rng.integers(0, 64 - 12, 2)
        x[y0 : y0 + 12, x0 : x0 + 12] = c
        Image.fromarray(x).save(d / f"{i:03d}.png")
