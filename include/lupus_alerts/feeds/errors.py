"""What goes wrong with a feed: the errors `fetch` and `parse` raise and `poll` records.

Every one is a `FeedError`, so the poll catches one type and stores its message for the operator.
"""

from __future__ import annotations


class FeedError(Exception):
    """A feed could not be fetched or used; the message says why, for the operator."""


class UnsafeFeedError(FeedError):
    """The body declares XML entities (an expansion bomb or external entity): refused unparsed."""


class FeedTooLargeError(FeedError):
    """The body is larger than the configured cap: refused before (or while) reading it."""
