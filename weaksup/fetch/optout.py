"""Opt-outs a fetch honours by default: robots.txt per host, ``X-Robots-Tag`` directives
that refuse AI or indexing use, and the user's own list of URL or domain patterns."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from weaksup import uris
from weaksup.errors import InputError

#: The product token robots.txt rules and ``X-Robots-Tag`` prefixes name weaksup by.
AGENT_TOKEN = "weaksup"

#: ``X-Robots-Tag`` directives that opt a resource out of being collected for training.
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai", "novideoai", "noindex", "none"})

#: Directives that may carry a value after a colon (so "max-snippet: 20" is not a user agent).
_VALUED_DIRECTIVES = frozenset({"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"})


def x_robots_opt_out(values: list[str]) -> str | None:
    """The opt-out directive among ``X-Robots-Tag`` header values that applies to weaksup
    (generic, or prefixed ``weaksup:`` / ``*:``), or None."""
    for value in values:
        head, sep, rest = value.partition(":")
        agent = head.strip().lower()
        if sep and agent not in _VALUED_DIRECTIVES and " " not in agent and "," not in agent:
            if agent not in (AGENT_TOKEN, "*"):
                continue  # a rule for another crawler (e.g. "googlebot: noindex")
            value = rest
        for directive in value.split(","):
            token = directive.strip().lower()
            if token in OPT_OUT_DIRECTIVES:
                return token
    return None


@dataclass(frozen=True)
class OptOutList:
    """URL or domain patterns a user does not want fetched, one per line of a text file
    (``#`` starts a comment): ``example.com`` (the domain and its subdomains), a URL prefix
    (``https://example.com/private/``), or a shell pattern with ``*`` on the whole URL."""

    source: str = ""
    patterns: tuple[tuple[int, str], ...] = ()

    @classmethod
    def read(cls, path: Path | str | None) -> OptOutList:
        if path is None:
            return cls()
        text = uris.read_input_bytes(path, "opt-out list", max_bytes=64 << 20).decode("utf-8", "replace")
        patterns = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if any(c.isspace() for c in line):
                raise InputError(f"{uris.display(path)}:{n}: one pattern per line, got {line!r}")
            patterns.append((n, line))
        return cls(uris.display(path), tuple(patterns))

    def match(self, url: str) -> str | None:
        """Which line of the list opts ``url`` out ("FILE:LINE PATTERN"), or None."""
        host = (urlsplit(url).hostname or "").lower()
        for n, pattern in self.patterns:
            p = pattern.lower()
            if "*" in p or "?" in p:
                hit = fnmatch.fnmatchcase(url.lower(), p) or ("/" not in p and fnmatch.fnmatchcase(host, p))
            elif "://" in p:
                hit = url.lower().startswith(p)
            else:
                domain = p.strip(".")
                hit = host == domain or host.endswith("." + domain)
            if hit:
                return f"{self.source}:{n} {pattern}"
        return None


def parse_robots(status: int | None, text: str) -> RobotFileParser:
    """A robots.txt answer as RFC 9309 reads it: 2xx = its rules; 4xx (none published) =
    everything allowed; 5xx or unreachable (``status`` None) = nothing allowed for now."""
    parser = RobotFileParser()
    if status is not None and 200 <= status < 300:
        parser.parse(text.splitlines())
    elif status is not None and 400 <= status < 500:
        parser.allow_all = True
    else:
        parser.disallow_all = True
    return parser


def robots_allows(parser: RobotFileParser, url: str) -> bool:
    return parser.can_fetch(AGENT_TOKEN, url)
