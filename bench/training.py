"""Fine-tuning with its defaults on real pictures: held-out accuracy and minutes, new defaults vs the old.

    python bench/training.py [--old]

Folders (made by tools/make_photo_set.py, 10 classes x 40 pictures of 64 px):
- bench/digits10: scanned handwritten digits (scikit-learn's copy of UCI optdigits),
  the hard one: the old defaults reached 72.5% on it;
- bench/photos10: crops of ten public-domain photographs (the pack's samples and
  scikit-image's), easier.
`--old` also trains with the previous defaults (8 epochs, head only, 224 px crops
keeping 35-100% of the picture, last epoch kept) for comparison.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import THREADS

from dream_core import training
from dream_core.training import TrainSettings, train_classifier

ROOT = Path(__file__).resolve().parent


def run(folder: Path, settings: TrainSettings, crop_area: float) -> str:
    training.CROP_AREA = crop_area
    started = time.perf_counter()
    result = train_classifier(folder, settings=settings)
    minutes = (time.perf_counter() - started) / 60
    return (
        f"{folder.name:9s} held-out accuracy {result.accuracy:6.1%} on {result.holdout_count} pictures, "
        f"{minutes:4.1f} min, epoch {result.best_epoch} of {len(result.history)} kept"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", action="store_true", help="also the previous defaults")
    args = parser.parse_args()
    print(f"threads {THREADS}; defaults {TrainSettings()}")
    for name in ("digits10", "photos10"):
        print("new defaults: " + run(ROOT / name, TrainSettings(), training.CROP_AREA))
        if args.old:
            old = TrainSettings(epochs=8, unfreeze=0, image_size=224, keep_best=False)
            print("old defaults: " + run(ROOT / name, old, 0.35))


if __name__ == "__main__":
    main()
