"""What the PyTorch benchmark scripts (torch_train.py, torch_sampling.py) report about how torch runs here.

Debian's python3-torch is built with BLAS_INFO=generic and links libblas.so.3, which resolves to the reference BLAS
(libblas3) on a bare system and to OpenBLAS once libopenblas0-pthread is installed (it registers itself as the
libblas.so.3 alternative). The loaded library, not the build setting, decides the speed of nn.Linear and matmul.
"""

import torch


def blas_library():
    """The BLAS shared library this process loaded (from /proc/self/maps), or "unknown"."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
        return sorted(paths)[0] if paths else "unknown"
    except OSError:
        return "unknown"


def blas_build():
    """The BLAS torch was built against, from torch.__config__.show() (BLAS_INFO=...)."""
    for part in torch.__config__.show().replace(",", " ").split():
        if part.startswith("BLAS_INFO="):
            return part
    return "unknown"
