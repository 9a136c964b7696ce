"""A polite NCBI E-utilities client: ESearch on the history server, EFetch in batches.

Politeness: every request (retries included) takes a slot from a machine-wide limiter
(`lupus_alerts.ratelimit`: 3/s without an API key, 10/s with one) and carries `tool` and
`email`. Every request is a POST (E-utilities accept POST for every call), so the API key and the
address travel in the body and never in a URL: not in urllib3's debug log, not in the text of
`requests`' errors, not in a proxy's access log. Error text is redacted all the same
(`redact`): NCBI's 429 and "API key invalid" bodies quote the key.

429, 5xx, timeouts, dropped connections and truncated bodies are retried with exponential
back-off and full jitter, never sooner than `Retry-After`; any other 4xx is raised at once. An
error sent with HTTP 200 (JSON `ERROR`, XML `<ERROR>` or a non-empty `ErrorList`) raises
`EutilsResponseError`: it is never mistaken for an empty result.

Windows are searched on the creation date (`datetype=crdt`), which E-utilities only knows to the
day: `mindate`/`maxdate` are inclusive days. A window whose count reaches ESearch's cap (9,999)
is bisected by days until each part is under it; a single day at the cap is fetched by paging the
history set with `retstart` (EFetch pages past 9,999) and the record count is checked, so a window
is never silently truncated. See docs/pubmed.md.

Request building and response checking are pure functions; `EutilsClient._request` does the I/O.
The package (docs/architecture.md): `errors` (the `EutilsError`s), `protocol` (the pure half:
parameters, reading ESearch, checking EFetch, window and batch arithmetic) and `client` (the I/O:
`EutilsClient`, its retry timing and the redaction of what it shows).
"""

from lupus_alerts.eutils.client import (
    DEFAULT_TOOL,
    MAX_BODY_BYTES,
    REDACTED,
    RETRYABLE_STATUS,
    SECRET_PARAMS,
    EutilsClient,
    backoff_delay,
    redact,
    retry_after_seconds,
)
from lupus_alerts.eutils.errors import (
    EutilsError,
    EutilsHTTPError,
    EutilsResponseError,
    EutilsTransportError,
    TruncatedBody,
    WindowTruncatedError,
)
from lupus_alerts.eutils.protocol import (
    ESEARCH_CAP,
    SearchResult,
    batches_needed,
    check_efetch,
    count_records,
    esearch_params,
    eutils_date,
    parse_esearch,
    split_days_into,
)

__all__ = [
    "DEFAULT_TOOL",
    "ESEARCH_CAP",
    "MAX_BODY_BYTES",
    "REDACTED",
    "RETRYABLE_STATUS",
    "SECRET_PARAMS",
    "EutilsClient",
    "EutilsError",
    "EutilsHTTPError",
    "EutilsResponseError",
    "EutilsTransportError",
    "SearchResult",
    "TruncatedBody",
    "WindowTruncatedError",
    "backoff_delay",
    "batches_needed",
    "check_efetch",
    "count_records",
    "esearch_params",
    "eutils_date",
    "parse_esearch",
    "redact",
    "retry_after_seconds",
    "split_days_into",
]
