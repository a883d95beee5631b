"""Plain h5py reads of the same windows the wellspring Well benchmark reads, for comparison.

Usage: python3 well_h5py.py FILE PLAN.json
PLAN.json: {"windows": [[trajectory, t0], ...], "n_frames": 5, "fields": [[dataset, components], ...],
            "mean": [per channel], "std": [per channel]}
Reads each window field by field with h5py slicing (one process, one thread), stacks the channels last,
z-scores with numpy (float32), and prints one JSON line with windows/s and the peak RSS.
"""

import json
import resource
import sys
import time

import h5py
import numpy as np


def main() -> None:
    path, plan_path = sys.argv[1], sys.argv[2]
    with open(plan_path) as f:
        plan = json.load(f)
    n = plan["n_frames"]
    mean = np.asarray(plan["mean"], dtype=np.float32)
    std = np.maximum(np.asarray(plan["std"], dtype=np.float32), np.float32(1e-4))
    checksum = 0.0
    with h5py.File(path, "r") as f:
        datasets = [(f[name], comps) for name, comps in plan["fields"]]
        start = time.perf_counter()
        for b, t0 in plan["windows"]:
            parts = []
            for ds, comps in datasets:
                x = ds[b, t0 : t0 + n]
                parts.append(x[..., None] if comps == 1 else x)
            window = np.concatenate(parts, axis=-1)
            window = (window - mean) / std
            checksum += float(window[0, 0, 0, 0])
        elapsed = time.perf_counter() - start
    count = len(plan["windows"])
    print(
        json.dumps(
            {
                "windows": count,
                "seconds": elapsed,
                "windows_per_s": count / elapsed,
                "bytes_per_window": int(window.nbytes),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "checksum": checksum,
            }
        )
    )


if __name__ == "__main__":
    main()
