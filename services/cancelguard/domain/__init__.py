"""The rules: order lifecycle, Cancellation Rate policy, windows and the action to take. Pure: no I/O.

Ingestion, metrics and the API all call these modules; nothing else decides what counts.
"""
