from .hooks import InferenceFormHook  # noqa: F401
