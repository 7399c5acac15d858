#!/usr/bin/env python3
"""HAT profiles (board/rpi/profiles/*.toml) for install.sh: validate one, print its fields, and write its
overlay lines into config.txt as one marked block (replaced in place on every run, never appended twice).

Standard library only (Python 3.11+, as on Raspberry Pi OS Bookworm): install.sh runs it before any venv.

    rpi_profile.py field PROFILE NAME          description | controller | fd | max_bitrate | interfaces
    rpi_profile.py block PROFILE               the config.txt lines
    rpi_profile.py config-txt PROFILE FILE     put the block into FILE (prints "changed" or "unchanged")

PROFILE is a name from profiles/ or a path to a .toml file. Errors: one line "profile FILE: key: reason"
on stderr, exit status 2.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEGIN = "# >>> tbox CAN HAT (board/rpi/install.sh; edits inside this block are replaced) >>>"
END = "# <<< tbox CAN HAT <<<"
CONTROLLERS = ("mcp2515", "mcp251xfd")
IFACE_RE = re.compile(r"can[0-9]{1,2}")
SPI_RE = re.compile(r"spi[0-9]-[0-9]")
OVERLAYS_2515 = ("mcp2515-can0", "mcp2515-can1")


class ProfileError(Exception):
    """A profile that cannot be used (names the file and the key)."""


def locate(profile: str) -> Path:
    """A profile name (``mcp2515-16mhz``) or a path to a TOML file."""
    if os.sep in profile or profile.endswith(".toml"):
        return Path(profile)
    return HERE / "profiles" / f"{profile}.toml"


def load(profile: str) -> dict[str, Any]:
    """Read and validate a profile; ``ProfileError`` names file and key."""
    path = locate(profile)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in (HERE / "profiles").glob("*.toml")))
        raise ProfileError(f"profile {path}: no such profile (known: {known})") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"profile {path}: {exc}") from None

    def bad(key: str, reason: str) -> ProfileError:
        return ProfileError(f"profile {path}: {key}: {reason}")

    known_keys = {"description", "controller", "fd", "max_bitrate", "channel", "extra_lines"}
    for key in data:
        if key not in known_keys:
            raise bad(key, f"unknown key (known: {', '.join(sorted(known_keys))})")
    if not isinstance(data.get("description"), str):
        raise bad("description", "required, a string")
    if data.get("controller") not in CONTROLLERS:
        raise bad("controller", f"one of {', '.join(CONTROLLERS)}")
    if not isinstance(data.get("fd", False), bool):
        raise bad("fd", "true or false")
    if data.get("fd") and data["controller"] != "mcp251xfd":
        raise bad("fd", "CAN FD needs an MCP251xFD controller; the MCP2515 is classic CAN only")
    max_bitrate = data.get("max_bitrate", 1_000_000)
    if not isinstance(max_bitrate, int) or isinstance(max_bitrate, bool) or max_bitrate <= 0:
        raise bad("max_bitrate", "a positive integer (bit/s)")
    extra = data.get("extra_lines", [])
    if not isinstance(extra, list) or not all(isinstance(x, str) and "\n" not in x for x in extra):
        raise bad("extra_lines", "an array of single-line strings")
    channels = data.get("channel")
    if not isinstance(channels, list) or not channels:
        raise bad("channel", "at least one [[channel]] table")
    seen: set[str] = set()
    for i, ch in enumerate(channels):
        where = f"channel[{i}]"
        if not isinstance(ch, dict):
            raise bad(where, "a table")
        iface = ch.get("interface")
        if not isinstance(iface, str) or not IFACE_RE.fullmatch(iface) or iface in seen:
            raise bad(f"{where}.interface", "a distinct interface name can0, can1, ...")
        seen.add(iface)
        for key in ("interrupt", "oscillator", "spi_max_hz"):
            v = ch.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise bad(f"{where}.{key}", "a non-negative integer")
        if not 0 <= ch.get("interrupt", 0) <= 53:
            raise bad(f"{where}.interrupt", "a GPIO number 0..53 (BCM numbering)")
        if not isinstance(ch.get("interrupt"), int):
            raise bad(f"{where}.interrupt", "required: the GPIO of the controller's INT pin")
        if data["controller"] == "mcp2515":
            if ch.get("overlay") not in OVERLAYS_2515:
                raise bad(f"{where}.overlay", f"one of {', '.join(OVERLAYS_2515)}")
            if not isinstance(ch.get("oscillator"), int):
                raise bad(f"{where}.oscillator", "required for the MCP2515: the crystal in Hz")
            allowed = {"interface", "overlay", "oscillator", "interrupt", "spi_max_hz"}
        else:
            if not isinstance(ch.get("spi"), str) or not SPI_RE.fullmatch(ch["spi"]):
                raise bad(f"{where}.spi", 'required: "spi<bus>-<cs>", e.g. "spi0-0"')
            allowed = {"interface", "spi", "oscillator", "interrupt", "spi_max_hz"}
        for key in ch:
            if key not in allowed:
                raise bad(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(allowed))})")
    data["_path"] = str(path)
    return data


def overlay_lines(data: dict[str, Any]) -> list[str]:
    """The config.txt lines of a validated profile."""
    lines = ["[all]", "dtparam=spi=on", *data.get("extra_lines", [])]
    for ch in data["channel"]:
        if data["controller"] == "mcp2515":
            parts = [f"dtoverlay={ch['overlay']}", f"oscillator={ch['oscillator']}",
                     f"interrupt={ch['interrupt']}"]
            if "spi_max_hz" in ch:
                parts.append(f"spimaxfrequency={ch['spi_max_hz']}")
        else:
            parts = ["dtoverlay=mcp251xfd", ch["spi"], f"interrupt={ch['interrupt']}"]
            if "oscillator" in ch:
                parts.append(f"oscillator={ch['oscillator']}")
            if "spi_max_hz" in ch:
                parts.append(f"speed={ch['spi_max_hz']}")
        lines += [f"# {ch['interface']}", ",".join(parts)]  # config.txt has no trailing comments
    return lines


def block(data: dict[str, Any]) -> str:
    """The marked block, newline-terminated."""
    name = Path(data["_path"]).stem
    return "\n".join([BEGIN, f"# profile {name}: {data['description']}", *overlay_lines(data), END]) + "\n"


def put_block(text: str, new_block: str) -> str:
    """``text`` with its tbox block replaced by ``new_block`` (appended when there is none)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN), None)
    if start is not None:
        end = next((i for i in range(start, len(lines)) if lines[i].rstrip("\n") == END), None)
        if end is None:
            raise ProfileError(f"config.txt has the line {BEGIN!r} but not {END!r}: fix it by hand")
        return "".join(lines[:start]) + new_block + "".join(lines[end + 1:])
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ("\n" if text else "") + new_block


