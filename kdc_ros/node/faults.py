"""Device faults seen by the inference worker: out of memory on one frame must cost that frame only."""
from __future__ import annotations

import sys


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch.OutOfMemoryError (CUDA) and the RuntimeErrors other allocators raise (MPS, CPU)."""
    torch = sys.modules.get("torch")  # the node imports torch only when it builds its own model
    if torch is not None and isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, (RuntimeError, MemoryError)) and (
        isinstance(err, MemoryError) or "out of memory" in text or "not enough memory" in text)


def release_cached_memory() -> None:
    """Give the CUDA caching allocator's free blocks back, so the next (smaller) frame finds room."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
