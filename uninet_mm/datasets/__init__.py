
from . import demo_shapes  # noqa: F401  (seeded demo data generator)
from .digit_pairs import MNISTDigitPairs  # noqa: F401  (two-digit canvases)
from .digits import MNISTDigits, SklearnDigits  # noqa: F401  (embedded digit datasets)
