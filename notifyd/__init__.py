"""notifyd: account notices for a VoIP provider, from signed webhooks to email."""


def __getattr__(name: str) -> str:
    """`notifyd.__version__`, read from the installed metadata when first asked for:
    importlib.metadata costs about 30 ms a start, which `notifyd send` (run once per call on
    a PBX, send_cli.py) and every `import notifyd.client` would otherwise pay for nothing."""
    if name != "__version__":
        raise AttributeError(f"module 'notifyd' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("notifyd")
    except PackageNotFoundError:  # running from a source tree that was not installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
