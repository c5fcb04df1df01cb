#!/usr/bin/env python3
"""stats.py — names and sums a CUEMU_STATS report of the CUDA emulator (tests/cuemu).

    CUEMU_STATS=run.txt build-emu/dartsc bench ... --device cuda
    python3 tests/cuemu/stats.py run.txt [--minus other.txt] [--per N]

Each kernel's address is named with `nm -C` on its module (the emulator wrote the offset
from the module's load address). --minus subtracts another report (e.g. a run with fewer
steps, to leave the steps' own launches); --per divides the counts (e.g. by the steps)."""
import argparse
import bisect
import collections
import subprocess
import sys


def read(path):
    kern, calls = collections.Counter(), collections.Counter()
    blocks = collections.Counter()
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            w = line.split()
            if w and w[0] == "kernel" and len(w) == 6:
                key = (w[1], int(w[2], 16))
                kern[key] += int(w[3])
                blocks[key] += int(w[4])
            elif w and w[0] == "call" and len(w) == 3:
                calls[w[1]] += int(w[2])
            elif w:
                sys.exit(f"{path}:{ln}: not a CUEMU_STATS line: {line.strip()!r}")
    return kern, blocks, calls


_syms = {}


def name(module, off):
    if module not in _syms:
        try:
            out = subprocess.run(["nm", "-C", "--defined-only", module], capture_output=True, text=True,
                                 check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"stats.py: nm {module}: {e}", file=sys.stderr)
            out = ""
        tab = []
        for line in out.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in "tTwW":
                tab.append((int(parts[0], 16), parts[2]))
        tab.sort()
        _syms[module] = tab
    tab = _syms[module]
    i = bisect.bisect_right(tab, (off, "\uffff")) - 1
    return tab[i][1] if i >= 0 else f"{module}+{off:#x}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report")
    ap.add_argument("--minus")
    ap.add_argument("--per", type=float, default=1.0)
    a = ap.parse_args()
    if a.per <= 0:
        sys.exit("stats.py: --per wants a positive number")
    k, b, c = read(a.report)
    if a.minus:
        k2, b2, c2 = read(a.minus)
        k.subtract(k2)
        b.subtract(b2)
        c.subtract(c2)
    byname = collections.Counter()
    bname = collections.Counter()
    for key, n in k.items():
        nm = name(*key)
        nm = nm.split("(")[0]  # the kernel, without its parameter list
        byname[nm] += n
        bname[nm] += b[key]
    total = sum(byname.values())
    print(f"{'launches':>10} {'blocks/launch':>13}  kernel")
    for nm, n in byname.most_common():
        if n <= 0:
            continue
        print(f"{n / a.per:10.1f} {bname[nm] / n:13.1f}  {nm}")
    print(f"{total / a.per:10.1f} {'':13}  all kernel launches")
    for nm, n in c.most_common():
        if n > 0:
            print(f"{n / a.per:10.1f} {'':13}  {nm} (call)")
    lib = sum(n for nm, n in c.items() if nm.startswith(("cublas", "cudnn")))
    print(f"{lib / a.per:10.1f} {'':13}  all cuBLAS and cuDNN calls")
    print(f"{(sum(c.values()) - lib) / a.per:10.1f} {'':13}  all copies and memsets")


if __name__ == "__main__":
    main()
