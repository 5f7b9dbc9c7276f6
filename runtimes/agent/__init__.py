"""The in-container agent: waits warm on stdin for one job, runs it, streams its output.

It runs as PID 1 of a one-shot container (`python3 -m agent`), so it needs only the
standard library; the package is copied into every runtime image. The worker imports its
protocol from here too, so the protocol is written once (`protocol.py`).
"""
