"""Per-area dispatch: a radial network cut into areas, one LP each, joined and certified for the whole."""
