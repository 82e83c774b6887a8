"""Write the code and the docs that the settings table generates, so they cannot drift from it.

``python -m ffrtmp.settings.codegen`` rewrites ``src/ffrtmp/settings/__init__.py`` (one frozen,
typed dataclass per process) and the table in ``docs/configuration.md``; unit tests fail
while either is stale. A field's type is its parser's return annotation.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from ffrtmp import config

MODULE = Path(__file__).with_name("__init__.py")
DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
DOC_BEGIN, DOC_END = "<!-- settings:begin -->\n", "<!-- settings:end -->"

HEADER = '''"""The typed, frozen settings of each process, as ``ffrtmp.config.load`` returns them.

Generated from ``ffrtmp.config.SETTINGS`` and ``SECRETS`` by ``python -m ffrtmp.settings.codegen``;
do not edit (a unit test fails while this file is stale). ``<Process>Config`` holds the table's
values; ``<Process>Settings`` adds the secrets read from the token files.
"""

from __future__ import annotations

from ffrtmp.settings.base import SettingsBase, settings_class
'''


def _type_of(setting: config.Setting) -> str:
    annotation = inspect.get_annotations(setting.parse)["return"]
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _class(name: str, base: str, doc: str, fields: list[tuple[str, str]]) -> str:
    lines = ["", "", "@settings_class", f"class {name}({base}):", f'    """{doc}"""', ""]
    lines += [f"    {field}: {kind}" for field, kind in fields]
    return "\n".join(lines) + "\n"


def _process_classes(process: str) -> str:
    title = process.capitalize()
    table = [(s.name, _type_of(s)) for s in config.settings_for(process)]
    secrets = [(s.name, "tuple[str, ...]" if s.every else "str") for s in config.secrets_for(process)]
    return (_class(f"{title}Config", "SettingsBase", f"The {process} process's values from the table.", table)
            + _class(f"{title}Settings", f"{title}Config",
                     f"The {process} process's values with its secrets.", secrets))


def _mapping(name: str, suffix: str) -> str:
    rows = "".join(f'    "{p}": {p.capitalize()}{suffix},\n' for p in config.PROCESSES)
    return f"{name}: dict[str, type[SettingsBase]] = {{\n{rows}}}\n"


def source() -> str:
    """The text ``src/ffrtmp/settings/__init__.py`` must hold."""
    classes = "".join(_process_classes(p) for p in config.PROCESSES)
    return (HEADER + classes + "\n\n" + _mapping("CONFIG_CLASSES", "Config") + "\n"
            + _mapping("SETTINGS_CLASSES", "Settings"))


def documented(text: str) -> str:
    """``docs/configuration.md``'s text with its table regenerated between the markers."""
    head, rest = text.split(DOC_BEGIN, 1)
    return head + DOC_BEGIN + config.markdown_table() + DOC_END + rest.split(DOC_END, 1)[1]


def main() -> None:
    MODULE.write_text(source(), encoding="utf-8")
    DOCS.write_text(documented(DOCS.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
