"""The space tokens in force: from `LOGSPACE_SPACE_TOKENS` and an optional tokens file.

The file is re-read on SIGHUP and whenever it changes. A reload swaps one immutable
`SpaceTokens` for another, so a request always sees one consistent set and none is dropped;
a file that does not parse is reported and the tokens in force stay.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from logspace.settings import Settings, SettingsError
from logspace.spaces.grants import (
    Access,
    Grant,
    SpaceTokens,
    parse_space_tokens,
    token_from_headers,
)

__all__ = ["TokenRegistry", "load_tokens"]

log = logging.getLogger(__name__)

FILE_SETTING = "LOGSPACE_SPACE_TOKENS_FILE"


def load_tokens(settings: Settings) -> dict[str, Grant]:
    """Tokens from the settings and the tokens file; `SettingsError` if none or conflicting."""
    grants = dict(settings.space_tokens)
    if settings.space_tokens_file:
        try:
            text = Path(settings.space_tokens_file).read_text()
        except OSError as error:
            raise SettingsError(
                f"{FILE_SETTING}={settings.space_tokens_file!r} cannot be read: {error}"
            ) from None
        entries = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        try:
            file_grants = parse_space_tokens(FILE_SETTING, ",".join(entries))
        except ValueError as error:
            raise SettingsError(str(error)) from None
        for token, grant in file_grants.items():
            if grants.get(token, grant) != grant:
                raise SettingsError(
                    f"{FILE_SETTING}: a token of space {grant.space!r} is also configured in "
                    "LOGSPACE_SPACE_TOKENS with another space or access"
                )
            grants[token] = grant
    if not grants:
        raise SettingsError(
            "No space tokens: configure at least one 'space:token' entry in LOGSPACE_SPACE_TOKENS"
            f" or {FILE_SETTING}, e.g. development:development"
        )
    return grants


class TokenRegistry:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stamp = self._file_stamp()
        self.current = SpaceTokens(load_tokens(settings))

    def space_for(self, headers: Mapping[str, str], access: Access) -> str:
        return self.current.space_for(headers, access)

    def grant_for(self, headers: Mapping[str, str]) -> Grant:
        """The grant of the request's token, whatever it allows; a 403 error without one."""
        return self.current.grant_for(token_from_headers(headers))

    def reload(self) -> bool:
        """Read the tokens again; keep the ones in force if that fails."""
        self._stamp = self._file_stamp()
        try:
            tokens = SpaceTokens(load_tokens(self._settings))
        except SettingsError as error:
            log.error("space tokens not reloaded, the previous ones stay in force: %s", error)
            return False
        self.current = tokens
        log.info("space tokens reloaded: %d tokens", len(tokens))
        return True

    def reload_if_changed(self) -> bool:
        if self._file_stamp() == self._stamp:
            return False
        return self.reload()

    async def watch(self) -> None:
        """Poll the tokens file for changes until cancelled."""
        while True:
            await asyncio.sleep(self._settings.tokens_reload_seconds)
            self.reload_if_changed()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        path = self._settings.space_tokens_file
        if not path:
            return None
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
