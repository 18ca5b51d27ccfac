"""The application layer's pure core: the app spec, its validation, and plans (docs/app-spec.md).

No cluster calls here: the observed world comes in as data (`Observed`, `Running`).
"""
