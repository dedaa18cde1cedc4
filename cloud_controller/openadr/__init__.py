"""GridFlex's OpenADR 3.1 VTN (docs/openadr.md): the DSO side's programs, events and reports.

`models` (what a writer may send), `oauth` (client credentials, roles, tokens), `store`
(SQLite), `resources` (the rules, no HTTP), `router` (FastAPI), `congestion_events` (events
with capacity limits per congestion point from the congestion forecast, pure).
"""
