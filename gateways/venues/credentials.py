"""A venue's API key and secret: from the environment, or from a file that only the
daemon's user can read. Never from the TOML, never logged (``SecretStr`` prints as
``**********``), never sent to a client.

Environment: ``ORCHESTRATOR_VENUE_<NAME>_API_KEY``, ``..._SECRET`` and, for the
exchanges that need one, ``..._PASSWORD`` (``NAME`` upper-cased). File: TOML with
``api_key``, ``secret`` and ``password``; a relative path is looked up in
``$CREDENTIALS_DIRECTORY``, where systemd's ``LoadCredential=`` puts it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from gateways.venues.config import CREDENTIAL_ENV_PREFIX, VenueConfig
from orchestrator.model.errors import ConfigError


@dataclass(frozen=True, slots=True)
class VenueCredentials:
    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None

    def ccxt_fields(self) -> dict[str, str]:
        """What ccxt's constructor takes: the one place the secrets are unwrapped."""
        fields = {
            "apiKey": self.api_key.get_secret_value(),
            "secret": self.secret.get_secret_value(),
        }
        if self.password is not None:
            fields["password"] = self.password.get_secret_value()
        return fields


def environment_names(name: str) -> tuple[str, str, str]:
    """The variables of venue ``name``: api key, secret, password."""
    stem = CREDENTIAL_ENV_PREFIX + name.upper()
    return f"{stem}_API_KEY", f"{stem}_SECRET", f"{stem}_PASSWORD"


def load_credentials(
    name: str, config: VenueConfig, environ: Mapping[str, str] | None = None
) -> VenueCredentials:
    """The credentials of venue ``name``, or ConfigError saying what is missing or unsafe."""
    env = os.environ if environ is None else environ
    if config.credentials_file is not None:
        return _from_file(name, credentials_path(config.credentials_file, env))
    key_var, secret_var, password_var = environment_names(name)
    key, secret = env.get(key_var), env.get(secret_var)
    if not key or not secret:
        missing = [var for var, value in ((key_var, key), (secret_var, secret)) if not value]
        raise ConfigError(
            f"venue {name} has no credentials: set {' and '.join(missing)}, or "
            f"venues.{name}.credentials_file"
        )
    password = env.get(password_var)
    return VenueCredentials(
        SecretStr(key), SecretStr(secret), SecretStr(password) if password else None
    )


def credentials_path(path: Path, environ: Mapping[str, str]) -> Path:
    """``path``, or a relative one inside ``$CREDENTIALS_DIRECTORY`` when systemd set it."""
    path = path.expanduser()
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and directory:
        return Path(directory) / path
    return path


def _from_file(name: str, path: Path) -> VenueCredentials:
    _refuse_shared(name, path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        message = f"venue {name}: credentials file {path} cannot be read: {exc.strerror}"
        raise ConfigError(message) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        # Not the parser's message: it can quote the file, secret and all.
        raise ConfigError(f"venue {name}: credentials file {path} is not valid TOML") from None
    fields = {key: data.get(key) for key in ("api_key", "secret", "password")}
    wrong = sorted(set(data) - set(fields))
    missing = [
        key for key in ("api_key", "secret") if not isinstance(fields[key], str) or not fields[key]
    ]
    if wrong or missing:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown keys {', '.join(wrong)}"] if wrong else []
        raise ConfigError(f"venue {name}: credentials file {path}: {'; '.join(problems)}")
    password = fields["password"]
    return VenueCredentials(
        SecretStr(str(fields["api_key"])),
        SecretStr(str(fields["secret"])),
        SecretStr(password) if isinstance(password, str) and password else None,
    )


def _refuse_shared(name: str, path: Path) -> None:
    """A secret others can read is already leaked: refuse it rather than use it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"venue {name}: credentials file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"venue {name}: credentials file {path}: {exc.strerror}") from None
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"venue {name}: credentials file {path} belongs to another user; "
            "it must be the daemon user's own"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"venue {name}: credentials file {path} is readable or writable by others "
            f"(mode {stat.S_IMODE(info.st_mode):o}); chmod 600 it"
        )
