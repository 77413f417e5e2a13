"""The FITS writer and reader of the simulated camera, checked against astropy."""

from __future__ import annotations

from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
fits = pytest.importorskip("astropy.io.fits")

from pyobs.modules.simulated.fits import BLOCK, Header, encode_fits, format_card, read_fits, write_fits  # noqa: E402


def test_uint16_image_with_header_reads_back_in_astropy(tmp_path: Path) -> None:
    data = (np.arange(35 * 21, dtype=np.uint32).reshape(21, 35) * 97 % 65536).astype(np.uint16)
    path = tmp_path / "a.fits"
    header: Header = {
        "EXPTIME": (1.5, "exposure time [s]"),
        "OBJECT": "M 13's core",
        "FLAG": True,
        "COUNT": 3,
        "EMPTY": None,
        "TINY": 1e-30,
        "DATE-OBS": "2026-11-24T02:00:00.000",
    }
    write_fits(path, data, header)
    raw = path.read_bytes()
    assert len(raw) % BLOCK == 0
    with fits.open(path) as hdul:
        hdul.verify("exception")  # standard-conformant, not just readable
        hdu = hdul[0]
        assert hdu.data.dtype.kind == "u" and hdu.data.shape == (21, 35)
        np.testing.assert_array_equal(hdu.data, data)
        h = hdu.header
        assert h["NAXIS1"] == 35 and h["NAXIS2"] == 21 and h["BITPIX"] == 16 and h["BZERO"] == 32768
        assert h["EXPTIME"] == 1.5 and h.comments["EXPTIME"] == "exposure time [s]"
        assert h["OBJECT"] == "M 13's core" and h["FLAG"] is True and h["COUNT"] == 3 and h["TINY"] == 1e-30
        assert h["DATE-OBS"] == "2026-11-24T02:00:00.000"
    back, values = read_fits(path)
    np.testing.assert_array_equal(back, data)
    assert back.dtype == np.uint16
    assert values["OBJECT"] == "M 13's core" and values["EMPTY"] is None and values["EXPTIME"] == 1.5


@pytest.mark.parametrize(
    "dtype,bitpix", [(np.float32, -32), (np.float64, -64), (np.int16, 16), (np.int32, 32), (np.uint8, 8)]
)
def test_other_types_round_trip(tmp_path: Path, dtype: type, bitpix: int) -> None:
    rng = np.random.default_rng(1)
    data = (rng.random((7, 9)) * 100).astype(dtype)
    path = tmp_path / "b.fits"
    write_fits(path, data)
    with fits.open(path) as hdul:
        assert hdul[0].header["BITPIX"] == bitpix
        np.testing.assert_array_equal(hdul[0].data, data)
    np.testing.assert_array_equal(read_fits(path)[0], data)


def test_cards_are_80_characters_and_fixed_format() -> None:
    card = format_card("exptime", 2.0, "seconds")
    assert len(card) == 80
    assert card.startswith("EXPTIME =") and card[29] == "0" and card[10:30].strip() == "2.0"
    assert format_card("FLAG", False)[29] == "F"
    assert format_card("NAME", "ab")[10:20] == "'ab      '"  # strings padded to 8 characters


@pytest.mark.parametrize(
    "key,value,problem",
    [
        ("TOOLONGKEY", 1, "invalid FITS keyword"),
        ("BAD KEY", 1, "invalid FITS keyword"),
        ("NAN", float("nan"), "NaN"),
        ("TEXT", "x" * 80, "too long"),
        ("UMLAUT", "Göttingen", "printable ASCII"),
    ],
)
def test_invalid_cards_name_the_problem(key: str, value: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        format_card(key, value)  # type: ignore[arg-type]


def test_structural_keywords_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match="structural"):
        encode_fits(np.zeros((2, 2), dtype=np.uint16), {"NAXIS1": 3})


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.fits"
    write_fits(path, np.zeros((100, 100), dtype=np.float32))
    path.write_bytes(path.read_bytes()[: BLOCK + 100])
    with pytest.raises(ValueError, match="truncated"):
        read_fits(path)
