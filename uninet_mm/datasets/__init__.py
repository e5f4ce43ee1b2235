
from . import demo_shapes  # noqa: F401  (seeded demo data generator)
from .digits import MNISTDigits, SklearnDigits  # noqa: F401  (embedded digit datasets)
from .digit_pairs import MNISTDigitPairs  # noqa: F401  (two-digit canvases)
