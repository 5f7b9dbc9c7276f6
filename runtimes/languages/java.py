"""Java: a started JVM compiles every .java file in memory (javax.tools) and runs `main`."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="java",
    aliases=("jdk",),
    entry="Main.java",
    mode="launcher",
    launcher=(
        "java",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData",
        "-Xshare:auto",
        "-XX:SharedArchiveFile=/opt/coderunner/javac.jsa",  # javac's classes, archived
        "-XX:MaxRAMPercentage=70",
        "--add-opens=java.base/java.io=ALL-UNNAMED",  # to adopt the control socket's fd
        "-cp",
        "/opt/coderunner",
        "Launcher",
    ),
    compiles=True,
    weight=2,
    pool_max=3,
)
