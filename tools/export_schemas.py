"""Export schemas/ (JSON Schema per event type + AsyncAPI). `--check` fails when stale."""

from __future__ import annotations

import sys
from pathlib import Path

from gridloop_contracts.export import export, stale

OUT = Path(__file__).resolve().parent.parent / "schemas"

if __name__ == "__main__":
    if "--check" in sys.argv:
        bad = stale(OUT)
        if bad:
            print("stale schema files (run `make schemas`):", *bad, sep="\n  ")
            sys.exit(1)
        print("schemas are up to date")
    else:
        changed = export(OUT)
        print(f"wrote {len(changed)} changed file(s) under {OUT.name}/")
