"""The benchmark's datasets, written as the class folders a user would have.

- fashion: Fashion-MNIST in given train/val/test folders (see bench/fashion_mnist.py for
  the reserved images this never reads): 600 training and 100 validation images per
  class from training images 0-19,999, and 1,000 test images per class from
  20,000-39,999.
- unbalanced: the same, with one class cut to a tenth of its training and validation
  images (its test images stay, so its recall is measured on 1,000).
- photos: real RGB photos in the flat layout (`data/<class>/*`): crops of the MATE
  desktop's 12 nature photographs (Debian's `mate-backgrounds`), one per class,
  at varied sizes, aspect ratios and formats (JPEG, PNG, WebP), some stored rotated
  with an EXIF orientation tag.
- fewshot: the same kind of photos with few to learn from: 20 training and 20
  validation images per class, and 100 test images per class, in split folders.
- drawings: few-shot classes told apart by what they show, not by colour or texture:
  the Art4Apps illustrations of Debian's `pysiogame` (200 px, one illustrator, CC
  BY-SA), five of its topics as classes, 20 training and 7 validation drawings per
  class, up to 30 test drawings per class; every drawing is a different subject.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from bench.fashion_mnist import CLASS_NAMES, load_usable

PHOTOS = Path("/usr/share/backgrounds/mate/nature")
PHOTO_CLASSES = [
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow",
    "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower",
]  # fmt: skip
DRAWINGS = Path("/usr/share/games/pysiogame/res/images/art4apps")
# Topics with enough drawings for 20 + 7 + at least 10, and no subject shared between two.
DRAWING_CLASSES = ["animals", "clothes_n_accessories", "construction", "fruit_n_veg", "jobs"]
DRAWING_SPLITS = {"train": 20, "val": 7, "test": 30}  # drawings per class, in this order
RARE_CLASS = "Pullover"
EXIF_ORIENTATION = 0x0112


def _pick(labels: np.ndarray, label: int, start: int, stop: int, skip: int, count: int):
    return np.flatnonzero(labels[start:stop] == label)[skip : skip + count] + start


def write_fashion(data: Path, rare_class: str | None = None) -> dict[str, int]:
    """Write data/{train,val,test}/<class>/<index>.png; returns the image count per split."""
    images, labels = load_usable()
    counts = {"train": 0, "val": 0, "test": 0}
    for label, name in enumerate(CLASS_NAMES):
        share = 10 if name == rare_class else 1
        chosen = {
            "train": _pick(labels, label, 0, 20_000, 0, 600 // share),
            "val": _pick(labels, label, 0, 20_000, 600, 100 // share),
            "test": _pick(labels, label, 20_000, 40_000, 0, 1000),
        }
        for split, indices in chosen.items():
            folder = data / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in indices:
                Image.fromarray(images[index], mode="L").save(folder / f"{index:05d}.png")
            counts[split] += len(indices)
    return counts


def _save_photo(crop: Image.Image, path: Path, number: int) -> None:
    fmt = ("JPEG", "PNG", "WEBP")[number % 3]
    path = path.with_suffix({"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}[fmt])
    if fmt == "JPEG" and number % 4 == 0:
        # Stored turned by 90 degrees, with the EXIF tag that turns it upright again.
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = 6  # "rotate 90 CW to display"
        crop.transpose(Image.Transpose.ROTATE_90).save(path, quality=90, exif=exif)
    else:
        crop.save(path, **({"quality": 90} if fmt != "PNG" else {}))


def nature_photos() -> dict[str, Image.Image]:
    """The 12 nature photographs as RGB images, by class name; exits if one is missing."""
    missing = [name for name in PHOTO_CLASSES if not (PHOTOS / f"{name}.jpg").is_file()]
    if missing:
        raise SystemExit(
            f"{PHOTOS}/{missing[0]}.jpg not found: `make bench-data` (Debian's mate-backgrounds)"
        )
    photos = {}
    for name in PHOTO_CLASSES:
        with Image.open(PHOTOS / f"{name}.jpg") as opened:
            photos[name] = opened.convert("RGB")
    return photos


def write_photos(data: Path, per_class: int = 150, seed: int = 0) -> int:
    """Write data/<class>/<n>.<ext>: `per_class` random crops of each class's photograph."""
    rng = np.random.default_rng(seed)
    for name, photo in nature_photos().items():
        folder = data / name
        folder.mkdir(parents=True, exist_ok=True)
        width, height = photo.size
        for number in range(per_class):
            # Small crops: a class is recognised from a patch of its photograph.
            side = rng.uniform(0.06, 0.25) * min(width, height)
            aspect = rng.uniform(0.75, 1.33)
            w, h = int(side * aspect), int(side / aspect)
            left, top = rng.integers(0, width - w), rng.integers(0, height - h)
            out = int(rng.integers(48, 400))
            crop = photo.crop((left, top, left + w, top + h))
            crop = crop.resize((out, max(1, round(out * h / w))), Image.Resampling.LANCZOS)
            _save_photo(crop, folder / f"{name.lower()}_{number:03d}", number)
    return per_class * len(PHOTO_CLASSES)


FEW_SHOT = {"train": (20, 1), "val": (20, 2), "test": (100, 3)}  # split: (per class, seed)


def write_few_photos(data: Path) -> int:
    """Write data/{train,val,test}/<class>/...: few training photos, a test set to judge by."""
    return sum(write_photos(data / split, count, seed) for split, (count, seed) in FEW_SHOT.items())


def write_drawings(data: Path, seed: int = 0) -> dict[str, int]:
    """Write data/{train,val,test}/<topic>/<subject>.jpg; returns the image count per split.

    Each topic's drawings are shuffled (seeded), then dealt out to train, val and test
    in that order: a test drawing's subject is never seen in training.
    """
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(DRAWING_SPLITS, 0)
    for topic in DRAWING_CLASSES:
        files = sorted((DRAWINGS / topic).glob("*.jpg"))
        if not files:
            raise SystemExit(
                f"{DRAWINGS}/{topic}/ has no drawings: `make bench-data` (Debian's pysiogame)"
            )
        files = [files[i] for i in rng.permutation(len(files))]
        start = 0
        for split, count in DRAWING_SPLITS.items():
            folder = data / split / topic
            folder.mkdir(parents=True, exist_ok=True)
            for path in files[start : start + count]:
                shutil.copyfile(path, folder / path.name)
                counts[split] += 1
            start += count
    return counts
