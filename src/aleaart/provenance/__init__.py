"""Content Credentials: what every stored file says about how it was made, signed, and how anyone checks it.

    claim.py        what one file's manifest says: its action, ingredient, the aleaart assertion (pure)
    credentials.py  signing and reading with the C2PA SDK, the service's signing identity
    verify.py       a file against its credentials, the chain's parameters and a re-render
    cli.py          ``aleaart verify``

The HTTP routes are ``api/verify.py``.
"""
