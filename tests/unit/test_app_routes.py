"""The route ports of role hop3_app (module_utils/hop3_app_routes.py): the
nftables rules that forward an app's route port to its web instances."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "roles/hop3_app/module_utils/hop3_app_routes.py"
_spec = importlib.util.spec_from_file_location("hop3_app_routes", PATH)
routes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(routes)


def test_one_instance_is_a_plain_dnat():
    assert routes.rule([20004]) == "meta l4proto tcp dnat ip to 127.0.0.1 : 20004"


def test_several_instances_take_new_connections_in_turn():
    assert routes.rule([20009, 20004]) == (
        "meta l4proto tcp dnat ip to 127.0.0.1 : numgen inc mod 2 map { 0 : 20004, 1 : 20009 }"
    )


def test_no_instance_forwards_nothing():
    # The route port itself has no listener: nginx gets a refused connection (502).
    assert routes.rule([]) == ""
    assert "dnat" not in routes.app_text("shop", 20000, [])


def test_the_app_file_empties_then_fills_its_chain_in_one_transaction():
    text = routes.app_text("my-shop", 20000, [20001])
    lines = text.splitlines()
    assert "flush chain ip hop3_routes app_my_shop" in lines
    flush = lines.index("flush chain ip hop3_routes app_my_shop")
    fill = lines.index("\t\tmeta l4proto tcp dnat ip to 127.0.0.1 : 20001")
    assert flush < fill
    assert lines[-1] == "add element ip hop3_routes apps { 20000 : jump app_my_shop }"
    # Chains of apps whose names differ only by '-' and '_' cannot collide:
    # app names have no '_' (hop3/appspec validates them).
    assert routes.chain_name("a-b") == "app_a_b"


def test_nft_accepts_the_files(tmp_path):
    """`nft -c` parses the table and an app's file as the host will load them."""
    base = tmp_path / "routes.nft"
    apps = tmp_path / "routes.d"
    apps.mkdir()
    (apps / "shop.nft").write_text(routes.app_text("shop", 20000, [20001, 20002]))
    base.write_text(routes.BASE.replace(routes.ROUTES_DIR, str(apps)))
    proc = subprocess.run([routes.NFT, "-c", "-f", str(base)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
