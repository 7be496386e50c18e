"""What an uploaded file is, decided from its bytes (never from what the sender says), and
what is made of a photo: where and when it was taken (EXIF), a copy without its metadata to
show outside the command centre, and a thumbnail. Pure: bytes in, bytes and values out
(Pillow; HEIC through pillow-heif), no store, no database."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF (phones' default photo format) where the library is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIC = True
except ImportError:  # pragma: no cover - a dependency of gridloop-runtime
    HEIC = False

# A photo of more pixels than this is refused (a decompression bomb is a few KB of PNG).
MAX_PIXELS = 60_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

Kind = Literal["photo", "audio"]


@dataclass(frozen=True)
class FileType:
    """What the bytes are: the MIME type stored and answered, and the kind of evidence."""

    content_type: str
    kind: Kind
    extension: str


JPEG = FileType("image/jpeg", "photo", "jpg")
PNG = FileType("image/png", "photo", "png")
WEBP = FileType("image/webp", "photo", "webp")
HEIF = FileType("image/heic", "photo", "heic")
MP3 = FileType("audio/mpeg", "audio", "mp3")
AAC = FileType("audio/aac", "audio", "aac")
M4A = FileType("audio/mp4", "audio", "m4a")  # AAC in an MP4 box: phones' voice notes
WAV = FileType("audio/wav", "audio", "wav")

# What may be uploaded, for the error message.
ACCEPTED = "JPEG, PNG, WebP" + (", HEIC" if HEIC else "") + " photos; AAC, M4A, MP3, WAV voice"

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
_M4A_BRANDS = {b"M4A ", b"M4B "}


def sniff(head: bytes) -> FileType | None:
    """The type of a file from its first bytes (32 are enough), or None for anything else."""
    if head[:3] == b"\xff\xd8\xff":
        return JPEG
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        size = int.from_bytes(head[:4], "big")
        compatible = {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        if brand in _M4A_BRANDS:
            return M4A
        if HEIC and (
            brand in _HEIC_BRANDS or (brand in (b"mif1", b"msf1") and compatible & _HEIC_BRANDS)
        ):
            return HEIF
        return None
    if head[:3] == b"ID3":
        return MP3
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # an MPEG audio frame: layer bits 00 are AAC's ADTS header, the others MP3's layers
        if head[1] & 0x06 == 0:
            return AAC if head[1] & 0xF6 == 0xF0 else None
        return MP3
    return None


@dataclass(frozen=True)
class Exif:
    """Where and when the camera says the photo was taken."""

    taken_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True)
class Photo:
    """A photo read: its EXIF, size, a copy without metadata (EXIF, XMP, text chunks) to show
    outside the command centre, turned upright as the camera meant, and a JPEG thumbnail."""

    exif: Exif
    width: int
    height: int
    shown: bytes
    shown_type: str
    thumbnail: bytes


class NotAPhoto(ValueError):
    """Bytes that start like an image but do not decode as one (or are far too large)."""


def _ratio(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return float(value[0]) / float(value[1]) if value[1] else math.nan
    return float(value)


def _degrees(dms: Any, ref: Any) -> float | None:
    try:
        d, m, s = (_ratio(v) for v in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if not math.isfinite(value):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -value if str(ref).strip().upper() in ("S", "W") else value


def _offset(text: Any) -> tzinfo | None:
    """An EXIF OffsetTime ("+08:00")."""
    if not isinstance(text, str) or len(text) < 6 or text[0] not in "+-":
        return None
    try:
        minutes = int(text[1:3]) * 60 + int(text[4:6])
    except ValueError:
        return None
    return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))


def read_exif(img: Image.Image, local: tzinfo) -> Exif:
    """DateTimeOriginal (in its OffsetTimeOriginal, else the city's `local` time) and the
    GPS position, where the camera wrote them and they make sense."""
    exif = img.getexif()
    sub = exif.get_ifd(0x8769)  # Exif IFD
    gps = exif.get_ifd(0x8825)  # GPS IFD
    taken_at: datetime | None = None
    stamp = sub.get(36867) or exif.get(306)  # DateTimeOriginal, else DateTime
    if isinstance(stamp, str):
        try:
            naive = datetime.strptime(stamp.strip()[:19], "%Y:%m:%d %H:%M:%S")
            taken_at = naive.replace(tzinfo=_offset(sub.get(36881)) or local)
        except ValueError:
            taken_at = None
    lat = _degrees(gps.get(2), gps.get(1)) if gps.get(2) else None
    lon = _degrees(gps.get(4), gps.get(3)) if gps.get(4) else None
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    return Exif(taken_at, lat, lon)


def read_photo(data: bytes, kind: FileType, local: tzinfo, thumb_px: int = 320) -> Photo:
    """Decode a photo: its EXIF, the copy to show and the thumbnail (NotAPhoto: it does
    not decode, or has more than MAX_PIXELS)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NotAPhoto(f"not a readable {kind.extension.upper()} image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAPhoto(f"more than {MAX_PIXELS} pixels") from exc
    exif = read_exif(img, local)
    upright = ImageOps.exif_transpose(img)
    shown, shown_type = _without_metadata(upright, kind)
    small = upright.copy()
    small.thumbnail((thumb_px, thumb_px))
    return Photo(exif, upright.width, upright.height, shown, shown_type, _jpeg(small, 80))


def _jpeg(img: Image.Image, quality: int) -> bytes:
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _without_metadata(img: Image.Image, kind: FileType) -> tuple[bytes, str]:
    """The pixels again, with nothing else: Pillow writes no EXIF, XMP or text unless told
    to. PNG and WebP stay so; JPEG and HEIC (which browsers do not show) become JPEG."""
    out = io.BytesIO()
    if kind is PNG:
        img.save(out, "PNG", optimize=True)
        return out.getvalue(), PNG.content_type
    if kind is WEBP:
        img.save(out, "WEBP", quality=90)
        return out.getvalue(), WEBP.content_type
    return _jpeg(img, 90), JPEG.content_type


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))
