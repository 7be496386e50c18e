"""Export schemas/ (a JSON Schema per event type + asyncapi.yaml). `--check` fails when stale.

python tools/export_schemas.py            # write schemas/ (what `make schemas` runs)
python tools/export_schemas.py --check    # exit 1 naming the stale files
python tools/export_schemas.py --out DIR  # somewhere else
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gridloop_contracts.export import export, stale

OUT = Path(__file__).resolve().parent.parent / "schemas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.check:
        bad = stale(out)
        if bad:
            print(f"stale files under {out} (run `make schemas`):", *bad, sep="\n  ")
            return 1
        print("schemas are up to date")
        return 0
    changed = export(out)
    print(f"{len(changed)} file(s) changed under {out}", *changed, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
