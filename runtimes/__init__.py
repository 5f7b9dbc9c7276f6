"""Language runtimes and the ground that the app and the workers share.

The app (`app/`) and the workers (`poolmgr/`) never import each other; what both
need (settings, the wire format, Redis key names, the execution lifecycle and the
runtime registry) lives here.
"""
