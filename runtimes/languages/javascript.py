"""JavaScript on Node.js: a launcher keeps node loaded and runs the entry as the main module."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="javascript",
    aliases=("js", "node", "nodejs"),
    entry="main.js",
    mode="launcher",
    launcher=("node", "/opt/coderunner/launcher.js"),
    pool_max=6,
)
