"""GridFlex as an OpenADR 3 VEN (docs/openadr.md §7): a utility's events in, DR requests out, reports back.

`config` (the VEN's YAML and its secrets), `mapping` (pure: event → DR requests or a
refusal; DR delivery → report), `clients` (the two HTTP parties: the utility's VTN and the
controller's DR API), `bridge` (the poll loop).
"""
