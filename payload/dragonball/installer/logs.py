"""The install log (/var/log/dragonball/install.log), with every secret masked.

`SecretFilter` masks the secrets it was given (the admin password, the enrollment
code, a registry password a later step adds) in every record a handler emits: the
message with its arguments, and the traceback text. It sits on each handler of the
root logger, so no output path of `logging` can show a secret.
"""

from __future__ import annotations

import logging
import os
import re

from dragonball.shared import paths

LOG_DIR = paths.LOG_DIR
MASK = "********"
#: Shorter secrets are not masked: masking "ab" would garble the whole log.
MIN_SECRET = 4
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SecretFilter(logging.Filter):
    """Replaces each known secret (in any letter case) with ********."""

    def __init__(self, secrets=()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None = None, *variants: str) -> None:
        """Mask `secret` and its `variants` (the same code typed without dashes...)."""
        for text in (secret, *variants):
            if text and len(text) >= MIN_SECRET:
                self._secrets.add(text)
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered), re.IGNORECASE)

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern and text else text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        record.msg, record.args = self.mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def enrollment_variants(code: str | None) -> tuple:
    """The ways a code may show up: as given, without dashes."""
    if not code:
        return ()
    return (code, code.replace("-", ""), code.replace("-", " "))


def open_log(name: str, secrets: SecretFilter, log_dir: str = LOG_DIR) -> logging.Handler:
    """Log everything (debug up) to `<log_dir>/<name>` (0600), masked; the other handlers of
    the root logger keep their level and get the mask too."""
    os.makedirs(log_dir, mode=0o755, exist_ok=True)
    path = os.path.join(log_dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    for other in root.handlers:
        if other.level == logging.NOTSET:
            other.setLevel(root.level)
        other.addFilter(secrets)
    handler.addFilter(secrets)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return handler


def close_log(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()
