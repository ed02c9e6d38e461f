"""The only part of aleaart that imports torch and diffusers (import its modules directly)."""
