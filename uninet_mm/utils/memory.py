"""Memory that autograd keeps: what memory-efficient training functions cut, counted
independently of the allocator and of other processes."""
import torch

__all__ = ['saved_tensor_bytes']


def saved_tensor_bytes(fn, params=()):
    """Run ``fn()`` and count the bytes of the tensors autograd saves for backward meanwhile
    (each storage once, without the storages of ``params``). Returns ``(fn(), bytes)``."""
    seen, skip = {}, {p.untyped_storage().data_ptr() for p in params}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())
