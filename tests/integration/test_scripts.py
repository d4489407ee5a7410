"""scripts/lib.sh's Debian package step, run by bash as scripts/serve and scripts/test run it,
with dpkg-query and apt-get replaced by stand-ins that record what would be installed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What the default voice (female, festival's slt) needs to speak at all.
VOICE_PACKAGES = {"festival", "festvox-us-slt-hts"}


def _installed_by(job: str, tmp_path: Path, installed: frozenset[str] = frozenset()) -> list[str]:
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    record = tmp_path / "apt-get.log"
    (shims / "dpkg-query").write_text(
        "#!/bin/sh\n"
        "for pkg; do :; done\n"
        f'case " {" ".join(sorted(installed))} " in *" $pkg "*) '
        "echo 'install ok installed';; *) exit 1;; esac\n"
    )
    (shims / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    subprocess.run(
        ["bash", "-c", f"source scripts/lib.sh && ensure_apt_packages {job}"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )
    if not record.exists():
        return []
    calls = record.read_text().splitlines()
    assert calls[0].startswith("update"), "apt-get update comes first"
    return calls[1].split("--no-install-recommends", 1)[1].split()


def test_serve_installs_what_the_default_voice_needs(tmp_path: Path) -> None:
    packages = set(_installed_by("serve", tmp_path))
    assert packages >= VOICE_PACKAGES
    assert "sip-tester" not in packages, "serve needs no test tools"
    assert "kamailio" in packages, "serve --nodes N runs Kamailio"


def test_test_installs_every_package_serve_does_and_its_own(tmp_path: Path) -> None:
    (tmp_path / "serve").mkdir()
    (tmp_path / "test").mkdir()
    serve = set(_installed_by("serve", tmp_path / "serve"))
    test = set(_installed_by("test", tmp_path / "test"))
    assert serve < test
    assert {"sip-tester", "baresip", "espeak-ng", "pocketsphinx-testdata"} <= test


@pytest.mark.parametrize("job", ["serve", "test"])
def test_nothing_is_installed_when_nothing_is_missing(tmp_path: Path, job: str) -> None:
    every = {
        line.split()[0]
        for line in (REPO / "scripts" / "apt-packages.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert _installed_by(job, tmp_path, installed=frozenset(every)) == []
