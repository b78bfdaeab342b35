"""Backend URLs: which scheme each port accepts, and how a URL is split and shown in logs."""

from __future__ import annotations

from collections.abc import Mapping

MASK = "**********"

# The URL schemes each port accepts, the one list of them: worker/wiring.py has a backend factory
# for each (a unit test holds the two together). Error messages list them in this order.
BACKEND_SCHEMES: Mapping[str, tuple[str, ...]] = {
    "source": ("kafka", "dir", "video"),
    "dead_letters": ("kafka", "dir"),
    "models": ("s3", "dir"),
    "scores": ("redis", "file"),
    "heatmaps": ("s3", "dir"),
    "dead_letter_payloads": ("s3", "dir"),
}


def parse_backend_url(url: str) -> tuple[str, str]:
    """``"kafka://"`` -> ``("kafka", "")``, ``"dir://./frames"`` -> ``("dir", "./frames")``."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme:
        raise ValueError(f"{url!r} is not a backend URL: expected SCHEME://LOCATION")
    return scheme.lower(), rest


def check_backend_url(field: str, url: str) -> str:
    """``url`` if its scheme is one ``BACKEND_SCHEMES`` allows for the port ``field``."""
    scheme, _ = parse_backend_url(url)
    allowed = BACKEND_SCHEMES[field]
    if scheme not in allowed:
        choices = ", ".join(f"{s}://" for s in allowed)
        raise ValueError(f"{field}: unknown scheme {scheme!r} in {url!r}; allowed: {choices}")
    return url


def mask_url(url: str) -> str:
    """The URL with the password of its user part masked; anything else unchanged."""
    scheme, separator, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not separator or not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{colon and ':' + MASK}@{host}{slash}{path}"
