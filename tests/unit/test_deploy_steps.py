"""Which steps of playbooks/deploy.yml and config.yml the CLI leaves out (--skip-tags)."""

from __future__ import annotations

import yaml

from hop3 import resources
from hop3.cli.apps import deploy_skip_tags


def _tags(node) -> set[str]:
    found = set()
    if isinstance(node, dict):
        found |= set(node.get("tags") or ())
        for value in node.values():
            found |= _tags(value)
    elif isinstance(node, list):
        for item in node:
            found |= _tags(item)
    return found


def test_an_app_without_addons_skips_the_addon_step():
    assert deploy_skip_tags({"hop3_app_addons": []}, ["h1"]) == ("hop3_deploy_addons",)


def test_an_app_with_addons_keeps_it():
    assert deploy_skip_tags({"hop3_app_addons": [{"type": "redis"}]}, ["h1"]) == ()


def test_code_only_on_every_host_skips_the_vhost_and_the_record():
    extravars = {"hop3_app_proxy_unchanged_hosts": ["h1", "h2"]}
    assert deploy_skip_tags(extravars, ["h1", "h2"]) == (
        "hop3_deploy_addons", "hop3_deploy_vhost", "hop3_deploy_record",
    )  # fmt: skip


def test_one_host_with_a_new_spec_keeps_the_vhost_for_all():
    extravars = {"hop3_app_proxy_unchanged_hosts": ["h1"]}
    assert deploy_skip_tags(extravars, ["h1", "h2"]) == ("hop3_deploy_addons",)


def test_unknown_hosts_keep_the_vhost():
    extravars = {"hop3_app_proxy_unchanged_hosts": ["h1"]}
    assert deploy_skip_tags(extravars, None) == ("hop3_deploy_addons",)
    assert deploy_skip_tags(extravars, []) == ("hop3_deploy_addons",)


def test_every_skipped_tag_names_a_step_of_the_playbook():
    playbook = yaml.safe_load((resources.content_root() / "playbooks" / "deploy.yml").read_text())
    everything = deploy_skip_tags({"hop3_app_proxy_unchanged_hosts": ["h"]}, ["h"])
    assert set(everything) <= _tags(playbook)


def test_the_config_commands_skip_a_step_of_the_config_playbook():
    from hop3.cli.config import NO_DOMAIN_STEP

    playbook = yaml.safe_load((resources.content_root() / "playbooks" / "config.yml").read_text())
    assert set(NO_DOMAIN_STEP) <= _tags(playbook)
