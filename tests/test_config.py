from aleaart.config import Settings


def test_port_comes_from_aleaart_port_or_the_platforms_port(monkeypatch):
    monkeypatch.delenv("ALEAART_PORT", raising=False)
    monkeypatch.setenv("PORT", "9001")
    assert Settings().port == 9001
    monkeypatch.setenv("ALEAART_PORT", "9002")
    assert Settings().port == 9002


def test_the_originals_variables_are_read(monkeypatch):
    monkeypatch.setenv("PINATA_JWT", "jwt")
    monkeypatch.setenv("MONGODB_URI", "mongodb://db")
    monkeypatch.setenv("ALEAART_CORS_ORIGINS", "*")
    settings = Settings()
    assert (settings.pinata_jwt, settings.mongodb_uri, settings.cors_origins) == ("jwt", "mongodb://db", ["*"])
