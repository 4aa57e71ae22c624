"""docker-compose.yml, the Makefile and the README agree with the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import yaml
from flask import Flask

from distributor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
README = (ROOT / "README.md").read_text()
IMAGE_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = COMPOSE["services"]
    return services


def test_compose_has_the_production_services_with_health_checks() -> None:
    services = _services()
    for name in ("postgres", "redis", "web", "worker", "beat", "smtp"):
        assert name in services, name
        assert "healthcheck" in services[name], f"{name} has no health check"
    # A scalable worker cannot pin a container name or a host port.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]


def test_every_environment_variable_is_a_setting_and_documented() -> None:
    known = set(Settings.env_vars())
    for name, service in _services().items():
        for var in service.get("environment", {}):
            if var in IMAGE_ENV:
                continue
            assert var in known, f"{name}: {var} is not a setting the code reads"
            assert f"`{var}`" in README, f"{var} is not documented in the README"


def test_every_setting_is_documented_in_the_readme() -> None:
    for var in Settings.env_vars():
        assert f"`{var}`" in README, f"{var} is missing from the README settings table"


def test_every_service_command_exists_in_the_code(app: Flask) -> None:
    import web
    import worker

    assert web.app is not None and worker.celery is not None
    context = click.Context(app.cli)
    cli_groups = app.cli.list_commands(context)
    for name, service in _services().items():
        command = service.get("command")
        if not command or ("build" not in service and service.get("image") != "distributor:latest"):
            continue
        argv = command if isinstance(command, list) else command.split()
        program = argv[0]
        if program == "gunicorn":
            assert argv[1] == "web:app"
        elif program == "celery":
            assert argv[1:3] == ["-A", "worker"]
            assert argv[3] in {"worker", "beat"}
        elif program == "flask":
            assert argv[1:3] == ["--app", "web"]
            group, sub = argv[3], argv[4]
            assert group in cli_groups, f"{name}: no flask command group {group}"
            commands = app.cli.get_command(context, group)
            assert isinstance(commands, click.Group), f"{name}: {group} is not a command group"
            assert sub in commands.commands, f"{name}: {group} {sub}"
        else:
            raise AssertionError(f"{name}: unknown program {program}")


def test_readme_commands_exist_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^\s*make ([a-z-]+)", README, flags=re.MULTILINE):
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), target


def test_app_containers_share_a_named_volume_for_data_dir() -> None:
    """Uploads must survive a redeploy and be seen by every web machine and worker."""
    named = set(COMPOSE.get("volumes") or {})
    for name in ("web", "worker", "beat", "bounces", "smtp"):
        service = _services()[name]
        data_dir = service["environment"]["DATA_DIR"]
        mounts = [str(v).split(":") for v in service.get("volumes", [])]
        assert any(src in named and dst == data_dir for src, dst, *_ in mounts), name
