"""Type-check the lite firmware (main.py, tbox_lite/) against the MicroPython stubs (``make lint``).

The stubs come from the ``lint`` extra: ``micropython-stm32-stubs`` (``machine``, ``pyb``, ``socket``,
``time`` ... as top-level .pyi files) and ``micropython-stdlib-stubs`` (MicroPython's reduced
typeshed). Top-level .pyi files in site-packages are not a PEP 561 package, so mypy would not see
them there: they are copied into a temporary directory put on ``mypy_path``, and the stdlib stubs are
used as the custom typeshed. Imported modules (the stubs, ``agent.protocol.wire``) are followed
silently: only the firmware's own files are reported.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
BOARD_STUBS = "micropython-stm32-stubs"
STDLIB_STUBS = "micropython-stdlib-stubs"


def _copy_stubs(dist: metadata.Distribution, dest: Path) -> list[str]:
    """Copy the top-level .pyi files of ``dist`` into ``dest``; returns their module names."""
    modules = []
    for item in dist.files or ():
        if item.suffix != ".pyi" or str(item).startswith("stdlib/"):
            continue
        target = dest / str(item)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(str(item.locate())), target)
        name = str(item)[: -len(".pyi")].replace("/", ".")
        modules.append(name.removesuffix(".__init__"))
    return modules


def _table(dest: Path) -> None:
    """A table generated from the repo's mapping, for ``import tbox_table`` in main.py."""
    from agent.boardgen import compile_table
    from agent.canbus.mapping import load_mapping

    (dest / "tbox_table.py").write_text(compile_table(load_mapping(ROOT / "dbc" / "tbox_ev.toml")))


def main() -> int:
    try:
        board = metadata.distribution(BOARD_STUBS)
        stdlib = metadata.distribution(STDLIB_STUBS)
    except metadata.PackageNotFoundError as exc:
        print(f"typecheck: {exc.name} is not installed: pip install -e '.[lint]'", file=sys.stderr)
        return 1
    from mypy import api

    typeshed = Path(str(stdlib.locate_file("stdlib"))).parent
    with tempfile.TemporaryDirectory() as tmp:
        stubs = Path(tmp) / "stubs"
        modules = _copy_stubs(board, stubs) + _copy_stubs(stdlib, stubs)  # + _mpy_shed, shared
        _table(stubs)
        config = Path(tmp) / "mypy.ini"
        config.write_text(
            "[mypy]\n"
            "python_version = 3.11\n"
            "strict = True\n"
            "warn_unused_ignores = True\n"
            "no_site_packages = True\n"
            "follow_imports = silent\n"
            "explicit_package_bases = True\n"
            f"custom_typeshed_dir = {typeshed}\n"
            f"mypy_path = {stubs}:{HERE}:{ROOT}\n"
            f"cache_dir = {ROOT / '.mypy_cache' / 'micropython'}\n"
            # the stubs are not strict-clean themselves (and stubs are always followed): not ours to fix
            f"[mypy-{','.join(sorted(modules))}]\n"
            "ignore_errors = True\n"
        )
        out, err, status = api.run(
            ["--config-file", str(config), str(HERE / "main.py"), str(HERE / "tbox_lite")]
        )
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
