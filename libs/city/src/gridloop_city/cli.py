"""`gridloop-city`: import a city's GIS data and tables, check a city folder, show what a new
version changes, export a city for its GIS people.

    gridloop-city import SPEC.yaml --out DIR     # sources → city folder, then check it
    gridloop-city check DIR [--as-of DATE]       # every problem, file/row/field; exit 1 if any
    gridloop-city diff OLD_DIR NEW_DIR [--json]  # cells split/merged, parts, routing
    gridloop-city export DIR --out OUT [--format shp|gpkg|geojson] [--crs EPSG:4547]
    gridloop-city release DIR --versions ROOT --version V   # for live reload; prints the digest

Exit status: 0 good, 1 problems found (each printed on its own line), 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .check import check_city
from .problems import Problem


def _print_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)")


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridloop-city", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p_imp = sub.add_parser("import", help="read a city's GIS layers and tables into a folder")
    p_imp.add_argument("spec", type=Path, help="the import spec (YAML)")
    p_imp.add_argument("--out", type=Path, required=True, help="the city folder to write")
    p_imp.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p_imp.add_argument("--as-of", type=_date, default=None, help="the check's today")

    p_chk = sub.add_parser("check", help="validate a city folder")
    p_chk.add_argument("city", type=Path)
    p_chk.add_argument("--as-of", type=_date, default=None, help="today (calendar horizon)")
    p_chk.add_argument("--tolerance-m2", type=float, default=1.0, help="overlap/gap allowed")

    p_diff = sub.add_parser("diff", help="what a new version of a city changes")
    p_diff.add_argument("old", type=Path)
    p_diff.add_argument("new", type=Path)
    p_diff.add_argument("--json", action="store_true")

    p_exp = sub.add_parser("export", help="write a city as GIS layers and CSV tables")
    p_exp.add_argument("city", type=Path)
    p_exp.add_argument("--out", type=Path, required=True)
    p_exp.add_argument("--format", choices=("shp", "gpkg", "geojson"), default="shp")
    p_exp.add_argument("--crs", default="EPSG:4326", help="EPSG code or GCJ-02")

    p_rel = sub.add_parser("release", help="copy a valid city into the versions folder")
    p_rel.add_argument("city", type=Path)
    p_rel.add_argument("--versions", type=Path, required=True, help="CITY_VERSIONS_DIR")
    p_rel.add_argument("--version", required=True)

    args = parser.parse_args(argv)
    if args.command == "release":
        return _release(args.city, args.versions, args.version)
    if args.command == "import":
        return _import(args.spec, args.out, args.force, args.as_of)
    if args.command == "check":
        problems = check_city(args.city, as_of=args.as_of, tolerance_m2=args.tolerance_m2)
        if problems:
            _print_problems(problems)
            return 1
        print(f"{args.city}: ok")
        return 0
    if args.command == "diff":
        return _diff(args.old, args.new, args.json)
    return _export(args.city, args.out, args.format, args.crs)


_NO_GIS = (
    "gridloop-city {0} reads and writes GIS files: install the GIS extra "
    "(`pip install 'gridloop-city[gis]'`: pyogrio, pyproj, openpyxl)"
)


def _gis_missing(command: str) -> bool:
    """True (and says so) when the GIS extra is not installed."""
    try:
        import openpyxl  # noqa: F401
        import pyogrio  # noqa: F401
        import pyproj  # noqa: F401
    except ImportError:
        print(_NO_GIS.format(command), file=sys.stderr)
        return True
    return False


def _import(spec: Path, out: Path, force: bool, as_of: dt.date | None) -> int:
    if _gis_missing("import"):
        return 2
    from .importer import ImportFailed, import_city

    if not spec.is_file():
        print(f"{spec}: no such import spec", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()) and not force:
        print(f"{out}: not empty (use --force to write into it)", file=sys.stderr)
        return 2
    try:
        files = import_city(spec, out)
    except ImportFailed as exc:
        _print_problems(exc.problems)
        print("nothing written")
        return 1
    print(f"wrote {len(files)} files to {out}")
    problems = check_city(out, as_of=as_of)
    if problems:
        _print_problems(problems)
        return 1
    print(f"{out}: ok")
    return 0


def _diff(old: Path, new: Path, as_json: bool) -> int:
    from .diff import diff_cities
    from .loader import CityDataError, load_city

    try:
        a = load_city(old)
    except CityDataError as exc:
        print(f"old version: {exc}")
        return 1
    try:
        b = load_city(new)
    except CityDataError as exc:
        print(f"new version: {exc}")
        return 1
    d = diff_cities(a, b, old, new)
    if as_json:
        print(json.dumps(d.as_dict(), ensure_ascii=False, indent=1))
    else:
        print("\n".join(d.lines()) if not d.empty else "no changes")
    return 0


def _export(city_dir: Path, out: Path, fmt: str, crs: str) -> int:
    if _gis_missing("export"):
        return 2
    from .importer import export_city
    from .loader import CityDataError, load_city

    try:
        city = load_city(city_dir)
    except CityDataError as exc:
        print(str(exc))
        return 1
    spec = export_city(city, city_dir, out, fmt, crs)
    print(f"wrote {out}; import it back with: gridloop-city import {spec} --out DIR")
    return 0


def _release(city_dir: Path, root: Path, version: str) -> int:
    from .loader import CityDataError
    from .versions import release

    try:
        digest = release(city_dir, root, version)
    except CityDataError as exc:
        print(str(exc))
        return 1
    print(f"released {version} ({digest}); announce it with:")
    print(f"  python -m gridloop_runtime.livecity {version} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