def edit_config_txt(data: dict[str, Any], path: Path) -> bool:
    """Write the profile's block into ``path`` (created if missing); True when the file changed."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = put_block(old, block(data))
    if new == old:
        return False
    tmp = path.with_name(path.name + ".tbox-tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return True


def field(data: dict[str, Any], name: str) -> str:
    """One field as install.sh reads it."""
    if name == "interfaces":
        return " ".join(ch["interface"] for ch in data["channel"])
    if name == "fd":
        return "yes" if data.get("fd") else "no"
    if name == "max_bitrate":
        return str(data.get("max_bitrate", 1_000_000))
    if name in ("description", "controller"):
        return str(data[name])
    raise ProfileError(f"unknown field {name!r}")


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 3 and argv[0] == "field":
            print(field(load(argv[1]), argv[2]))
        elif len(argv) == 2 and argv[0] == "block":
            sys.stdout.write(block(load(argv[1])))
        elif len(argv) == 3 and argv[0] == "config-txt":
            print("changed" if edit_config_txt(load(argv[1]), Path(argv[2])) else "unchanged")
        elif len(argv) == 1 and argv[0] == "list":
            for p in sorted((HERE / "profiles").glob("*.toml")):
                print(f"{p.stem:22} {load(str(p))['description']}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (ProfileError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
