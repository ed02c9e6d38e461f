"""aleaart: turns an AleaArt NFT's on-chain art parameters into a Stable Diffusion image."""

__version__ = "0.1.0"
