"""Why a transfer did not happen: refused for good, unavailable for now, or canceled.

Every message is one line and shows a URL only through ``ffrtmp.urls.redact``, so neither a
presigned signature nor a password reaches a log line, a failure reason or ``jobs show``.
"""

from __future__ import annotations

from ffrtmp.urls import redact


class TransferError(Exception):
    """A transfer that did not complete; ``str()`` is one line with the URL redacted."""


class Refused(TransferError):
    """The server said no for good (a 4xx other than 408/429): trying again won't help.

    ``url`` is the redacted URL: this error becomes a job's failure reason as it is.
    """

    def __init__(self, method: str, url: str, status: int, reason: str) -> None:
        self.method, self.url, self.status, self.reason = method, redact(url), status, reason
        super().__init__(f"{method} {self.url} -> {status} {reason}".rstrip())


class Unavailable(TransferError):
    """The transfer may succeed later: no connection, a timeout, a 5xx, 408 or 429."""

    def __init__(self, method: str, url: str, why: str) -> None:
        self.method, self.url, self.why = method, redact(url), why
        super().__init__(f"{method} {self.url}: {why}")


class Canceled(TransferError):
    """The caller's cancel event was set while the transfer ran."""

    def __init__(self, method: str, url: str) -> None:
        self.method, self.url = method, redact(url)
        super().__init__(f"{method} {self.url}: canceled")
