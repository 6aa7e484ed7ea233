"""Write a contact sheet of synthetic chest radiographs so a person can judge them by eye.

Rows are findings (each single finding, then a few co-occurring sets), columns are independent
renders. Every tile is SYNTHETIC (mmdx.data.cxr_render). The row label and, under each tile,
the rendered cardiothoracic ratio and finding severities are printed on the sheet.

    python scripts/cxr_contact_sheet.py --out /tmp/cxr_sheet.png --per-row 6 --size 128 --seed 0
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from mmdx.data.cxr_render import render_cxr_detailed

log = logging.getLogger("cxr_contact_sheet")

ROWS: tuple[tuple[str, ...], ...] = (
    ("no_finding",),
    ("consolidation",),
    ("effusion",),
    ("cardiomegaly",),
    ("hyperinflation",),
    ("edema",),
    ("cardiomegaly", "edema", "effusion"),
    ("consolidation", "effusion"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/cxr_sheet.png", help="PNG path to write")
    ap.add_argument("--per-row", type=int, default=6, help="renders per finding row")
    ap.add_argument("--size", type=int, default=128, help="side of each render in pixels")
    ap.add_argument("--seed", type=int, default=0, help="numpy Generator seed")
    ap.add_argument("--zoom", type=int, default=2, help="integer upscale of each tile for viewing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(args.seed)
    t = args.size * args.zoom
    label_w, caption_h = 150, 14
    sheet = Image.new("L", (label_w + args.per_row * (t + 4), len(ROWS) * (t + caption_h + 6)), 40)
    draw = ImageDraw.Draw(sheet)
    times = []
    for r, findings in enumerate(ROWS):
        y = r * (t + caption_h + 6)
        draw.text((4, y + t // 2 - 10), "\n".join(findings), fill=255)
        for c in range(args.per_row):
            t0 = time.perf_counter()
            out = render_cxr_detailed(findings, rng, size=args.size)
            times.append(time.perf_counter() - t0)
            tile = Image.fromarray(out.image).resize((t, t), Image.NEAREST)
            x = label_w + c * (t + 4)
            sheet.paste(tile, (x, y))
            cap = f"ctr {out.ctr:.2f} " + " ".join(f"{k[:4]} {v:.2f}" for k, v in out.severity.items())
            draw.text((x, y + t + 1), cap, fill=200)
    sheet.save(args.out)
    log.info("wrote %s; render time median %.1f ms (first call includes the anatomy cache load)",
             args.out, 1000 * float(np.median(times)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
