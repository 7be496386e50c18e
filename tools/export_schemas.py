"""Export schemas/ (a JSON Schema per event type + asyncapi.yaml) and the integrators'
contract page rendered from them (served by the console at /contract/). `--check` fails when
any is stale.

python tools/export_schemas.py            # write schemas/ and the page (what `make schemas` runs)
python tools/export_schemas.py --check    # exit 1 naming the stale files
python tools/export_schemas.py --out DIR  # somewhere else (the page: DIR/contract.html)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from gridloop_contracts.export import ASYNCAPI_FILE, export, stale
from gridloop_contracts.page import render_page

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "schemas"
# Served by the console, public: GET /contract/.
PAGE = ROOT / "services/console/src/gridloop_console/static/contract/index.html"


def read_contract(out: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The exported AsyncAPI document and the JSON Schemas, as files in `out` have them."""
    asyncapi = yaml.safe_load((out / ASYNCAPI_FILE).read_text(encoding="utf-8"))
    schemas = {
        f"json/{p.name}": json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((out / "json").glob("*.json"))
    }
    return asyncapi, schemas


def page_text(out: Path = OUT) -> str:
    """The contract page, rendered from the exported files in `out`."""
    return render_page(*read_contract(out))


def page_path(out: Path) -> Path:
    return PAGE if out.resolve() == OUT.resolve() else out / "contract.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    page = page_path(out)
    if args.check:
        bad = stale(out)
        if not bad and (not page.is_file() or page.read_text(encoding="utf-8") != page_text(out)):
            bad.append(str(page))
        if bad:
            print(f"stale files under {out} (run `make schemas`):", *bad, sep="\n  ")
            return 1
        print("schemas are up to date")
        return 0
    changed = export(out)
    text = page_text(out)
    if not page.is_file() or page.read_text(encoding="utf-8") != text:
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text, encoding="utf-8")
        changed.append(str(page.relative_to(ROOT) if page.is_relative_to(ROOT) else page))
    print(f"{len(changed)} file(s) changed under {out}", *changed, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
