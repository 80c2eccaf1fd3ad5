"""Generate the configuration reference of docs/operations.md from the settings classes.

    .venv/bin/python deploy/tools/config_reference.py          # rewrite the section
    .venv/bin/python deploy/tools/config_reference.py --check  # exit 1 if the doc is stale

Every field of `ServiceSettings` and of each service's subclass becomes a row: its variable
(LOOPML_<FIELD>), its default and the `#:` comment written above it in the class.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

from loopml.client.config import SERVICES
from loopml.runtime.migrate import settings_class
from loopml.runtime.settings import DEFAULT_DATA_DIR, ServiceSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BEGIN = "<!-- BEGIN GENERATED CONFIGURATION REFERENCE (deploy/tools/config_reference.py) -->"
END = "<!-- END GENERATED CONFIGURATION REFERENCE -->"
_FIELD = re.compile(r"^    (\w+)\s*:\s*[^=]+?(?:=.*)?$")


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the `#:` comment above it (a field right under a commented one shares it)."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    previous = ""
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", "@", "#")):
            name = match.group(1)
            shared = previous and (previous.split("_")[0] == name.split("_")[0]
                                   or previous.endswith("_address") and name.endswith("_address"))
            comments[name] = " ".join(pending) if pending else (comments.get(previous, "") if shared else "")
            previous = name
        else:
            previous = ""
        pending = []
    return comments


def _default(cls: type, name: str) -> str:
    field = cls.model_fields[name]
    value = field.get_default(call_default_factory=True)
    if isinstance(value, Path) and value == DEFAULT_DATA_DIR:
        return "`~/.loopml`"
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _rows(cls: type, names: list[str], comments: dict[str, str]) -> list[str]:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name in names:
        text = comments.get(name, "").replace("|", "\\|")
        rows.append(f"| `LOOPML_{name.upper()}` | {_default(cls, name)} | {text} |")
    return rows


def render() -> str:
    base_comments = field_comments(ServiceSettings)
    lines = [BEGIN, "", "### Every service", "",
             "Read by all five services (`loopml.runtime.settings.ServiceSettings`).", ""]
    lines += _rows(ServiceSettings, list(ServiceSettings.model_fields), base_comments)
    for service in SERVICES:
        cls = settings_class(service)
        comments = {**base_comments}
        for klass in reversed(cls.__mro__):
            if issubclass(klass, ServiceSettings) and klass is not ServiceSettings:
                comments.update({k: v for k, v in field_comments(klass).items() if v or k not in comments})
        own = [n for n in cls.model_fields if n not in ServiceSettings.model_fields
               or cls.model_fields[n].default != ServiceSettings.model_fields[n].default]
        lines += ["", f"### {service} (`{cls.__module__}.{cls.__name__}`)", "",
                  "Its own settings, and the shared ones whose default it changes.", ""]
        lines += _rows(cls, own, comments)
    lines += ["", END]
    return "\n".join(lines)


def updated(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render() + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/operations.md is stale")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{DOC} is stale: run deploy/tools/config_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
