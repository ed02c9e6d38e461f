"""The base of kinds that start from a stored image: the source read from a PNG aleaart wrote, and the request
bodies derived from a kind's declared options."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pydantic import ValidationError

from aleaart.api.schemas import chosen_options, image_kind_body
from aleaart.errors import InvalidParams
from aleaart.jobs import RestyleRequest, SourceImage, UpscaleRequest
from aleaart.metadata import ImageInfo, encode_png
from aleaart.params import RenderSpec

SPEC = RenderSpec(prompt="a lighthouse, painterly | max detail", sampler="DPM++ 2M Karras", width=100, height=60,
                  steps=18, guidance_scale=7.0, seed=5)
SOURCE = SourceImage(key="a" * 64, sha256="b" * 64, spec=SPEC, token="3")


def test_the_bodies_are_the_declared_options_required_where_they_have_no_default():
    upscale = image_kind_body(UpscaleRequest)
    assert upscale.__name__ == "UpscaleBody"
    assert upscale.model_validate({}).model_dump() == {"scale": 2, "mode": "hires", "strength": None,
                                                       "webhook": None, "webhook_events_filter": None}
    with pytest.raises(ValidationError, match="mode"):
        upscale.model_validate({"mode": "bicubic"})
    with pytest.raises(ValidationError, match="extra"):
        upscale.model_validate({"scale": 2, "sharpen": True})
    restyle = image_kind_body(RestyleRequest)
    with pytest.raises(ValidationError, match="styleIndex"):
        restyle.model_validate({"strength": 0.5})  # required: the restyle has no default style
    body = restyle.model_validate({"styleIndex": 4})
    request = RestyleRequest(SOURCE, **chosen_options(RestyleRequest, body))
    assert request == RestyleRequest(SOURCE, 4, 0.5)


def test_a_source_is_read_from_the_metadata_of_a_png_aleaart_wrote():
    png = encode_png(Image.new("RGB", (100, 60)), ImageInfo(spec=SPEC, model="m", version="1", token_id="3",
                                                            key="d" * 64))
    source = SourceImage.from_png(png)
    assert source.key == "d" * 64 and source.spec == SPEC and source.token == "3"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    with pytest.raises(InvalidParams, match="not a PNG made by aleaart"):
        SourceImage.from_png(buffer.getvalue())
    with pytest.raises(InvalidParams, match="not a PNG image"):
        SourceImage.from_png(b"GIF89a")
