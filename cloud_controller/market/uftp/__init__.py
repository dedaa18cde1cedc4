"""GridFlex's own side of UFTP (USEF Shapeshifter 3.1.0) in both roles: models, XML, signing, transport.

The other party is shapeshifter-uftp, which GridFlex never imports (docs/market.md, "UFTP").
"""
