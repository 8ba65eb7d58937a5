"""Errors that are the user's to fix: scripts print their message as one line and exit with status 2."""


class UserError(Exception):
    """Bad input from the user (a path, a name, an option, a manifest). The message says what to do."""


class NoDataError(UserError, FileNotFoundError):
    """No usable clips where the user pointed."""


class MissingPackageError(UserError, ImportError):
    """An optional package an encoder needs is not installed."""


def require(module: str, pip_name: str | None = None, why: str = ""):
    """Import an optional module, or raise MissingPackageError saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingPackageError(f"{why + ' needs ' if why else ''}{pip_name or module}: "
                                  f"pip install {pip_name or module} ({err})") from err


class HubUnavailableError(UserError):
    """Pretrained weights that come from a model hub could not be fetched (offline, or no such model)."""
