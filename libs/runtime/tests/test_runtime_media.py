"""What a file is, from its bytes; what a photo says (EXIF) and what is shown of it (pure)."""

from __future__ import annotations

import io
from datetime import UTC, timedelta, timezone

import pytest
from gridloop_devkit.testing import photo_bytes
from gridloop_runtime import media
from PIL import Image

BEIJING = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", media.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", media.PNG),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", media.WEBP),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", media.WAV),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", media.HEIF),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf", media.HEIF),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", None),  # AVIF: not taken
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom", media.M4A),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2mp41", None),  # a video
        (b"ID3\x04\x00\x00\x00\x00", media.MP3),
        (b"\xff\xfb\x90\x64", media.MP3),
        (b"\xff\xf1\x50\x80", media.AAC),
        (b"GIF89a\x01\x00", None),
        (b"%PDF-1.7\n", None),
        (b"<svg xmlns=", None),
        (b"", None),
    ],
)
def test_the_type_is_read_from_the_first_bytes(
    head: bytes, expected: media.FileType | None
) -> None:
    assert media.sniff(head) == expected


def test_exif_time_and_position_are_read_in_the_cameras_offset_or_the_citys() -> None:
    data = photo_bytes(-33.8688, -151.2093, taken_at="2026:11:23 09:30:00")
    photo = media.read_photo(data, media.JPEG, BEIJING)
    assert photo.exif.lat == pytest.approx(-33.8688, abs=1e-4)
    assert photo.exif.lon == pytest.approx(-151.2093, abs=1e-4)
    assert photo.exif.taken_at is not None
    assert photo.exif.taken_at.astimezone(UTC).hour == 1  # 09:30 in Beijing
    bare = media.read_photo(photo_bytes(None, None, taken_at=None), media.JPEG, BEIJING)
    assert bare.exif == media.Exif() and not bare.exif.located


def test_the_copy_shown_has_no_metadata_and_the_thumbnail_is_small() -> None:
    for fmt, kind, shown_type in (
        ("JPEG", media.JPEG, "image/jpeg"),
        ("PNG", media.PNG, "image/png"),
        ("WEBP", media.WEBP, "image/webp"),
        ("HEIF", media.HEIF, "image/jpeg"),  # browsers do not show HEIC
    ):
        photo = media.read_photo(photo_bytes(fmt=fmt, size=(1000, 500)), kind, BEIJING)
        assert photo.shown_type == shown_type
        shown = Image.open(io.BytesIO(photo.shown))
        assert not shown.getexif() and b"Exif" not in photo.shown, fmt
        thumb = Image.open(io.BytesIO(photo.thumbnail))
        assert thumb.format == "JPEG" and thumb.size == (320, 160)


def test_what_does_not_decode_is_not_a_photo() -> None:
    with pytest.raises(media.NotAPhoto):
        media.read_photo(b"\xff\xd8\xff" + b"\0" * 64, media.JPEG, BEIJING)


def test_distance_is_great_circle_metres() -> None:
    assert media.distance_m(39.9, 116.4, 39.9, 116.4) == 0
    assert media.distance_m(39.9, 116.4, 39.91, 116.4) == pytest.approx(1112, abs=1)
