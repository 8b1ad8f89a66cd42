"""Static checks of the deployment files. The images cannot be built where the suite runs (a Docker
engine may run, but no registry is reachable for the base image, and CI has no engine), so a wrong
service name, a port open to the network, a writable model mount or a command the CLI does not have
must be caught by reading the files. The commands are checked against the real `clsp-search --help`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from .dockerfile import lineage, parse

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def dockerfile():
    return parse(DOCKERFILE)


@cache
def cli_help(*sub: str) -> str:
    """`clsp-search [SUB] --help`, wide enough that rich does not wrap option names."""
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "cli", *sub, "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"clsp-search {' '.join(sub)} --help failed: {done.stderr[-500:]}"
    return done.stdout


def subcommands() -> set[str]:
    return set(re.findall(r"^[│|]\s+([a-z][\w-]*)\s", cli_help(), flags=re.M))


def check_command(argv: list[str]) -> None:
    """`argv` (without the program name) names a real sub-command and only options it has."""
    assert argv and argv[0] in subcommands(), f"{argv[0]!r} is not a clsp-search sub-command: {sorted(subcommands())}"
    text = cli_help(argv[0])
    for token in argv[1:]:
        if token.startswith("--"):
            option = token.split("=")[0]
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), f"`clsp-search {argv[0]}` has no option {option}"


def mount(volume: str | dict) -> dict:
    """Short (`src:dst[:ro]`) or long volume syntax as one dict."""
    if isinstance(volume, dict):
        return volume
    parts = volume.split(":")
    return {"source": parts[0], "target": parts[1], "read_only": len(parts) > 2 and "ro" in parts[2].split(",")}


# ---------------------------------------------------------------------------------------- compose
def test_services_and_shared_volume(compose: dict) -> None:
    assert set(compose["services"]) >= {"api", "indexer"}
    declared = set(compose.get("volumes") or {})
    api = {mount(v)["target"]: mount(v) for v in compose["services"]["api"]["volumes"]}
    idx = {mount(v)["target"]: mount(v) for v in compose["services"]["indexer"]["volumes"]}
    api_coll = api[collection_dir(compose["services"]["api"]["command"], "serve")]
    idx_coll = idx[collection_dir(compose["services"]["indexer"]["command"], "index")]
    assert api_coll["source"] == idx_coll["source"], "api must serve the volume the indexer writes"
    assert api_coll["source"] in declared, "the collection volume must be a declared named volume"
    assert api_coll.get("read_only") is True, "the api opens the collection read-only: mount it so"
    assert not idx_coll.get("read_only"), "the indexer writes the collection"


def collection_dir(command: list[str], sub: str) -> str:
    """The volume mount point holding the collection a command reads or writes."""
    argv = command if isinstance(command, list) else shlex.split(command)
    assert argv[0] == sub
    path = argv[argv.index("--collection") + 1] if sub == "index" else argv[1]
    return str(Path(path).parent)


def test_ports_bound_to_loopback(compose: dict) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}:{port.get('target')}"
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface"
    assert "127.0.0.1:8000:8000" in compose["services"]["api"]["ports"]


def test_indexer_reserves_gpu(compose: dict) -> None:
    devices = compose["services"]["indexer"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "deploy" not in compose["services"]["api"], "the api is a CPU service"


def test_model_dir_read_only_everywhere(compose: dict) -> None:
    for name in ("api", "indexer"):
        mounts = [mount(v) for v in compose["services"][name]["volumes"]]
        models = [m for m in mounts if m["target"] == "/models"]
        assert models, f"{name} does not mount the model directory"
        assert all(m.get("read_only") for m in models), f"{name} mounts /models writable"


def test_api_healthcheck_and_wait(compose: dict) -> None:
    api = compose["services"]["api"]
    test = " ".join(api["healthcheck"]["test"])
    assert "/health" in test and ":8000" in test
    waits = "indexer" in (api.get("depends_on") or {})
    assert waits or compose["services"]["indexer"].get("profiles"), "api must not race an indexer run"


def test_targets_exist_and_match(compose: dict, dockerfile) -> None:
    _, stages = dockerfile
    assert compose["services"]["api"]["build"]["target"] == "cpu"
    assert compose["services"]["indexer"]["build"]["target"] == "gpu"
    for name in ("api", "indexer"):
        assert compose["services"][name]["build"]["target"] in stages


def test_compose_commands_are_real(compose: dict) -> None:
    for name in ("api", "indexer"):
        check_command(compose["services"][name]["command"])
    assert "--device" in compose["services"]["indexer"]["command"]


# -------------------------------------------------------------------------------------- Dockerfile
def test_cpu_target_pins_cpu_torch(dockerfile) -> None:
    _, stages = dockerfile
    runs = " ".join(r for s in lineage(stages, "cpu") for r in s.all("RUN"))
    assert re.search(r"torch==(\$\{TORCH_VERSION\}|2\.13\.0)", runs)
    assert "download.pytorch.org/whl/cpu" in runs
    global_args, _ = dockerfile
    assert global_args.get("TORCH_VERSION") == "2.13.0"
    assert "torchaudio" not in DOCKERFILE.read_text()


def test_gpu_target_from_cuda_with_gpu_extra(dockerfile) -> None:
    _, stages = dockerfile
    chain = lineage(stages, "gpu")
    assert chain[-1].base.startswith("nvidia/cuda:") and "runtime" in chain[-1].base
    runs = " ".join(r for s in chain for r in s.all("RUN"))
    assert '.[gpu]' in runs


def test_debian_packages_match_makefile(dockerfile) -> None:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    wanted = set(re.search(r"^DEBIAN_PACKAGES\s*:?=(.*)$", makefile, re.M).group(1).split()) - {"chromium"}
    _, stages = dockerfile
    for target in ("cpu", "gpu"):
        runs = " ".join(r for s in lineage(stages, target) for r in s.all("RUN"))
        installed = set(re.findall(r"[\w.+-]+", " ".join(re.findall(r"apt-get install ([^&]*)", runs))))
        assert wanted <= installed, f"{target} lacks {sorted(wanted - installed)}"


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_non_root_user(dockerfile, target: str) -> None:
    _, stages = dockerfile
    user = next((u for s in lineage(stages, target) if (u := s.last("USER"))), None)
    assert user and user.split(":")[0] not in ("root", "0"), f"{target} runs as {user!r}"
    stage = stages[target]
    keywords = [i.keyword for i in stage.instructions]
    assert "RUN" not in keywords[keywords.index("USER"):], "USER must come after the last RUN that needs root"


def test_cpu_healthcheck_hits_health(dockerfile) -> None:
    _, stages = dockerfile
    check = stages["cpu"].last("HEALTHCHECK")
    assert check and "CMD" in check and "/health" in check and ":8000" in check


def test_dockerfile_commands_are_real(dockerfile) -> None:
    import json

    _, stages = dockerfile
    entry = json.loads(stages["cpu"].last("ENTRYPOINT"))
    cmd = json.loads(stages["cpu"].last("CMD"))
    assert entry == ["clsp-search"]
    check_command(cmd)


def test_copied_paths_exist_and_are_not_ignored(dockerfile) -> None:
    _, stages = dockerfile
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for target in ("cpu", "gpu"):
        for copy in stages[target].all("COPY"):
            *sources, _ = [a for a in shlex.split(copy) if not a.startswith("--")]
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such path"
                assert src.rstrip("/") not in ignored, f"COPY {src} is excluded by .dockerignore"


def test_parser_reads_what_it_claims(tmp_path: Path) -> None:
    """The reader must see through continuations and ARG defaults, or the checks above prove nothing."""
    f = tmp_path / "Dockerfile"
    f.write_text("ARG IMG=debian:12\nFROM ${IMG} AS a\nRUN apt-get install \\\n  # note\n  sox\nUSER 0\n"
                 "FROM a AS b\nUSER app\n")
    global_args, stages = parse(f)
    assert global_args == {"IMG": "debian:12"}
    assert stages["a"].base == "debian:12" and stages["a"].all("RUN") == ["apt-get install sox"]
    assert [s.name for s in lineage(stages, "b")] == ["b", "a"]
