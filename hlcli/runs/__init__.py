"""Runs: results and the documents that store them (the run record, JSON reading and checks,
maps indexes). Imports metrics (the registry), inputs (groups) and the ground floor; torch only
inside :func:`hlcli.runs.maps.upsample`, when maps are written."""
