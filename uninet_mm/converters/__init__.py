"""Checkpoint converters: the released UniNet layout -> ours (``official``), and the
released-layout reference model used by the parity test and the benchmark (``released``)."""
from .official import block_plan, convert_official, is_official

__all__ = ['block_plan', 'convert_official', 'is_official']
