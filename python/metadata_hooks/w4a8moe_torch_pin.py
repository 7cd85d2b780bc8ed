"""The wheel's dependencies, computed when it is built (pyproject.toml's tool.scikit-build.metadata.dependencies).

The extension is compiled against the torch that the building Python imports, and its C++ ABI holds only with that
build, which w4a8moe/__init__.py checks at import; the wheel requires exactly that version, so that pip refuses to
install it beside another torch (or to swap the torch it runs with) instead of the import failing later.
"""


def dynamic_metadata(field, settings=None):
    if field != "dependencies":
        raise RuntimeError(f"w4a8moe_torch_pin provides the dependencies field only, not {field!r}")
    if settings:
        raise RuntimeError(f"w4a8moe_torch_pin takes no settings, got {sorted(settings)}")
    from importlib.metadata import version

    # The installed distribution's version, which pip compares against, not torch.__version__: PyPI's wheels add a
    # local label there (2.11.0+cu130) that their metadata (2.11.0) lacks, and no installed torch would match it.
    return [f"torch=={version('torch')}"]
