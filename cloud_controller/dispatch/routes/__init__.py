"""The ways one dispatch call is answered, tried in order behind one `Route` protocol."""
