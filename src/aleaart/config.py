"""Settings, read once from ``ALEAART_*`` environment variables at the entry points."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "aleaart"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALEAART_", protected_namespaces=())

    model: str = Field(
        DEFAULT_MODEL,
        description="hub id, local diffusers folder, .safetensors/.ckpt file, or 'tiny'",
    )
    model_config_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("ALEAART_MODEL_CONFIG"),
        description="diffusers config folder for a single-file checkpoint (needed offline)",
    )
    device: str | None = Field(None, description="cuda, mps or cpu; default: the best available")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; pin it for bit-exact images")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="where the tiny model is built")
