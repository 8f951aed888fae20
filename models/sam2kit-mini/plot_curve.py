"""Draw the training curve of sam2kit-mini (training loss per step, validation figures) from the
runs' log.csv files into curve.png, with PIL only.

    cd models/sam2kit-mini && python plot_curve.py phase1_log.csv phase2/log.csv phase3/log.csv \
        phase2b/log.csv phase2c/log.csv phase4/log.csv phase5/log.csv phase6/log.csv phase7/log.csv \
        phase9/log.csv phase10/log.csv phase11/log.csv phase12/log.csv phase14/log.csv \
        phase15/log.csv phase16/log.csv phase17/log.csv phase18/log.csv phase19/log.csv --out curve.png
"""

from __future__ import annotations

import argparse
import csv
import math
import re
from pathlib import Path

from PIL import Image, ImageDraw

#: A log's phase name from its folder (phase5/log.csv) or file name (phase1_log.csv).
PHASE_NAME = re.compile(r"^phase|_log$")
WIDTH, HEIGHT, PAD = 900, 420, 60
LOSS_COLOR, CLICK_COLOR, BOX_COLOR, JF_COLOR = (40, 90, 200), (220, 80, 40), (240, 160, 40), (40, 160, 80)


def read_runs(paths: list[Path]) -> tuple[list[tuple[int, float]], dict[str, list[tuple[int, float]]]]:
    """Training losses and validation series over the runs, steps continued from run to run."""
    losses: list[tuple[int, float]] = []
    validation: dict[str, list[tuple[int, float]]] = {"val_miou_click": [], "val_miou_box": [], "val_j_and_f": []}
    offset = 0
    for path in paths:
        last = 0
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = int(row["step"]) + offset
                last = max(last, int(row["step"]))
                if row["kind"] == "train" and row["loss"]:
                    losses.append((step, float(row["loss"])))
                for name, series in validation.items():
                    if row["kind"] == "val" and row.get(name):
                        series.append((step, float(row[name])))
        offset += last
    return losses, validation


def smooth(points: list[tuple[int, float]], window: int = 20) -> list[tuple[int, float]]:
    out = []
    for i in range(len(points)):
        chunk = points[max(0, i - window + 1) : i + 1]
        out.append((points[i][0], sum(v for _, v in chunk) / len(chunk)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", type=Path, help="log.csv files, in training order")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    losses, validation = read_runs(args.logs)
    last_step = max(step for step, _ in losses)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = PAD, WIDTH - PAD, PAD // 2, HEIGHT - PAD
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))

    def x_of(step: float) -> float:
        return left + (right - left) * step / last_step

    log_losses = [(s, math.log10(max(v, 1e-6))) for s, v in smooth(losses)]
    low, high = min(v for _, v in log_losses), max(v for _, v in log_losses)
    loss_points = [(x_of(s), bottom - (bottom - top) * (v - low) / max(high - low, 1e-6)) for s, v in log_losses]
    draw.line(loss_points, fill=LOSS_COLOR, width=2)
    for name, color in (("val_miou_click", CLICK_COLOR), ("val_miou_box", BOX_COLOR), ("val_j_and_f", JF_COLOR)):
        series = validation[name]
        points = [(x_of(s), bottom - (bottom - top) * v) for s, v in series]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - (bottom - top) * fraction
        draw.text((right + 6, y - 6), f"{fraction:.2f}", fill=(0, 0, 0))
        draw.text((left - 52, y - 6), f"{10 ** (low + (high - low) * fraction):.2f}", fill=LOSS_COLOR)
    for step in range(0, last_step + 1, max(1, last_step // 8)):
        draw.text((x_of(step) - 10, bottom + 6), str(step), fill=(0, 0, 0))
    phases = ", ".join(PHASE_NAME.sub("", path.parent.name or path.stem) for path in args.logs)
    draw.text((left, bottom + 24), f"optimizer step, phases in training order ({phases})", fill=(0, 0, 0))
    legend = [("training loss (log scale, left)", LOSS_COLOR), ("val mIoU one click (right)", CLICK_COLOR),
              ("val mIoU box (right)", BOX_COLOR), ("val J&F first-frame click (right)", JF_COLOR)]
    for i, (text, color) in enumerate(legend):
        draw.rectangle([left + 10, top + 10 + 16 * i, left + 20, top + 20 + 16 * i], fill=color)
        draw.text((left + 26, top + 8 + 16 * i), text, fill=(0, 0, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out)


if __name__ == "__main__":
    main()
