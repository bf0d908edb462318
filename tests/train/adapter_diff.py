#!/usr/bin/env python3
"""adapter_diff.py A.gguf B.gguf [TOL] — how far apart two llama.cpp LoRA GGUF adapters are.

Reads both with scripts/ggufpy.py (the same tensor names must be in both), prints the relative L2
distance ||A - B|| / ||B|| over all tensors together and the largest per-tensor one, and exits 1 when
the overall distance exceeds TOL (default 1e-6), 2 on unreadable or mismatched files."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import ggufpy  # noqa: E402


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: adapter_diff.py A.gguf B.gguf [TOL]")
    tol = float(sys.argv[3]) if len(sys.argv) == 4 else 1e-6
    try:
        a, b = ggufpy.Reader(sys.argv[1]), ggufpy.Reader(sys.argv[2])
    except (OSError, ggufpy.GGUFError) as e:
        print("adapter_diff: %s" % e, file=sys.stderr)
        sys.exit(2)
    if list(a.tensors) != list(b.tensors):
        print("adapter_diff: the adapters hold different tensors", file=sys.stderr)
        sys.exit(2)
    num = den = 0.0
    worst, worst_name = 0.0, ""
    for name in a.tensors:
        x = a.tensors[name].numpy().astype(np.float64)
        y = b.tensors[name].numpy().astype(np.float64)
        d, n = float(np.sum((x - y) ** 2)), float(np.sum(y ** 2))
        num, den = num + d, den + n
        r = (d / n) ** 0.5 if n > 0 else (0.0 if d == 0 else float("inf"))
        if r > worst:
            worst, worst_name = r, name
    rel = (num / den) ** 0.5 if den > 0 else 0.0
    print("relative L2 %.3e over %d tensors (largest %.3e: %s)" % (rel, len(a.tensors), worst, worst_name or "-"))
    sys.exit(0 if rel <= tol else 1)


main()
