"""notifyd: account notices for a VoIP provider, from signed webhooks to email."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("notifyd")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
