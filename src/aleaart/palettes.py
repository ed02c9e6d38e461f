"""paletteId 0-23: the 24 colour palettes (pure data; the colour grade that moves an image toward one is
``grading.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aleaart.errors import InvalidParams

PaletteMode = Literal["grade", "prompt", "off"]
DEFAULT_STRENGTH = 0.85


@dataclass(frozen=True)
class Palette:
    id: int
    name: str
    colours: tuple[str, str, str, str, str]  # sRGB hex, darkest to lightest
    words: str  # the palette as colour words, for ``palette: prompt``

    def rgb(self) -> tuple[tuple[float, float, float], ...]:
        """The five colours as floats in 0..1."""
        return tuple(tuple(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)) for c in self.colours)  # type: ignore[misc]


PALETTES: tuple[Palette, ...] = (
    Palette(0, "Ember", ("#2b0f0e", "#6e1e14", "#c0392b", "#e67e22", "#f9d976"), "ember red, burnt orange and gold"),
    Palette(1, "Deep Ocean", ("#03045e", "#0077b6", "#00b4d8", "#90e0ef", "#caf0f8"), "navy, ocean blue and pale aqua"),
    Palette(2, "Forest", ("#1b2d1e", "#2d6a4f", "#52b788", "#95d5b2", "#d8f3dc"), "deep green, moss and mint"),
    Palette(3, "Desert Dusk", ("#3d2c2e", "#8c5e58", "#d4a373", "#e9c46a", "#faedcd"), "umber, sand and dusk gold"),
    Palette(4, "Neon Night", ("#0d0221", "#541388", "#d90368", "#2ec4b6", "#f1e9da"),
            "midnight violet, neon magenta and cyan"),
    Palette(5, "Pastel Dream", ("#6d6875", "#b5838d", "#e5989b", "#ffb4a2", "#ffcdb2"), "dusty mauve, rose and peach"),
    Palette(6, "Nordic Frost", ("#2e3440", "#4c566a", "#81a1c1", "#88c0d0", "#eceff4"), "slate, frost blue and snow"),
    Palette(7, "Autumn", ("#3a1f04", "#7f4f24", "#bc6c25", "#dda15e", "#fefae0"), "chestnut, amber and cream"),
    Palette(8, "Cyberpunk", ("#0b0c10", "#1f2833", "#ff2a6d", "#05d9e8", "#d1f7ff"),
            "black, hot pink and electric cyan"),
    Palette(9, "Vintage Film", ("#3e3a36", "#7d6b57", "#b59f7b", "#d9c5a0", "#f2e8cf"), "sepia, khaki and faded cream"),
    Palette(10, "Tropical", ("#005f73", "#0a9396", "#94d2bd", "#ee9b00", "#e9d8a6"), "teal, lagoon green and mango"),
    Palette(11, "Royal", ("#10002b", "#3c096c", "#7b2cbf", "#c77dff", "#e0aaff"), "royal purple, violet and lilac"),
    Palette(12, "Monochrome", ("#111111", "#444444", "#777777", "#bbbbbb", "#eeeeee"), "black, grey and white"),
    Palette(13, "Sakura", ("#5e3c58", "#b0688f", "#f4a6c1", "#ffd6e0", "#fff0f3"),
            "plum, cherry blossom pink and white"),
    Palette(14, "Volcanic", ("#1a1a1a", "#3d0c02", "#9d0208", "#f48c06", "#ffba08"), "basalt, lava red and flame"),
    Palette(15, "Glacier", ("#0b2545", "#13315c", "#8da9c4", "#b8d8e8", "#eef4ed"), "deep ice blue, steel and white"),
    Palette(16, "Meadow", ("#283618", "#606c38", "#a7c957", "#f2e8cf", "#f6bd60"), "olive, spring green and buttercup"),
    Palette(17, "Art Deco", ("#1c1c1c", "#0f4c5c", "#c9a227", "#e0c068", "#f5f0e1"), "onyx, peacock teal and gold"),
    Palette(18, "Candy", ("#3a0ca3", "#f72585", "#ff70a6", "#70d6ff", "#ffd670"),
            "indigo, candy pink, sky blue and lemon"),
    Palette(19, "Earth", ("#33261d", "#5c4033", "#8a6f4d", "#a3b18a", "#dad7cd"), "soil brown, clay and sage"),
    Palette(20, "Twilight", ("#14213d", "#3f37c9", "#7209b7", "#f72585", "#fca311"),
            "dusk blue, violet, pink and amber"),
    Palette(21, "Mint Cream", ("#2f3e46", "#354f52", "#52796f", "#84a98c", "#cad2c5"),
            "dark teal, eucalyptus and mint"),
    Palette(22, "Copper", ("#2a1a12", "#6f3b24", "#b0643a", "#d9925b", "#f3d3b0"), "dark copper, rust and apricot"),
    Palette(23, "Aurora", ("#051923", "#006494", "#00a6a6", "#7bd389", "#c3f73a"),
            "polar night, teal and aurora green"),
)


def palette(palette_id: int) -> Palette:
    """The palette of a token's paletteId (0-23)."""
    if not 0 <= palette_id < len(PALETTES):
        raise InvalidParams(f"paletteId must be 0..{len(PALETTES) - 1}, got {palette_id}")
    return PALETTES[palette_id]
