"""Write or check the checked-in JSON Schema files of the event contracts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import EVENT_TYPES, EventData

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_for(cls: type[EventData]) -> dict[str, Any]:
    schema = cls.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://netvaerk.danskit.example.org/schemas/{cls.event_type()}.json"
    schema["x-cloudevents-type"] = cls.event_type()
    schema["x-nats-subject"] = f"{cls.subject_prefix()}.<{cls.subject_field}>"
    return schema


def render(cls: type[EventData]) -> str:
    return json.dumps(schema_for(cls), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    write = "--write" in argv
    stale = []
    SCHEMA_DIR.mkdir(exist_ok=True)
    for type_, cls in sorted(EVENT_TYPES.items()):
        path = SCHEMA_DIR / f"{type_}.json"
        text = render(cls)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path.name)
            if write:
                path.write_text(text, encoding="utf-8")
    if stale and not write:
        print("schemas out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("wrote " if write else "up to date: ") + ", ".join(stale or sorted(EVENT_TYPES)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
