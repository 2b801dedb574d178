"""CycloneDX software bills of materials from the component lists that the
hop3_sbom role reads on a host (roles/hop3_sbom).

The host side only reads files and dpkg; this side turns its report into a
CycloneDX JSON document with ``cyclonedx-python-lib`` and validates it
against the CycloneDX schema before anyone sees it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from hop3.errors import HopError

#: CycloneDX specification version of the documents Hop3 writes.
SPEC_VERSION = "1.6"

#: Trove classifier licence names that mean exactly one SPDX licence.
CLASSIFIER_SPDX = {
    "MIT License": "MIT",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Zero-Clause BSD (0BSD)": "0BSD",
    "Python Software Foundation License": "PSF-2.0",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Apache Software License 2.0": "Apache-2.0",
}

_EXPRESSION = re.compile(r"\s(AND|OR|WITH)\s|[()]")
_PURL_TYPES = {"pypi", "npm", "golang", "deb", "generic"}


def _licenses(names: Iterable[str]):
    """CycloneDX licences: SPDX ids where the name is one, else names; one
    SPDX expression alone (the schema does not allow mixing the two)."""
    from cyclonedx.model.license import LicenseExpression

    try:  # the import path of cyclonedx-python-lib >= 11.x's contrib package
        from cyclonedx.contrib.license.exceptions import InvalidSpdxLicenseException
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # older 11.x releases
        from cyclonedx.exception.factory import InvalidSpdxLicenseException
        from cyclonedx.factory.license import LicenseFactory

    factory = LicenseFactory()
    names = [CLASSIFIER_SPDX.get(n.strip(), n.strip()) for n in names if n and n.strip()]
    names = list(dict.fromkeys(names))
    if len(names) == 1 and _EXPRESSION.search(names[0]):
        return [LicenseExpression(names[0])]
    licenses = []
    for name in names:
        try:
            licenses.append(factory.make_with_id(name))
        except InvalidSpdxLicenseException:
            licenses.append(factory.make_with_name(name))
    return licenses


def purl_of(item: dict):
    """The package URL of a component from the host's report."""
    from packageurl import PackageURL

    ptype = item.get("ecosystem") if item.get("ecosystem") in _PURL_TYPES else "generic"
    return PackageURL(
        type=ptype,
        namespace=item.get("namespace") or None,
        name=item["name"],
        version=item.get("version") or None,
        qualifiers={k: v for k, v in (item.get("qualifiers") or {}).items() if v} or None,
    )


def _component(item: dict):
    from cyclonedx.model import ExternalReference, ExternalReferenceType, Property, XsUri
    from cyclonedx.model.component import Component, ComponentScope, ComponentType

    purl = purl_of(item)
    try:
        ctype = ComponentType(item.get("type") or "library")
    except ValueError:
        ctype = ComponentType.LIBRARY
    refs = []
    if item.get("homepage"):
        try:
            refs.append(ExternalReference(type=ExternalReferenceType.WEBSITE,
                                          url=XsUri(item["homepage"])))  # fmt: skip
        except Exception:  # an unusable URL is left out, not fatal
            refs = []
    properties = [Property(name="hop3:ecosystem", value=item.get("ecosystem") or "generic")]
    properties += [
        Property(name=k, value=str(v)) for k, v in (item.get("properties") or {}).items()
    ]
    group = item.get("namespace") if item.get("ecosystem") in ("npm", "golang") else None
    return Component(
        type=ctype,
        name=item["name"],
        group=group or None,
        version=item.get("version") or None,
        description=item.get("description") or None,
        scope=ComponentScope.OPTIONAL if item.get("scope") == "optional" else None,
        licenses=_licenses(item.get("licenses") or []),
        purl=purl,
        bom_ref=purl.to_string(),
        external_references=refs,
        properties=properties,
    )


def build_bom(report: dict, host: str | None = None):
    """A CycloneDX ``Bom`` for one host's report (an app or the platform)."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType

    from hop3 import __version__

    bom = Bom()
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="hop3", version=__version__)
    )
    app = report.get("app")
    if app:
        root = Component(
            type=ComponentType.APPLICATION,
            name=app,
            version=report.get("release") or None,
            bom_ref=f"hop3-app:{app}",
        )
        extra = {"hop3:runtime": report.get("runtime"), "hop3:app-version": report.get("version")}
    else:
        root = Component(
            type=ComponentType.PLATFORM,
            name=f"hop3-platform{'-' + host if host else ''}",
            version=report.get("hop3_version") or None,
            bom_ref="hop3-platform",
        )
        extra = {}
    extra["hop3:host"] = host
    for name, value in extra.items():
        if value:
            root.properties.add(Property(name=name, value=str(value)))
    bom.metadata.component = root
    components, seen = [], set()
    for item in report.get("components") or []:
        comp = _component(item)
        if comp.bom_ref.value in seen:
            continue
        seen.add(comp.bom_ref.value)
        components.append(comp)
        bom.components.add(comp)
    bom.register_dependency(root, components)
    return bom


def bom_json(bom) -> str:
    """The BOM as CycloneDX JSON, validated against the schema."""
    from cyclonedx.output.json import JsonV1Dot6

    text = JsonV1Dot6(bom).output_as_string(indent=2)
    error = validate(text)
    if error:
        raise HopError(f"The SBOM does not validate against CycloneDX {SPEC_VERSION}: {error}",
                       "This is a bug in Hop3; please report it with `hop sbom -v`.")  # fmt: skip
    return text


def validate(text: str) -> str | None:
    """None when ``text`` is a valid CycloneDX JSON document, else the error."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.from_version(SPEC_VERSION)).validate_str(text)
    return str(error) if error else None


def sbom_document(report: dict, host: str | None = None) -> dict:
    """The validated CycloneDX document for one host's report, as a dict."""
    return json.loads(bom_json(build_bom(report, host)))
