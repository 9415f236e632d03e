"""`syncctl schema`: write (or check) the events' JSON Schemas."""

from __future__ import annotations

from pathlib import Path

from coordinator.entrypoints import Commands


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("schema", help="write the events' JSON Schemas")
    parser.add_argument("--out", default="docs/schemas", help="directory to write into")
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.set_defaults(run=lambda settings, args: run(Path(args.out), args.check))


def run(out_dir: Path, check: bool) -> int:
    from coordinator.schema_export import export_schemas

    return export_schemas(out_dir, check=check)
