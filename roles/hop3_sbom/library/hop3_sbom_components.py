#!/usr/bin/python3
"""List the software components of a Hop3 app's current release, or of the
Hop3 platform on a host (read-only), for a software bill of materials."""

import glob
import json
import os
import re
import subprocess
from email.parser import HeaderParser
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_sbom_components
short_description: List the components of a Hop3 app release or of the platform
description:
  - With C(app), reads the app's current release under C(apps_root) and
    returns its Python packages (the release venv's C(*.dist-info/METADATA)),
    Node packages (C(package-lock.json), lockfile version 2 or 3), Go modules
    (C(go.mod)) and the Debian packages the app asked for (C([build] packages)
    and the runtime's packages) with their installed versions.
  - With C(platform=true), returns the host's Hop3 components instead, the
    Debian packages in C(platform_packages), the operating system and the
    Hop3 version from C(platform_file).
  - Never changes anything.
options:
  app: {description: App whose current release is described., type: str}
  platform: {description: Describe the platform instead of an app., type: bool, default: false}
  apps_root: {description: Directory of the apps., type: path, default: /srv/hop3/apps}
  platform_file: {description: Hop3's platform file., type: path, default: /etc/hop3/platform.json}
  platform_packages:
    description: Debian packages reported in platform mode.
    type: list
    elements: str
    default: [nginx, openssh-server, python3, systemd, unattended-upgrades]
  runtime_packages:
    description: Debian packages each runtime needs, by runtime name.
    type: dict
    default: {python: [python3], node: [nodejs, npm], go: [golang-go]}
author: Hop3
"""

RETURN = r"""
components:
  description: >-
    One dict per component, with type, ecosystem (pypi, npm, golang, deb,
    generic), name, namespace, version, licenses, purl, qualifiers and
    optionally homepage, scope and properties.
  returned: always
  type: list
app: {description: The app (null in platform mode)., returned: always, type: str}
release: {description: The current release id., returned: always, type: str}
exists: {description: Whether the app exists on the host., returned: always, type: bool}
"""

# Short licence names from trove classifiers, for packages without a
# License-Expression; longer "License:" fields (full texts) are ignored.
MAX_LICENSE_FIELD = 100


# --- purls -------------------------------------------------------------------


def purl(ptype, namespace, name, version, qualifiers=None):
    """A package URL string (https://github.com/package-url/purl-spec)."""
    text = "pkg:" + ptype + "/"
    if namespace:
        text += "/".join(quote(part, safe="") for part in namespace.split("/")) + "/"
    text += quote(name, safe="")
    if version:
        text += "@" + quote(version, safe=":")
    if qualifiers:
        text += "?" + "&".join(
            f"{k}={quote(v, safe='')}" for k, v in sorted(qualifiers.items()) if v
        )
    return text


def component(ctype, ecosystem, name, version, licenses=None, namespace=None, qualifiers=None,
              **extra):  # fmt: skip
    ptype = "generic" if ecosystem == "generic" else ecosystem
    result = {
        "type": ctype,
        "ecosystem": ecosystem,
        "name": name,
        "namespace": namespace,
        "version": version,
        "licenses": [lic for lic in (licenses or []) if lic],
        "qualifiers": qualifiers or {},
        "purl": purl(ptype, namespace, name, version, qualifiers),
    }
    result.update({k: v for k, v in extra.items() if v is not None})
    return result


# --- Python ------------------------------------------------------------------


def python_licenses(meta):
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return [expression]
    found = []
    field = (meta.get("License") or "").strip()
    if field and "\n" not in field and len(field) <= MAX_LICENSE_FIELD and field != "UNKNOWN":
        found.append(field)
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            name = classifier.split("::")[-1].strip()
            if name not in found and name != "OSI Approved":
                found.append(name)
    return found


def python_homepage(meta):
    home = (meta.get("Home-page") or "").strip()
    if home:
        return home
    for url in meta.get_all("Project-URL") or []:
        label, _, value = url.partition(",")
        if label.strip().lower().replace("-", "").replace("_", "") == "homepage":
            return value.strip()
    return None


def python_components(release):
    found = []
    pattern = os.path.join(release, ".venv", "lib", "python3*", "site-packages", "*.dist-info")
    for info in sorted(glob.glob(pattern)):
        path = os.path.join(info, "METADATA")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                meta = HeaderParser().parse(handle)
        except OSError:
            continue
        name, version = meta.get("Name"), meta.get("Version")
        if not name or not version:
            continue
        normal = re.sub(r"[-_.]+", "-", name.strip()).lower()
        found.append(component(
            "library", "pypi", normal, version.strip(), python_licenses(meta),
            homepage=python_homepage(meta),
        ))  # fmt: skip
    return found


# --- Node --------------------------------------------------------------------


def npm_licenses(entry):
    lic = entry.get("license") or entry.get("licenses")
    if isinstance(lic, str):
        return [lic]
    if isinstance(lic, dict):
        return [lic.get("type")]
    if isinstance(lic, list):
        return [x.get("type") if isinstance(x, dict) else x for x in lic]
    return []


def node_components(release):
    for name in ("package-lock.json", os.path.join("node_modules", ".package-lock.json")):
        path = os.path.join(release, name)
        if os.path.isfile(path):
            break
    else:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            lock = json.load(handle)
    except (OSError, ValueError):
        return []
    found, seen = [], set()
    for key, entry in sorted((lock.get("packages") or {}).items()):
        if not key or "node_modules/" not in key or entry.get("link"):
            continue
        full = entry.get("name") or key.rsplit("node_modules/", 1)[1]
        version = entry.get("version")
        if not version or (full, version) in seen:
            continue
        seen.add((full, version))
        namespace, _, name = full.rpartition("/")
        found.append(component(
            "library", "npm", name, version, npm_licenses(entry), namespace=namespace or None,
            homepage=entry.get("homepage"), scope="optional" if entry.get("dev") else None,
        ))  # fmt: skip
    return found


# --- Go ----------------------------------------------------------------------

GO_REQUIRE = re.compile(r"^\s*(\S+)\s+(v\S+)\s*(//.*)?$")


def go_components(release):
    path = os.path.join(release, "go.mod")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    found, in_block, go_version = [], False, None
    for line in lines:
        stripped = line.strip()
        if in_block:
            if stripped.startswith(")"):
                in_block = False
                continue
            spec = stripped
        elif stripped.startswith("go "):
            go_version = stripped.split()[1]
            continue
        elif stripped.startswith("require ("):
            in_block = True
            continue
        elif stripped.startswith("require "):
            spec = stripped[len("require ") :]
        else:
            continue
        match = GO_REQUIRE.match(spec)
        if not match:
            continue
        module_path, version, comment = match.groups()
        indirect = bool(comment and "indirect" in comment)
        namespace, _, name = module_path.rpartition("/")
        found.append(component(
            "library", "golang", name, version, namespace=namespace or None,
            properties={"hop3:dependency": "indirect" if indirect else "direct"},
        ))  # fmt: skip
    if go_version:
        found.append(component(
            "platform", "golang", "stdlib", go_version,
            properties={"hop3:note": "minimum Go version from the go directive of go.mod"},
        ))  # fmt: skip
    return found


# --- Debian ------------------------------------------------------------------


def os_release():
    info = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep:
                    info[key] = value.strip().strip('"')
    except OSError:
        pass
    return info


def deb_licenses(package):
    """Short licence names of a package's machine-readable copyright file."""
    path = f"/usr/share/doc/{package}/copyright"
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(200000)
    except OSError:
        return found
    if not text.startswith("Format:"):
        return found
    for line in text.splitlines():
        if line.startswith("License:"):
            name = line[len("License:") :].strip()
            if name and name not in found:
                found.append(name)
    return found


def deb_components(module, packages, ctype_for):
    packages = list(dict.fromkeys(p for p in packages if p))
    if not packages:
        return [], []
    fmt = "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\t${Homepage}\n"
    proc = subprocess.run(["dpkg-query", "-W", "-f=" + fmt, "--", *packages],
                          capture_output=True, text=True, check=False)  # fmt: skip
    osr = os_release()
    distro = f"{osr.get('ID', 'debian')}-{osr.get('VERSION_ID', '')}" if osr else None
    installed = {}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[3].startswith("ii"):
            installed[parts[0]] = parts
    found, missing = [], []
    for package in packages:
        if package not in installed:
            missing.append(package)
            continue
        _, version, arch, _, home = (installed[package] + [""])[:5]
        found.append(component(
            ctype_for(package), "deb", package, version, deb_licenses(package),
            namespace=osr.get("ID", "debian"),
            qualifiers={"arch": arch, "distro": distro}, homepage=home or None,
        ))  # fmt: skip
    return found, missing


# --- entry points ------------------------------------------------------------


def app_report(module, params):
    app = params["app"]
    root = os.path.join(params["apps_root"], app)
    try:
        with open(os.path.join(root, "state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {"app": app, "exists": False, "release": None, "components": [],
                "missing_packages": []}  # fmt: skip
    current = state.get("current")
    spec = next((r.get("spec") or {} for r in state.get("releases", []) if r["id"] == current), {})
    release = os.path.join(root, "releases", current) if current else None
    components = []
    if release and os.path.isdir(release):
        components += python_components(release)
        components += node_components(release)
        components += go_components(release)
    runtime = spec.get("runtime")
    build_packages = list((spec.get("build") or {}).get("packages") or [])
    runtime_packages = list(params["runtime_packages"].get(runtime) or [])
    debs, missing = deb_components(
        module, build_packages + runtime_packages,
        lambda p: "application" if p in runtime_packages else "library",
    )  # fmt: skip
    return {
        "app": app,
        "exists": True,
        "release": current,
        "runtime": runtime,
        "version": spec.get("version"),
        "title": spec.get("title"),
        "components": components + debs,
        "missing_packages": missing,
    }


def platform_report(module, params):
    debs, missing = deb_components(module, params["platform_packages"], lambda p: "application")
    osr = os_release()
    components = []
    if osr:
        version = osr.get("VERSION_ID")
        try:
            with open("/etc/debian_version", encoding="utf-8") as handle:
                version = handle.read().strip() or version
        except OSError:
            pass
        components.append(component(
            "operating-system", "generic", osr.get("ID", "linux"), version,
            description=osr.get("PRETTY_NAME"),
        ))  # fmt: skip
    hop3_version = None
    try:
        with open(params["platform_file"], encoding="utf-8") as handle:
            hop3_version = json.load(handle).get("version")
    except (OSError, ValueError, AttributeError):
        pass
    if hop3_version:
        components.append(component(
            "application", "generic", "hop3", hop3_version, ["Apache-2.0"],
        ))  # fmt: skip
    return {
        "app": None,
        "exists": True,
        "release": None,
        "hop3_version": hop3_version,
        "components": components + debs,
        "missing_packages": missing,
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str"},
            "platform": {"type": "bool", "default": False},
            "apps_root": {"type": "path", "default": "/srv/hop3/apps"},
            "platform_file": {"type": "path", "default": "/etc/hop3/platform.json"},
            "platform_packages": {
                "type": "list",
                "elements": "str",
                "default": ["nginx", "openssh-server", "python3", "systemd", "unattended-upgrades"],
            },
            "runtime_packages": {
                "type": "dict",
                "default": {"python": ["python3"], "node": ["nodejs", "npm"], "go": ["golang-go"]},
            },
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["platform"]:
        report = platform_report(module, params)
    else:
        app = params["app"]
        if not app or "/" in app or app.startswith("."):
            module.fail_json(msg="Give an app name (app) or platform=true.")
        report = app_report(module, params)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
