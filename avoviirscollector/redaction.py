"""Hide credentials in any text that may leave the process: logs, mails, errors, state files.

GINA_URL and TLE_URL may carry ``user:password@`` (or a bare token) and query keys such
as ``token=``. Every log line, every mailed record, the one-line settings error on
stderr and the URL kept in ``state/tle.json`` pass through :func:`redact`. It errs on
the side of hiding: a URL whose path holds an ``@`` loses the part before it, which is
a small price next to a password in ``docker logs``.

It sits at the bottom of the layers (beside settings) because a settings error must be
redacted before the logging of any program is set up.
"""

from __future__ import annotations

import re

HIDDEN = "***"

#: scheme://USERINFO@ — any scheme, also a mistyped one (``htp://``). USERINFO runs to the
#: last ``@`` of the token, so an ``@`` typed inside a password is hidden with it.
_USERINFO = re.compile(r"""(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s'"<>]*)@""", re.I)
#: user:password@host without a scheme (a URL typed without ``http://``).
_BARE = re.compile(r"(?<![\w/:@.+-])(?P<user>[\w.+-]+):(?P<password>[^\s@/:]+)@(?=[\w\[])")
#: password=..., token=..., apikey=... in queries and key=value text.
_KEYS = re.compile(
    r"(?P<keep>\b(?:pass(?:word|wd)?|token|secret|api_?key|auth|access_token)=)[^&\s\"']+",
    re.I,
)


def _userinfo(match: re.Match) -> str:
    userinfo = match.group("userinfo")
    user, colon, _ = userinfo.partition(":")
    # user:password -> user:***; :password -> :***; TOKEN (no colon) -> ***.
    keep = f"{user}:" if colon and "/" not in user else ""
    return f"{match.group('scheme')}{keep}{HIDDEN}@"


def redact(text: str) -> str:
    """``text`` with every credential that may ride along in a URL or key=value replaced."""
    if "@" not in text and "=" not in text:
        return text  # every pattern needs one of them: most log lines cost two scans, not three
    text = _USERINFO.sub(_userinfo, text)
    text = _BARE.sub(lambda m: f"{m.group('user')}:{HIDDEN}@", text)
    return _KEYS.sub(lambda m: f"{m.group('keep')}{HIDDEN}", text)
