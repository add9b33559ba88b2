"""Functions the executor tests run inside worker processes (private: not scanned for claims)."""

from __future__ import annotations

import os


def thread_settings(_=None) -> dict:
    """torch's intra-op thread count and the OpenMP/BLAS variables of this process."""
    import torch

    return {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS")}
