#!/usr/bin/env python3
"""plot.py - draws seconds per search step against batch size from bench/run.sh's JSON
lines, one line per (implementation, order), as a standalone SVG. Standard library only.

    bench/run.sh "" "1 2" "8 16 32 64" > fashion.jsonl
    bench/plot.py fashion.jsonl --space fashion -o docs/bench_step_time.svg
"""
import argparse
import json
import math
import sys

COLORS = {("dartsc", 1): "#1f77b4", ("dartsc", 2): "#0b3d91", ("pytorch", 1): "#ff7f0e", ("pytorch", 2): "#b34700"}


def load(paths, space):
    series = {}
    for path in paths:
        with (sys.stdin if path == "-" else open(path)) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if r.get("space", "darts_cifar10") != space:
                    continue
                series.setdefault((r["impl"], r["order"]), {})[r["batch"]] = r["median_s"]
    return series


def nice_max(v):
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def svg(series, title):
    W, H, L, R, T, B = 640, 400, 70, 170, 40, 50
    batches = sorted({b for s in series.values() for b in s})
    ymax = nice_max(max(t for s in series.values() for t in s.values()) * 1.05)
    lx = [math.log2(b) for b in batches]
    x0, x1 = min(lx), max(lx) if max(lx) > min(lx) else min(lx) + 1

    def X(b):
        return L + (math.log2(b) - x0) / (x1 - x0) * (W - L - R)

    def Y(t):
        return H - B - t / ymax * (H - T - B)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="14">{title}</text>']
    for i in range(6):
        t = ymax * i / 5
        o.append(f'<line x1="{L}" y1="{Y(t):.1f}" x2="{W - R}" y2="{Y(t):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{Y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for b in batches:
        o.append(f'<line x1="{X(b):.1f}" y1="{H - B}" x2="{X(b):.1f}" y2="{H - B + 5}" stroke="black"/>')
        o.append(f'<text x="{X(b):.1f}" y="{H - B + 18}" text-anchor="middle">{b}</text>')
    o.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>')
    o.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">batch size (log scale)</text>')
    o.append(f'<text transform="translate(18,{(T + H - B) / 2}) rotate(-90)" text-anchor="middle">'
             'seconds per search step (median)</text>')
    for k, (key, pts) in enumerate(sorted(series.items())):
        impl, order = key
        c = COLORS.get(key, "#555")
        dash = "" if order == 1 else ' stroke-dasharray="6,3"'
        path = " ".join(f"{X(b):.1f},{Y(pts[b]):.1f}" for b in sorted(pts))
        o.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        for b in sorted(pts):
            o.append(f'<circle cx="{X(b):.1f}" cy="{Y(pts[b]):.1f}" r="3" fill="{c}"/>')
        ly = T + 10 + 20 * k
        o.append(f'<line x1="{W - R + 15}" y1="{ly}" x2="{W - R + 45}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>')
        o.append(f'<text x="{W - R + 50}" y="{ly + 4}">{impl}, order {order}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="+", help="files of bench/run.sh JSON lines ('-': stdin)")
    ap.add_argument("--space", default="fashion")
    ap.add_argument("--title", default=None)
    ap.add_argument("-o", "--out", default="-")
    a = ap.parse_args()
    series = load(a.inputs, a.space)
    if not series:
        sys.exit(f"plot.py: no lines for space {a.space}")
    text = svg(series, a.title or f"DARTS search step on 2 CPU threads: {a.space} supernet")
    if a.out == "-":
        sys.stdout.write(text)
    else:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
