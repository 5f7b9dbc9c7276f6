"""Per-language latency: warm and cold hello world, POST -> first stdout and -> exit, against
`docker run --rm` of the same image doing the same compile + run, in one run; plus the idle
memory of a warm container of each language.

    python -m loadtests.bench_languages [--runs 20] [--languages python,java,...]

For each language it starts its own `coderunner dev` serving only that language (as a worker
of one language group would), with a warm pool of 2, then with none (every start cold).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import time

from loadtests.bench_latency import one_execution
from loadtests.harness import own_server, pct, time_command
from runtimes.registry import RUNTIMES
from runtimes.runtime import Runtime
from tests.app.programs import HELLO

# The same program run the way a user would without code-runner (Java: javac, then java).
_COLD_RUN = {
    "python": "python3 main.py",
    "javascript": "node main.js",
    "java": "java -cp . Greeter",
}
WARM_UP_S = {"java": 8.0}  # a launcher JVM takes seconds of CPU to load and warm javac
_COLD_COMPILE = {"java": "cp Main.java Greeter.java && javac -d . Greeter.java"}


def _script(runtime: Runtime) -> str:
    compile_ = _COLD_COMPILE.get(runtime.language) or shlex.join(
        runtime.compile_command(runtime.entry)
    )
    run = _COLD_RUN.get(runtime.language) or shlex.join(runtime.run_command(runtime.entry))
    steps = ['printf %s "$SRC" > ' + runtime.entry, compile_, run]
    return " && ".join(step for step in steps if step)


def docker_run(runtime: Runtime, runs: int) -> list[float]:
    """`docker run --rm` of the language's image: write the file, compile, run."""
    cmd = [
        "docker", "run", "--rm", "--network", "none", "-e", f"SRC={HELLO[runtime.language]}",
        "-w", "/workspace", "--tmpfs", "/workspace:rw,exec,uid=10001,gid=10001",
        "--entrypoint", "sh", runtime.image("coderunner"), "-c", _script(runtime),
    ]  # fmt: skip
    return time_command(cmd, runs, "hello\n")


def through_service(base: str, language: str, runs: int, pause: float) -> dict[str, list[float]]:
    one_execution(base, language, HELLO[language])
    firsts, dones = [], []
    for _ in range(runs):
        time.sleep(pause)
        first, done, _ = one_execution(base, language, HELLO[language])
        firsts.append(first)
        dones.append(done)
    return {"first": firsts, "exit": dones}


def idle_memory_mib(language: str) -> float:
    """The memory of one warm container of `language`, as `docker stats` reports it."""
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=code-runner.language={language}"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", ids[0]],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    used = out.split("/")[0].strip()
    scale = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    unit = used[-3:]
    return float(used[:-3]) * scale[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--languages", default=",".join(sorted(RUNTIMES)))
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between runs (refill)")
    args = parser.parse_args()
    languages = args.languages.split(",")
    baseline = {}
    for language in languages:
        print(f"docker run --rm {language}: {args.runs} runs ...", flush=True)
        baseline[language] = docker_run(RUNTIMES[language], args.runs)
    warm, cold, memory = {}, {}, {}
    for language in languages:  # each on a worker of its own, as a language group would run
        with own_server(CODERUNNER_WORKER_LANGUAGES=language, CODERUNNER_POOL_MIN="2") as base:
            time.sleep(WARM_UP_S.get(language, 1.0))
            print(f"warm {language}: {args.runs} runs ...", flush=True)
            warm[language] = through_service(base, language, args.runs, args.pause)
            memory[language] = idle_memory_mib(language)
        cold_pools = {"CODERUNNER_POOL_MIN": "0", "CODERUNNER_POOL_MAX": "0"}
        with own_server(CODERUNNER_WORKER_LANGUAGES=language, **cold_pools) as base:
            print(f"cold {language}: {args.runs // 2} runs ...", flush=True)
            cold[language] = through_service(base, language, args.runs // 2, 0.1)
    head = "| language | docker run --rm p50 | warm first p50/p95 | warm exit p50/p95 |"
    print(f"\n{head} exit / docker run | cold exit p50/p95 | idle MiB |")
    print("|---|---|---|---|---|---|---|")
    for lang in languages:
        w, c, b = warm[lang], cold[lang], pct(baseline[lang], 0.5)
        print(
            f"| {lang} | {b:.0f} | {pct(w['first'], 0.5):.1f} / {pct(w['first'], 0.95):.1f} "
            f"| {pct(w['exit'], 0.5):.1f} / {pct(w['exit'], 0.95):.1f} "
            f"| {pct(w['exit'], 0.5) / b:.3f} | {pct(c['exit'], 0.5):.0f} / "
            f"{pct(c['exit'], 0.95):.0f} | {memory[lang]:.1f} |"
        )


if __name__ == "__main__":
    main()
